"""Every key hint fits a footer of 80 columns (issue 15: footers at 80x24 cut key hints):
home shows the session's keys (its role panel names each screen's key), every other screen
its own keys; Quit, Lock and Sign out work everywhere and the palette offers them."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from textual.widgets import Footer

from tests.conftest import SteppingClock, add_user
from tests.tui.conftest import app_for, press, screen_text, sign_in
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.tui.screens.home import HomeScreen
from trialkit.tui.screens.login import LoginScreen

# The user, and the keys that open each of their screens from home (KetHead's roles).
DAYS = {
    "alice": ["m", "a", "l", "u"],  # admin
    "ivan": ["i", "p", "c", "l", "u"],  # investigator
    "mona": ["l", "i", "p", "u"],  # monitor
    "phil": ["p", "c"],  # pharmacist: opens on the dispense queue
    "cora": ["p"],  # coordinator: every enrolment step on the participants screen
}


@pytest.fixture
def people(engine: Engine, enrolling: dict[str, Actor], admin: Actor,
           clock: SteppingClock) -> None:
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR)
    add_user(engine, admin, clock, "mona", Role.MONITOR)


def fits(footer: Footer) -> bool:
    return footer.max_scroll_x == 0


@pytest.mark.parametrize("user", list(DAYS))
async def test_every_screens_footer_fits_80_columns(
    engine: Engine, people: None, clock: SteppingClock, user: str
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, user)
        if not isinstance(app.screen, HomeScreen):  # the pharmacist's queue
            assert fits(app.screen.query_one(Footer)), screen_text(app).splitlines()[-1]
            await press(pilot, "escape")
        assert fits(app.screen.query_one(Footer)), screen_text(app).splitlines()[-1]
        assert "^o Sign out" in screen_text(app).splitlines()[-1]
        for key in DAYS[user]:
            assert isinstance(app.screen, HomeScreen)
            await press(pilot, key)
            assert not isinstance(app.screen, HomeScreen), key
            last = screen_text(app).splitlines()[-1]
            assert fits(app.screen.query_one(Footer)), (type(app.screen).__name__, last)
            assert "esc Back" in last, (type(app.screen).__name__, last)
            await press(pilot, "escape")


async def test_sign_out_works_from_a_screen_whose_footer_leaves_it_out(
    engine: Engine, people: None, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "ivan")
        await press(pilot, "l")
        assert "Sign out" not in screen_text(app).splitlines()[-1]
        await press(pilot, "ctrl+o")
        assert isinstance(app.screen, LoginScreen)
