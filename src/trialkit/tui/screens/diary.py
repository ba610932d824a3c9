"""A participant's headache diary as a calendar, one 28-day window at a time, entered from
the keyboard: arrows move; 0 records a day without headache; 1/2/3 start a mild, moderate
or severe day, digits give its hours, a toggles acute medication, Enter records. A recorded
day asks for a reason to correct it. Blinded: nothing here knows an arm."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from trialkit.domain.diary import DiaryDay, not_consented
from trialkit.domain.errors import TrialkitError
from trialkit.domain.roles import Permission
from trialkit.tui.commands import (
    BACK,
    DIARY_ACUTE,
    DIARY_HISTORY,
    DIARY_MILD,
    DIARY_MODERATE,
    DIARY_NONE,
    DIARY_RECORD,
    DIARY_SEVERE,
    NEXT_WINDOW,
    PREVIOUS_WINDOW,
    REFRESH,
    quiet_session_keys,
)
from trialkit.tui.dialogs.diary_day import CorrectionDialog, HistoryDialog, describe_version
from trialkit.tui.messages import DayHistoryLoaded, DayRecorded, DiaryLoaded, ServiceFailed
from trialkit.tui.widgets.diary_grid import DiaryGrid, GridState
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from trialkit.application.trial_database import DiaryView, TrialDatabase
    from trialkit.domain.diary import WindowOutcome
    from trialkit.services.actor import Actor

ENTRY_KEYS = "Keys: 0 no headache · 1/2/3 severity, hours, a acute, Enter · h history\n"
READING_KEYS = "Keys: arrows move · Tab next window · h history\n"  # those who only read
CELLS = "Cells: . none  m mild  M moderate  S severe (+hours)  + acute  · unrecorded"
WRITES = frozenset({"digit", DIARY_ACUTE.action, DIARY_RECORD.action})


@dataclass
class Entry:
    """A day being typed: severity index (1..3), hours as typed, acute medication."""

    severity: int
    hours: str = ""
    acute: bool = False


class DiaryScreen(Screen[None]):
    """The calendar of one participant."""

    BINDINGS = [
        *(c.binding() for c in (DIARY_NONE, DIARY_MILD, DIARY_MODERATE, DIARY_SEVERE)),
        DIARY_ACUTE.binding(), DIARY_RECORD.binding(), DIARY_HISTORY.binding(),
        NEXT_WINDOW.binding(), PREVIOUS_WINDOW.binding(), REFRESH.binding(), BACK.binding(),
        *quiet_session_keys(),
        *[Binding(str(n), f"digit({n})", str(n), show=False) for n in range(4, 10)],
        Binding("backspace", "erase", "Erase", show=False),
        Binding("left", "move(-1)", "Day before", show=False),
        Binding("right", "move(1)", "Day after", show=False),
        Binding("up", "move(-7)", "Week before", show=False),
        Binding("down", "move(7)", "Week after", show=False),
    ]

    def __init__(self, db: TrialDatabase, actor: Actor, pid: str) -> None:
        super().__init__()
        self._db = db
        self._actor = actor
        self._pid = pid
        self._view: DiaryView | None = None
        self._window = 0
        self._cursor = 0
        self._entry: Entry | None = None
        self._busy = False

    def compose(self) -> ComposeResult:
        """Window line, the grid, completeness, the entry line, the keys."""
        yield Header()
        yield TrainingBanner()
        yield Static("", id="diary-window")
        yield DiaryGrid(id="diary-grid")
        yield Static("", id="diary-entry")
        # a monitor or investigator reads: no entry keys are promised that would do nothing
        keys = ENTRY_KEYS if self._actor.can(Permission.RECORD_DIARY) else READING_KEYS
        yield Static(Content(keys + CELLS), id="diary-keys")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Read the diary."""
        self.sub_title = f"Diary of {self._pid}"
        self._load()

    @work(thread=True, exclusive=True, group="diary")
    def _load(self) -> None:
        try:
            view = self._db.diary(self._actor, self._pid)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(DiaryLoaded(view))

    def on_diary_loaded(self, message: DiaryLoaded) -> None:
        """Show it; at first, open the window holding today (else the baseline)."""
        first = self._view is None
        self._view = message.view
        if first:
            for i, w in enumerate(message.view.outcomes.windows):
                if w.start and w.end and w.start <= message.view.today <= w.end:
                    self._window, self._cursor = i, (message.view.today - w.start).days
        self._busy = False
        self._draw()

    # --- drawing -----------------------------------------------------------------------

    def _current(self) -> WindowOutcome | None:
        return None if self._view is None else self._view.outcomes.windows[self._window]

    def cursor_day(self) -> date | None:
        """The date under the cursor, if the window has dates."""
        w = self._current()
        return None if w is None or w.start is None else w.start + timedelta(days=self._cursor)

    def _draw(self) -> None:
        view, w = self._view, self._current()
        if view is None or w is None:
            return
        length = 28 if w.start is None or w.end is None else (w.end - w.start).days + 1
        self._cursor = max(0, min(self._cursor, length - 1))
        self.query_one(DiaryGrid).show(GridState(
            w.start, length, view.days, view.severity_levels, view.today, self._cursor,
            view.outcomes.consented_on))
        names = " ".join(f"[{x.window}]" if x is w else x.window for x in view.outcomes.windows)
        span = f"{w.start} → {w.end}" if w.start else "not started"
        done = (f"recorded {w.days_recorded}/{length} (due so far {w.days_expected})"
                + (" · primary" if w.primary else ""))
        self.query_one("#diary-window", Static).update(Content(f"{names}\n{span} · {done}"))
        self.query_one("#diary-entry", Static).update(Content(self._entry_text()))

    def _entry_text(self) -> str:
        day, view = self.cursor_day(), self._view
        if day is None or view is None:
            return ""
        if not self._consented():
            return not_consented(self._pid)
        e = self._entry
        if e is not None:
            level = view.severity_levels[e.severity]
            acute = ", acute medication" if e.acute else ""
            return f"{day}: {level}, {e.hours or '?'} h{acute} — Enter records, Esc drops"
        recorded = view.days.get(day)
        return f"{day}: " + (describe_version(recorded) if recorded else "not recorded")

    # --- keys --------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Entry keys only for those who record diaries."""
        name = action.split("(")[0]
        if name in WRITES:
            return self._actor.can(Permission.RECORD_DIARY) and self._consented()
        return True

    def _consented(self) -> bool:
        """The diary starts at consent (unknown until read: the service checks anyway)."""
        return self._view is None or self._view.outcomes.consented_on is not None

    def action_move(self, by: int) -> None:
        """Move the cursor (a pending entry is dropped)."""
        self._entry = None
        self._cursor += by
        self._draw()

    def action_window(self, by: int) -> None:
        """Switch window."""
        if self._view is not None:
            self._entry = None
            self._window = (self._window + by) % len(self._view.outcomes.windows)
            self._draw()

    def action_digit(self, n: int) -> None:
        """0: no headache; 1-3: a severity; while entering, digits are hours."""
        if self._entry is not None:
            if len(self._entry.hours) < 2:
                self._entry.hours += str(n)
        elif n == 0:
            self._save(False, self._levels()[0], 0.0, acute=False)
            return
        elif n <= 3:
            self._entry = Entry(n)
        else:
            self.notify("0 for no headache, 1/2/3 for its severity.", severity="warning")
        self._draw()

    def action_erase(self) -> None:
        """Erase the last hour digit."""
        if self._entry is not None:
            self._entry.hours = self._entry.hours[:-1]
            self._draw()

    def action_toggle_acute(self) -> None:
        """Acute medication on the day being entered."""
        if self._entry is not None:
            self._entry.acute = not self._entry.acute
            self._draw()

    def action_record_entry(self) -> None:
        """Record the day being entered."""
        e = self._entry
        if e is None:
            return
        if not e.hours or not 0 < int(e.hours) <= 24:
            self.notify("Type the hours of headache (1-24).", severity="warning")
            return
        self._save(True, self._levels()[e.severity], float(e.hours), acute=e.acute)

    def _levels(self) -> tuple[str, ...]:
        return self._view.severity_levels if self._view else ("none",)

    def _save(self, headache: bool, severity: str, hours: float, *, acute: bool) -> None:
        on, view = self.cursor_day(), self._view
        if on is None or view is None or self._busy:
            return
        day = DiaryDay(on, headache, severity, hours, acute)
        recorded = view.days.get(on)
        if recorded is None:
            self._record(day, None)
            return
        after = describe_version(replace(
            recorded, headache=headache, severity=severity, duration_hours=hours,
            acute_medication=acute))

        def corrected(reason: str | None) -> None:
            if reason is not None:
                self._record(day, reason)

        self.app.push_screen(
            CorrectionDialog(self._pid, on, describe_version(recorded), after), corrected)

    def _record(self, day: DiaryDay, reason: str | None) -> None:
        self._busy = True
        self._write(day, reason)

    @work(thread=True, exclusive=True, group="diary-write")
    def _write(self, day: DiaryDay, reason: str | None) -> None:
        try:
            self._db.record_day(self._actor, self._pid, day, reason=reason)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(DayRecorded(day.day))

    def on_day_recorded(self, message: DayRecorded) -> None:
        """Recorded: on to the next day, and read the completeness again."""
        self._entry = None
        if self.cursor_day() == message.on:
            self._cursor += 1
        self._load()

    def on_service_failed(self, _message: ServiceFailed) -> None:
        """Refused (the app says why)."""
        self._busy = False

    def action_day_history(self) -> None:
        """Every version of the day under the cursor."""
        on = self.cursor_day()
        if on is not None:
            self._history(on)

    @work(thread=True, exclusive=True, group="diary-history")
    def _history(self, on: date) -> None:
        try:
            versions = self._db.day_history(self._actor, self._pid, on)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(DayHistoryLoaded(on, versions))

    def on_day_history_loaded(self, message: DayHistoryLoaded) -> None:
        """Show the versions."""
        self.app.push_screen(HistoryDialog(self._pid, message.on, message.versions))

    def action_refresh(self) -> None:
        """Read the diary again."""
        self._load()

    def action_back(self) -> None:
        """Drop the entry being typed; else back to the participants."""
        if self._entry is not None:
            self._entry = None
            self._draw()
        else:
            self.dismiss(None)
