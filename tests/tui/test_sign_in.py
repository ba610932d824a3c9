"""Signing in from the first screen: the service's words for refusals, the wait after wrong
passwords, and a new user's first sign-in with their enrolment code."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, create_engine
from textual.widgets import Input

from tests.conftest import PASSWORD, SteppingClock
from tests.tui.conftest import app_for, screen_text, settle, sign_in, submit_password
from trialkit.application.trial_database import TrialDatabase
from trialkit.domain.errors import Refused
from trialkit.tui.screens.home import HomeScreen
from trialkit.tui.screens.login import LoginScreen

TITLE_START = "A multi-centre randomized controlled trial"


async def test_sign_in_screen_shows_the_trial_title(engine: Engine, clock: SteppingClock) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert TITLE_START in screen_text(app)
        assert app.screen.query_one("#password", Input).password


async def test_right_password_opens_home_with_trial_and_role(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press(*"alice", "enter", *"correct-horse-battery", "enter")
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        text = screen_text(app)
        assert TITLE_START in text
        assert "protocol version 1.0" in text
        assert "alice" in text
        assert "Role: admin" in text


async def test_wrong_password_shows_the_message_and_stays_on_sign_in(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, password="not-the-password")
        assert isinstance(app.screen, LoginScreen)
        assert "wrong user name or password" in screen_text(app)
        assert app.screen.query_one("#password", Input).value == ""
        assert app.actor is None


async def test_unknown_user_gets_the_same_message(engine: Engine, clock: SteppingClock) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, name="mallory", password="anything-at-all")
        assert "wrong user name or password" in screen_text(app)


async def test_wrong_passwords_in_a_row_make_her_wait_and_say_so(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, password="wrong-1")
        for attempt in range(2, 5):
            await submit_password(pilot, f"wrong-{attempt}")
        # After four wrong passwords the next attempt waits a second, the right one too.
        await submit_password(pilot, PASSWORD)
        assert isinstance(app.screen, LoginScreen)
        text = screen_text(app)
        assert "too many wrong passwords" in text and "wait 1 s" in text
        clock.advance(seconds=1)
        await submit_password(pilot, PASSWORD)
        assert isinstance(app.screen, HomeScreen)


async def test_first_sign_in_with_the_enrolment_code_sets_her_own_password(
    engine: Engine, clock: SteppingClock
) -> None:
    from trialkit.domain.roles import Role
    from trialkit.services.administration.sign_in import login
    from trialkit.services.administration.users import create_user
    from trialkit.store.db import transaction

    with transaction(engine) as s:
        admin = login(s, "alice", PASSWORD, clock=clock)
        code = create_user(s, admin, name="cora", role=Role.COORDINATOR, sites=["TWH"],
                           custodian=False, clock=clock).enrolment_code
    chosen = "my-own-chosen-passphrase"
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 30)) as pilot:
        await settle(pilot)
        assert "F2" in screen_text(app)
        await pilot.press("f2")
        await settle(pilot)
        assert "First sign-in" in screen_text(app)
        fields = {"#activate-name": "cora", "#activate-code": code,
                  "#activate-password": chosen, "#activate-again": "not the same"}
        for selector, value in fields.items():
            app.screen.query_one(selector, Input).value = value
        app.screen.query_one("#activate-again", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert "The two passwords differ" in screen_text(app)
        app.screen.query_one("#activate-password", Input).value = chosen
        app.screen.query_one("#activate-again", Input).value = chosen
        app.screen.query_one("#activate-again", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        assert app.actor is not None and app.actor.name == "cora"
    with transaction(engine) as s:
        assert login(s, "cora", chosen, clock=clock).name == "cora"


async def test_blank_name_is_not_sent_to_the_database(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter", "enter")
        await settle(pilot)
        assert "Enter your user name." in screen_text(app)


async def test_a_refusal_reading_the_trial_is_shown_not_raised(
    engine: Engine, clock: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(_self: TrialDatabase) -> None:
        raise Refused("this database holds no trial yet")

    monkeypatch.setattr(TrialDatabase, "trial_info", refuse)
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert "this database holds no trial yet" in screen_text(app)


async def test_an_unreachable_database_is_a_message(clock: SteppingClock) -> None:
    engine = create_engine("sqlite:////nonexistent-folder/kethead.db")
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert "cannot use the database kethead.db" in screen_text(app)


def _burst(app: object, keys: str | list[str]) -> None:
    """Keys as a terminal delivers a fast typist's burst: all queued before any is handled."""
    from textual import events

    for key in keys:
        char = {"enter": "\r", "tab": "\t"}.get(key, key)
        app.post_message(events.Key(key, char))  # type: ignore[attr-defined]


@pytest.mark.parametrize("between", ["enter", "tab"])
async def test_a_burst_of_keys_lands_in_the_right_fields_and_signs_in(
    engine: Engine, clock: SteppingClock, between: str
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        _burst(app, [*"alice", between, *PASSWORD, "enter"])
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        assert "alice" in screen_text(app)


async def test_a_burst_ending_in_the_password_field_leaves_each_part_in_its_field(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        _burst(app, [*"bob", "enter", *"half-typed"])
        await settle(pilot)
        assert app.screen.query_one("#user-name", Input).value == "bob"
        assert app.screen.query_one("#password", Input).value == "half-typed"
        assert app.focused is app.screen.query_one("#password", Input)
