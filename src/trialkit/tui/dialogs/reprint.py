"""Reprinting a dispensed participant's labels: which participant, and where to write them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Input, Static

from trialkit.tui.dialogs.dialog import Dialog
from trialkit.tui.screens.preparation import default_labels_path, labels_path

if TYPE_CHECKING:
    from trialkit.tui.app import TrialkitApp


class ReprintDialog(Dialog[tuple[str, Path] | None]):
    """Returns the participant id and the PDF path, or None when cancelled."""

    def __init__(self, pid: str, folder: Path) -> None:
        super().__init__("Reprint labels", cancel_result=None, ok_label="Reprint")
        self._pid = pid
        self._folder = folder

    def fields(self) -> ComposeResult:
        """The participant and the file (default labels-<PID>.pdf in the label folder)."""
        yield Static(Content("Each reprint is counted on the label and audited."),
                     classes="dialog-text")
        yield Input(self._pid, placeholder="Participant id", id="reprint-pid", compact=True)
        yield Input(placeholder=f"PDF path (default labels-<PID>.pdf in {self._folder})",
                    id="reprint-path",
                    compact=True)

    def result(self) -> tuple[str, Path] | None:
        """The id (upper-cased) and a writable .pdf path."""
        pid = self.query_one("#reprint-pid", Input).value.strip().upper()
        if not pid:
            raise ValueError("Which participant's labels?")
        text = self.query_one("#reprint-path", Input).value.strip() or default_labels_path(
            pid, self._folder)
        return pid, labels_path(cast("TrialkitApp", self.app).place(text), self._folder)
