"""A training trial says TRAINING on every screen; a live one never does."""

from __future__ import annotations

from sqlalchemy import Engine

from tests.conftest import SteppingClock
from tests.tui.conftest import app_for, screen_text, settle, sign_in
from trialkit.tui.app import TrialkitApp
from trialkit.tui.screens.home import HomeScreen
from trialkit.tui.screens.lock import LockScreen
from trialkit.tui.screens.login import LoginScreen
from trialkit.tui.widgets.training_banner import TRAINING_TEXT, TrainingBanner


def banner_shown(app: TrialkitApp) -> bool:
    """The banner is displayed and its words are on the terminal."""
    return app.screen.query_one(TrainingBanner).display and TRAINING_TEXT in screen_text(app)


async def test_training_trial_says_training_on_every_screen(
    training_engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(training_engine, clock, training=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert "TRAINING" in app.title
        assert banner_shown(app)
        await sign_in(pilot)
        assert isinstance(app.screen, HomeScreen)
        assert "TRAINING" in screen_text(app).splitlines()[0]
        assert banner_shown(app)
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert isinstance(app.screen, LockScreen)
        assert banner_shown(app)


async def test_the_database_decides_training_even_if_the_caller_forgot(
    training_engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(training_engine, clock, training=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.training
        assert banner_shown(app)


async def test_live_trial_never_says_training(engine: Engine, clock: SteppingClock) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        assert isinstance(app.screen, HomeScreen)
        assert "TRAINING" not in screen_text(app)
        assert not app.screen.query_one(TrainingBanner).display
