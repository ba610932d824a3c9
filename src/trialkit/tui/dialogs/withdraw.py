"""Withdrawing a participant: a reason is required, and kept in the audit trail."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Input, Static

from trialkit.tui.dialogs.dialog import Dialog


class WithdrawDialog(Dialog[str | None]):
    """Asks why; returns the reason, or None when cancelled."""

    def __init__(self, participant_id: str) -> None:
        super().__init__(f"Withdraw {participant_id}", cancel_result=None, ok_label="Withdraw")
        self._pid = participant_id

    def fields(self) -> ComposeResult:
        """What happens, and the reason."""
        yield Static(
            Content(f"Everything recorded for {self._pid} so far is kept. Why are they leaving?"),
            classes="dialog-text",
        )
        yield Input(placeholder="Reason (required)", id="withdraw-reason", compact=True)

    def result(self) -> str | None:
        """The reason, which may not be empty."""
        reason = self.query_one("#withdraw-reason", Input).value.strip()
        if not reason:
            raise ValueError("A reason is required to withdraw a participant.")
        return reason
