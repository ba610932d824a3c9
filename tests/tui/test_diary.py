"""The coordinator's diary calendar: keyboard entry of a day, completeness as it changes,
corrections that need a reason and keep the history."""

from __future__ import annotations

from sqlalchemy import Engine
from textual.pilot import Pilot
from textual.widgets import Input

from tests.builders import consented, record_baseline
from tests.conftest import SteppingClock, add_user
from tests.tui.conftest import app_for, arm_words, press, screen_text, screened, sign_in
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.diary.entries import current_days
from trialkit.store.db import read_only
from trialkit.tui.dialogs.diary_day import CorrectionDialog, HistoryDialog
from trialkit.tui.screens.diary import DiaryScreen


async def open_diary(pilot: Pilot[None]) -> DiaryScreen:
    """cora: participants, the first one, d."""
    await sign_in(pilot, "cora")
    await press(pilot, "p", "d")
    screen = pilot.app.screen
    assert isinstance(screen, DiaryScreen)
    return screen


def with_partial_baseline(engine: Engine, cora: Actor, clock: SteppingClock) -> str:
    """A consented participant with 20 of 28 baseline days recorded."""
    pid = consented(engine, cora, clock, site="TWH").id
    record_baseline(engine, cora, clock, pid, days=20)
    return pid


async def test_recording_days_updates_completeness(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    with_partial_baseline(engine, enrolling["cora"], clock)
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_diary(pilot)
        assert "recorded 20/28" in screen_text(app)
        await press(pilot, "down", "down", *["right"] * 6)  # day 21 of the window
        day = screen.cursor_day()
        assert "not recorded" in screen_text(app)
        await press(pilot, "2", "6", "a")
        assert "moderate, 6 h, acute medication" in screen_text(app)
        await press(pilot, "enter")
        assert "recorded 21/28" in screen_text(app)
        assert screen.cursor_day() != day  # on to the next day
        await press(pilot, "0")
        assert "recorded 22/28" in screen_text(app)
        assert not arm_words(screen_text(app))


async def test_correction_needs_a_reason_and_keeps_history(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    with_partial_baseline(engine, enrolling["cora"], clock)
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_diary(pilot)
        await press(pilot, "0")  # the first day was a headache day
        assert isinstance(app.screen, CorrectionDialog)
        await press(pilot, "enter")
        assert "A correction needs a reason." in screen_text(app)
        app.screen.query_one("#correction-reason", Input).value = "transcription error"
        await press(pilot, "enter")
        assert isinstance(app.screen, DiaryScreen)
        assert "recorded 20/28" in screen_text(app)
        await press(pilot, "left", "h")
        assert isinstance(app.screen, HistoryDialog)
        text = screen_text(app)
        assert "v1: mild headache, 6 h" in text  # the builder's first baseline day
        assert "v2 (current): no headache" in text
        assert "transcription error" in text


async def test_consented_today_the_diary_starts_today_with_nothing_due(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    pid = consented(engine, enrolling["cora"], clock, site="TWH").id
    today = clock.now().date()
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_diary(pilot)
        # The baseline shown is the 28 days from consent: none is due yet, the cursor is on
        # today (not 28 "due" days before screening that could never be entered)
        assert f"{today} → " in screen_text(app)
        assert "recorded 0/28 (due so far 0)" in screen_text(app)
        assert screen.cursor_day() == today
        await press(pilot, "1", "5", "enter")
        assert "recorded 1/28 (due so far 0)" in screen_text(app)
        assert not arm_words(screen_text(app))
    with read_only(engine) as s:
        assert [(d.day, d.severity, d.duration_hours) for d in current_days(s, pid)] == [
            (today, "mild", 5.0)]


async def test_before_consent_the_grid_refuses_a_day(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    pid = screened(engine, enrolling["cora"], clock, site="TWH").id
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_diary(pilot)
        assert f"{pid} has not consented: the diary starts at consent" in screen_text(app)
        await press(pilot, "0", "1", "5", "enter")  # no entry key does anything
        assert "recorded 0/28 (due so far 0)" in screen_text(app)
    with read_only(engine) as s:
        assert current_days(s, pid) == []


async def test_a_monitor_reading_a_diary_is_promised_no_entry_keys(
    engine: Engine, enrolling: dict[str, Actor], admin: Actor, clock: SteppingClock
) -> None:
    """The keys line names what this user's keys do: a monitor reads (arrows, Tab,
    history); a coordinator is told the entry keys."""
    add_user(engine, admin, clock, "mona", Role.MONITOR)
    with_partial_baseline(engine, enrolling["cora"], clock)
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "mona")
        await press(pilot, "p", "d")
        assert isinstance(app.screen, DiaryScreen)
        text = screen_text(app)
        assert "recorded 20/28" in text
        assert "0 no headache" not in text and "a acute" not in text
        assert "Keys: arrows move · Tab next window · h history" in text
        await press(pilot, "0")  # does nothing for a reader
        assert "recorded 20/28" in screen_text(app)
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_diary(pilot)
        assert "Keys: 0 no headache" in screen_text(app)
