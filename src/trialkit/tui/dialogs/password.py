"""Asking for the signed-in user's password again before a key is used (masked)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Input, Static

from trialkit.tui.dialogs.dialog import Dialog


class PasswordDialog(Dialog[str | None]):
    """Says why the password is needed; returns it, or None when cancelled."""

    def __init__(self, title: str, why: str, *, ok_label: str = "OK") -> None:
        super().__init__(title, cancel_result=None, ok_label=ok_label)
        self._why = why

    def fields(self) -> ComposeResult:
        """Why, and the masked password box."""
        yield Static(Content(self._why), classes="dialog-text")
        yield Input(placeholder="Your password", password=True, id="key-password", compact=True)

    def result(self) -> str | None:
        """The password, which may not be empty."""
        password = self.query_one("#key-password", Input).value
        if not password:
            raise ValueError("Type your password.")
        return password
