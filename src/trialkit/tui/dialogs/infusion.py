"""Planning and recording a participant's infusion: a date (and, when recording, the time
it started). The rules (who may, when, whether the preparation had expired) are the
services'; these only read what was typed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time

from textual.app import ComposeResult
from textual.containers import Grid
from textual.content import Content
from textual.widgets import Input, Label, Static

from trialkit.domain.errors import InvalidInput
from trialkit.tui.dialogs.dialog import Dialog
from trialkit.tui.wording import tui_message


def _date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text.strip() or 'an empty ' + what} is not a date like 2026-03-01"
                         ) from None


class ScheduleDialog(Dialog[date | None]):
    """The planned infusion day (the pharmacy queue shows it); None when cancelled."""

    def __init__(self, participant_id: str, *, today: date) -> None:
        super().__init__(f"Plan the infusion of {participant_id}", cancel_result=None,
                         ok_label="Plan")
        self._today = today

    def fields(self) -> ComposeResult:
        """What it is for, then the day."""
        yield Static(Content("The pharmacy's queue shows this day, so the infusion is "
                             "prepared in time. It may be moved until the infusion."),
                     classes="dialog-text")
        with Grid(classes="dialog-grid"):
            yield Label("Infusion day")
            yield Input(self._today.isoformat(), placeholder="YYYY-MM-DD", id="planned-date",
                        compact=True)

    def result(self) -> date | None:
        """The day, or a ValueError saying what to fix."""
        return _date(self.query_one("#planned-date", Input).value, "date")


@dataclass(frozen=True)
class InfusionEntry:
    """The infusion as typed: its day, and the site's wall-clock time it started (None:
    now for an infusion today; an earlier day needs a preparation good all that day)."""

    on: date
    at: time | None


class InfuseDialog(Dialog[InfusionEntry | None]):
    """Day and start time of the infusion (study day 0); None when cancelled."""

    def __init__(self, participant_id: str, *, today: date) -> None:
        super().__init__(f"Record the infusion of {participant_id}", cancel_result=None,
                         ok_label="Record")
        self._today = today

    def fields(self) -> ComposeResult:
        """Day and start time."""
        yield Static(Content("Study day 0. Refused if the preparation had expired when the "
                             "infusion started (to the minute)."), classes="dialog-text")
        with Grid(classes="dialog-grid"):
            yield Label("Day")
            yield Input(self._today.isoformat(), placeholder="YYYY-MM-DD", id="infusion-date",
                        compact=True)
            yield Label("Started at")
            yield Input(placeholder="HH:MM, site time (empty: now)", id="infusion-time",
                        compact=True)

    def result(self) -> InfusionEntry | None:
        """The entry, or a ValueError saying what to fix."""
        from trialkit.domain.infusion_time import parse_time

        on = _date(self.query_one("#infusion-date", Input).value, "date")
        text = self.query_one("#infusion-time", Input).value.strip()
        try:
            at = parse_time(text) if text else None
        except InvalidInput as exc:
            raise ValueError(tui_message(exc)) from None
        return InfusionEntry(on, at)
