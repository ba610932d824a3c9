"""The home screen: the trial and its sites, who you are, your role; never an arm."""

from __future__ import annotations

import re

from sqlalchemy import Engine
from textual.message import Message
from textual.widgets import DataTable

from tests.conftest import KETHEAD, SteppingClock, add_user
from tests.tui.conftest import app_for, screen_text, settle, sign_in
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.tui.messages import TrialLoaded
from trialkit.tui.screens.dispense_queue import DispenseQueueScreen
from trialkit.tui.screens.home import HomeScreen
from trialkit.tui.screens.login import LoginScreen


async def test_home_lists_every_site_with_its_target(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        table = app.screen.query_one("#sites", DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert rows == [
            ["SHS", "Sinai Health System", 28],
            ["TWH", "Toronto Western Hospital", 28],
        ]
        assert "2 sites, target 56 participants" in screen_text(app)


async def test_home_fits_80_by_24_without_scrolling(engine: Engine, clock: SteppingClock) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        assert app.screen.query_one("#home-body").max_scroll_y == 0
        assert "Sign out" in screen_text(app).splitlines()[-1]


async def test_coordinator_sees_their_sites_and_workspace(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    add_user(engine, admin, clock, "carol", Role.COORDINATOR, sites=["TWH"])
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "carol")
        text = screen_text(app)
        assert "Role: coordinator" in text
        assert "Sites: TWH" in text
        assert "Participants at your sites" in text
        assert "You may enrol participants and record diary days." in text


async def test_custodian_is_named_as_such(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR, custodian=True)
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "ivan")
        text = screen_text(app)
        assert "Role: investigator" in text
        assert "Unblinding custodian" in text


async def test_pharmacist_home_names_the_sites_they_serve(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    """A pharmacist given sites serves those; one given none serves every site of the
    protocol (SHS and TWH in KetHead), never "none yet"."""
    add_user(engine, admin, clock, "phil", Role.PHARMACIST, sites=["SHS"])
    add_user(engine, admin, clock, "pia", Role.PHARMACIST)
    shown = {}
    for name in ("phil", "pia"):
        app = app_for(engine, clock)
        async with app.run_test(size=(120, 36)) as pilot:
            await sign_in(pilot, name)
            await pilot.press("escape")
            await settle(pilot)
            assert isinstance(app.screen, HomeScreen)
            shown[name] = screen_text(app)
    assert re.search(r"Sites: SHS(?![,\w])", shown["phil"])
    assert "Sites: all (SHS, TWH)" in shown["pia"]
    assert not any("none yet" in text for text in shown.values())


async def test_home_never_shows_an_arm(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    add_user(engine, admin, clock, "phil", Role.PHARMACIST, sites=["SHS"])
    arms = load_protocol(KETHEAD).protocol.arms
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await sign_in(pilot, "phil")
        assert isinstance(app.screen, DispenseQueueScreen)  # the pharmacist's home
        texts = [screen_text(app)]
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        texts.append(screen_text(app))
        for text in texts:
            for arm in arms:
                assert arm.name not in text
                assert arm.description not in text


async def test_sign_out_returns_to_a_fresh_sign_in_and_back(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        await pilot.press("ctrl+o")
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert app.actor is None
        assert "alice" not in screen_text(app)
        await sign_in(pilot)
        assert isinstance(app.screen, HomeScreen)
        assert "Role: admin" in screen_text(app)


async def test_refresh_reads_the_trial_again(engine: Engine, clock: SteppingClock) -> None:
    loaded: list[TrialLoaded] = []

    def hook(message: Message) -> None:
        # A bubbling message passes the hook once per node: count each message once.
        if isinstance(message, TrialLoaded) and all(m is not message for m in loaded):
            loaded.append(message)

    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
        await sign_in(pilot)
        before = len(loaded)
        await pilot.press("f5")
        await settle(pilot)
        assert len(loaded) == before + 1
        assert loaded[-1].trial == app.trial


async def test_the_monitors_and_investigators_home_promise_only_screens_that_open(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    add_user(engine, admin, clock, "mona", Role.MONITOR)
    add_user(engine, admin, clock, "iris", Role.INVESTIGATOR)
    for name in ("mona", "iris"):
        app = app_for(engine, clock)
        async with app.run_test(size=(120, 36)) as pilot:
            await sign_in(pilot, name)
            text = screen_text(app)
            assert "coming release" not in text
            keys = re.findall(r"Press (\S+) for ([a-z ]+)\.", text)
            assert keys, text
            for key, what in keys:
                await pilot.press(key)
                await settle(pilot)
                assert not isinstance(app.screen, HomeScreen), (name, key, what)
                await pilot.press("escape")
                await settle(pilot)
                assert isinstance(app.screen, HomeScreen), (name, key, what)
