"""The TUI's sign-in, lock screen and first sign-in of a custodian where the protocol gives
custodians a second factor: a code box for everyone, the code required of a custodian who
enrolled, each code once, and enrolment in a dialog showing the QR code once. The phone
is played by pyotp from the secret the dialog shows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import Engine
from sqlmodel import select
from textual.pilot import Pilot
from textual.widgets import Input, Static

from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock, add_user
from tests.conftest import sign_in as service_sign_in
from tests.tui.conftest import app_for, notifications, screen_text, settle
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.administration.second_factor import enrol_second_factor, offer_second_factor
from trialkit.services.administration.setup import initialize
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.store.models import User
from trialkit.tui.dialogs.second_factor import SecondFactorDialog
from trialkit.tui.screens.lock import LockScreen
from trialkit.tui.screens.login import LoginScreen

WRONG = "wrong user name, password or code"


@pytest.fixture
def engine(db_url: str, clock: SteppingClock, tmp_path: Path) -> Iterator[Engine]:
    text = KETHEAD.read_text().replace("custodian_totp = false", "custodian_totp = true")
    (tmp_path / "p.toml").write_text(text)
    eng = make_engine(db_url, must_exist=False)
    initialize(eng, load_protocol(tmp_path / "p.toml"), admin=ADMIN, admin_password=PASSWORD,
               training=False, clock=clock)
    admin = service_sign_in(eng, ADMIN, clock)
    add_user(eng, admin, clock, "pia", Role.PHARMACIST, sites=["TWH"])
    yield eng
    eng.dispose()


def enrolled_app(engine: Engine, clock: SteppingClock) -> pyotp.TOTP:
    pia = service_sign_in(engine, "pia", clock)
    with read_only(engine) as s:
        offer = offer_second_factor(s, pia)
    phone = pyotp.TOTP(offer.secret)
    with transaction(engine) as s:
        enrol_second_factor(s, pia, password=PASSWORD, secret=offer.secret,
                            code=phone.at(clock.now()), clock=clock)
    clock.advance(seconds=30)
    return phone


async def submit(pilot: Pilot[None], password: str, code: str) -> None:
    """Type the password, Enter (on to the code box), the code, Enter."""
    screen = pilot.app.screen
    screen.query_one("#password", Input).focus()
    screen.query_one("#password", Input).value = password
    await pilot.press("enter")
    await settle(pilot)
    assert screen.focused is screen.query_one("#code", Input)
    screen.query_one("#code", Input).value = code
    await pilot.press("enter")
    await settle(pilot)


async def test_a_custodian_signs_in_and_unlocks_with_a_fresh_code_each_time(
    engine: Engine, clock: SteppingClock
) -> None:
    phone = enrolled_app(engine, clock)
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        code_box = app.screen.query_one("#code", Input)
        assert code_box.display  # shown before any name is typed: it says nothing of anyone
        app.screen.query_one("#user-name", Input).value = "pia"
        await submit(pilot, PASSWORD, "")
        assert isinstance(app.screen, LoginScreen) and WRONG in screen_text(app)
        await submit(pilot, PASSWORD, phone.at(clock.now()))
        assert app.actor is not None and app.actor.name == "pia"
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert isinstance(app.screen, LockScreen)
        assert "the code your app shows" in screen_text(app)
        await submit(pilot, PASSWORD, phone.at(clock.now()))  # the same code again
        assert isinstance(app.screen, LockScreen) and WRONG in screen_text(app)
        clock.advance(seconds=30)
        await submit(pilot, PASSWORD, phone.at(clock.now()))
        assert not isinstance(app.screen, LockScreen) and not app.locked


async def test_a_user_without_a_factor_signs_in_with_the_code_box_left_empty(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.screen.query_one("#user-name", Input).value = ADMIN
        await submit(pilot, PASSWORD, "")
        assert app.actor is not None and app.actor.name == ADMIN
        assert not isinstance(app.screen, SecondFactorDialog)  # not a custodian


async def test_a_custodian_without_a_factor_enrols_in_a_dialog_after_signing_in(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 60)) as pilot:
        await settle(pilot)
        app.screen.query_one("#user-name", Input).value = "pia"
        await submit(pilot, PASSWORD, "")
        await settle(pilot)
        assert isinstance(app.screen, SecondFactorDialog)
        text = screen_text(app)
        assert "Scan this with the app" in text and "█" in text and "otpauth://totp/" in text
        uri = str(app.screen.query_one("#second-factor-uri", Static).render())
        [secret] = re.findall(r"secret=([A-Z2-7]+)", uri)
        phone = pyotp.TOTP(secret)
        app.screen.query_one("#factor-password", Input).value = PASSWORD
        app.screen.query_one("#factor-code", Input).value = phone.at(clock.now())
        await pilot.click("#ok")
        await settle(pilot)
        assert not isinstance(app.screen, SecondFactorDialog)
        assert any("Second factor enrolled" in n for n in notifications(app))
    with read_only(engine) as s:
        pia = s.exec(select(User).where(User.name == "pia")).one()
        assert pia.totp_wrapped is not None and secret.encode() not in pia.totp_wrapped
