"""The lock screen against a slow database: an envelope opened (or an unblinding answered)
while the screen locks must never be shown on the locked terminal, whichever way it locked
(Ctrl+L or the idle lock). The worker is held back until the screen has locked, as it would
be while another writer holds the database's write lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine
from textual.pilot import Pilot

from tests.conftest import PASSWORD, SteppingClock
from tests.tui.conftest import app_for, notifications, screen_text, settle, sign_in
from tests.tui.test_pharmacy import fill, names_an_arm, randomized  # noqa: F401
from trialkit.tui.app import TrialkitApp
from trialkit.tui.dialogs.password import PasswordDialog
from trialkit.tui.dialogs.unblind import UnblindDialog
from trialkit.tui.screens.dispense_queue import DispenseQueueScreen
from trialkit.tui.screens.lock import LockScreen
from trialkit.tui.screens.preparation import PreparationScreen


def held_back(app: TrialkitApp, method: str) -> tuple[threading.Event, threading.Event]:
    """Make ``app.db.<method>`` wait for a go-ahead (as a writer behind the lock waits).
    Returns (started, go)."""
    started, go = threading.Event(), threading.Event()
    real: Callable[..., Any] = getattr(app.db, method)

    def slow(*args: Any, **kwargs: Any) -> Any:
        started.set()
        assert go.wait(30), "the test never let the worker go on"
        return real(*args, **kwargs)

    setattr(app.db, method, slow)
    return started, go


async def lock(pilot: Pilot[None], how: str) -> None:
    app = pilot.app
    assert isinstance(app, TrialkitApp)
    if how == "ctrl+l":
        await pilot.press("ctrl+l")
    else:
        assert app.lock_if_idle(now=app.last_activity + 24 * 3600)
    await pilot.pause()
    assert isinstance(app.screen, LockScreen)


async def let_go(pilot: Pilot[None], started: threading.Event, go: threading.Event) -> None:
    assert started.wait(30)
    go.set()
    await settle(pilot)


def shows_nothing_unblinded(app: TrialkitApp) -> None:
    assert isinstance(app.screen, LockScreen)
    assert not any(isinstance(s, PreparationScreen) for s in app.screen_stack)
    text = screen_text(app)
    assert "UNBLINDED" not in text
    assert not names_an_arm(text)


@pytest.mark.parametrize("how", ["ctrl+l", "idle"])
async def test_an_envelope_opened_while_the_screen_locks_is_never_shown(
    engine: Engine, randomized: str, clock: SteppingClock, how: str  # noqa: F811
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await sign_in(pilot, "phil")
        started, go = held_back(app, "open_envelope")
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, PasswordDialog)
        fill(pilot, **{"key-password": PASSWORD})
        await pilot.press("enter")
        await lock(pilot, how)
        await let_go(pilot, started, go)
        shows_nothing_unblinded(app)

        await pilot.pause()
        fill(pilot, password=PASSWORD)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DispenseQueueScreen)
        assert not names_an_arm(screen_text(app))
        assert any(f"envelope of {randomized} was opened" in n for n in notifications(app))


@pytest.mark.parametrize("how", ["ctrl+l", "idle"])
async def test_an_unblinding_answered_while_the_screen_locks_is_never_shown(
    engine: Engine, randomized: str, clock: SteppingClock, how: str  # noqa: F811
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await sign_in(pilot, "phil")
        started, go = held_back(app, "unblind")
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, UnblindDialog)
        fill(pilot, **{"unblind-reason": "anaphylaxis", "unblind-password": PASSWORD})
        await pilot.press("enter")
        await lock(pilot, how)
        await let_go(pilot, started, go)
        shows_nothing_unblinded(app)

        fill(pilot, password=PASSWORD)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, UnblindDialog)
        text = screen_text(app)
        assert "UNBLINDED — you only" not in text and not names_an_arm(text)
        assert "locked and was not shown" in " ".join(text.replace("│", " ").split())


async def test_nothing_is_pushed_over_the_lock_screen(
    engine: Engine, randomized: str, clock: SteppingClock  # noqa: F811
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await sign_in(pilot, "phil")
        await lock(pilot, "ctrl+l")
        await app.push_screen(UnblindDialog(app.db, app.actor, randomized))  # type: ignore[arg-type]
        await settle(pilot)
        assert isinstance(app.screen, LockScreen)
