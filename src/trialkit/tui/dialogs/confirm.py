"""Yes-or-no questions asked before an irreversible step."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Button, Static

from trialkit.tui.dialogs.dialog import Dialog


class ConfirmDialog(Dialog[bool]):
    """Says what will happen; True only if the user presses the confirm button."""

    def __init__(self, title: str, question: str, *, confirm: str) -> None:
        super().__init__(title, cancel_result=False, ok_label=confirm)
        self._question = question

    def fields(self) -> ComposeResult:
        """The question."""
        yield Static(Content(self._question), classes="dialog-text")

    def result(self) -> bool:
        """Confirmed."""
        return True

    def on_mount(self) -> None:
        """Enter confirms, Escape cancels."""
        self.query_one("#ok", Button).focus()
