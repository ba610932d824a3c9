"""Approving a custodian: the fingerprint they read out, and the approver's password."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Grid
from textual.content import Content
from textual.widgets import Input, Label, Static

from trialkit.tui.dialogs.dialog import Dialog


@dataclass(frozen=True)
class ApprovalRequest:
    fingerprint: str
    password: str


class ApproveDialog(Dialog[ApprovalRequest | None]):
    """Type the fingerprint the custodian reads out to you (not the one on this screen)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Approve {name}", cancel_result=None, ok_label="Approve")
        self._name = name

    def fields(self) -> ComposeResult:
        """Why, then the fingerprint and the password."""
        yield Static(
            Content(f"Ask {self._name}, in person or by phone, to read out the custodian key "
                    "fingerprint their activation showed, and type it here. If it differs "
                    "from the account's key, someone else activated it: nothing is approved."),
            classes="dialog-text",
        )
        with Grid(classes="dialog-grid"):
            yield Label("Fingerprint")
            yield Input(placeholder="16 hex digits", id="fingerprint", compact=True)
            yield Label("Your password")
            yield Input(placeholder="unlocks the list keys you hold", password=True,
                        id="approver-password", compact=True)

    def result(self) -> ApprovalRequest | None:
        """The request, or a ValueError saying what is missing."""
        fingerprint = self.query_one("#fingerprint", Input).value.strip()
        password = self.query_one("#approver-password", Input).value
        if not fingerprint:
            raise ValueError(f"Type the fingerprint {self._name} reads out to you.")
        if not password:
            raise ValueError("Type your password.")
        return ApprovalRequest(fingerprint, password)
