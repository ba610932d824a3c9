"""Diary dialogs: correcting a recorded day (a reason is required; the old version is kept)
and the history of a day (every version, oldest first). Blinded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Input, Static

from trialkit.domain.site_time import shown
from trialkit.domain.text import printable
from trialkit.tui.dialogs.dialog import Dialog

if TYPE_CHECKING:
    from datetime import date

    from trialkit.services.diary.entries import DiaryVersion


def describe_version(v: DiaryVersion) -> str:
    """One version in words."""
    if not v.headache:
        what = "no headache"
    else:
        what = f"{v.severity} headache, {v.duration_hours:g} h"
    if v.acute_medication:
        what += ", acute medication"
    return what


class CorrectionDialog(Dialog[str | None]):
    """Says what changes; returns the reason, or None when cancelled."""

    def __init__(self, pid: str, on: date, before: str, after: str) -> None:
        super().__init__(f"Correct {pid} {on}", cancel_result=None, ok_label="Correct")
        self._text = (f"Recorded: {before}\nNew:      {after}\n\n"
                      "The recorded version is kept in the history.")

    def fields(self) -> ComposeResult:
        """The change and the reason."""
        yield Static(Content(self._text), classes="dialog-text")
        yield Input(placeholder="Reason for the correction (required)", id="correction-reason",
                    compact=True)

    def result(self) -> str | None:
        """The reason, which may not be empty."""
        reason = self.query_one("#correction-reason", Input).value.strip()
        if not reason:
            raise ValueError("A correction needs a reason.")
        return reason


class HistoryDialog(Dialog[None]):
    """Every version of one day."""

    def __init__(self, pid: str, on: date, versions: list[DiaryVersion]) -> None:
        super().__init__(f"History of {pid} {on}", cancel_result=None, ok_label="Close",
                         show_cancel=False)
        lines = []
        for v in versions:
            lines.append(f"v{v.version}{' (current)' if v.current else ''}: {describe_version(v)}")
            why = f" — {printable(v.reason)}" if v.reason else ""
            lines.append(f"   by {v.recorded_by}, {shown(v.recorded_at)}{why}")
        self._text = "\n".join(lines) or "Nothing recorded for this day."

    def fields(self) -> ComposeResult:
        """The versions."""
        yield Static(Content(self._text), id="day-history", classes="dialog-text")

    def result(self) -> None:
        """Close."""
        return None
