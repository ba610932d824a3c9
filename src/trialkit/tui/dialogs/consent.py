"""Recording informed consent: the date (today by default) and the form version signed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Input, Label, Select

from trialkit.tui.dialogs.dialog import Dialog


@dataclass(frozen=True)
class ConsentEntry:
    """The consent as typed: when, and which approved form."""

    on: date
    form_version: str


class ConsentDialog(Dialog[ConsentEntry | None]):
    """Date and form version for one participant; None when cancelled."""

    def __init__(self, participant_id: str, *, today: date, form_versions: tuple[str, ...]) -> None:
        super().__init__(f"Consent of {participant_id}", cancel_result=None, ok_label="Record")
        self._today = today
        self._versions = form_versions

    def fields(self) -> ComposeResult:
        """Date, then form version (the latest approved one chosen)."""
        with Grid(classes="dialog-grid"):
            yield Label("Date signed")
            yield Input(self._today.isoformat(), placeholder="YYYY-MM-DD", id="consent-date",
                        compact=True)
            yield Label("Form version")
            yield Select(
                [(v, v) for v in self._versions], value=self._versions[-1], allow_blank=False,
                id="consent-version", compact=True,
            )

    def result(self) -> ConsentEntry | None:
        """The entry, or a ValueError saying what to fix."""
        text = self.query_one("#consent-date", Input).value.strip()
        try:
            on = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text or 'an empty date'} is not a date like 2026-03-01") from None
        version = self.query_one("#consent-version", Select).value
        if not isinstance(version, str):
            raise ValueError("Choose the consent form version.")
        return ConsentEntry(on, version)
