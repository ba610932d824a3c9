"""The lock screen: idle time from the protocol, nothing visible, the password to return."""

from __future__ import annotations

from sqlalchemy import Engine

from tests.conftest import PASSWORD, SteppingClock
from tests.tui.conftest import app_for, screen_text, settle, sign_in, submit_password
from trialkit.tui.screens.home import HomeScreen
from trialkit.tui.screens.lock import LockScreen
from trialkit.tui.screens.login import LoginScreen


async def test_lock_screen_hides_everything_and_needs_the_password(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert isinstance(app.screen, LockScreen)
        text = screen_text(app)
        assert "Signed in: alice (admin)" in text
        for hidden in ("multi-centre", "Toronto Western", "KETHEAD", "Role: admin"):
            assert hidden not in text

        await submit_password(pilot, "not-the-password")
        assert isinstance(app.screen, LockScreen)
        assert "wrong user name or password" in screen_text(app)

        await submit_password(pilot, PASSWORD)
        assert isinstance(app.screen, HomeScreen)
        assert not app.locked
        assert "Toronto Western" in screen_text(app)


async def test_idle_time_comes_from_the_protocol(engine: Engine, clock: SteppingClock) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        assert app.idle_seconds == 5 * 60  # ui.idle_lock_minutes in kethead.toml
        assert not app.lock_if_idle(now=app.last_activity + 5 * 60 - 1)
        assert isinstance(app.screen, HomeScreen)
        assert app.lock_if_idle(now=app.last_activity + 5 * 60)
        await settle(pilot)
        assert isinstance(app.screen, LockScreen)


async def test_a_key_press_restarts_the_idle_count(engine: Engine, clock: SteppingClock) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        before = app.last_activity
        await pilot.press("down")
        assert app.last_activity > before


async def test_a_tiny_idle_limit_locks_by_itself(engine: Engine, clock: SteppingClock) -> None:
    app = app_for(engine, clock, idle_seconds=0.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        assert app.lock_if_idle() or app.locked
        await settle(pilot)
        assert isinstance(app.screen, LockScreen)


async def test_nobody_signed_in_means_nothing_to_lock(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert not app.lock_if_idle(now=app.last_activity + 3600)
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)


async def test_wrong_passwords_on_the_lock_screen_count_toward_lockout(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        await pilot.press("ctrl+l")
        await settle(pilot)
        for attempt in range(5):
            await submit_password(pilot, f"wrong-{attempt}")
        assert isinstance(app.screen, LockScreen)
        assert "locked" in screen_text(app)


async def test_sign_out_from_the_lock_screen_returns_to_sign_in(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        await pilot.press("ctrl+l")
        await settle(pilot)
        await pilot.press("ctrl+o")
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert app.actor is None
        assert not app.locked
        assert len(app.screen_stack) == 2
