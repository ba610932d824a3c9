"""Enrolling a custodian's second factor: the QR code and URI shown once, then the
password and the code the authenticator app shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Input, Static

from trialkit.tui.dialogs.dialog import Dialog

if TYPE_CHECKING:
    from trialkit.services.administration.second_factor import SecondFactorOffer


class SecondFactorDialog(Dialog[tuple[str, str] | None]):
    """Returns (password, code), or None when put off (asked again at the next sign-in)."""

    def __init__(self, offer: SecondFactorOffer) -> None:
        super().__init__("Second factor", cancel_result=None, ok_label="Enrol")
        self._offer = offer

    def fields(self) -> ComposeResult:
        """What to do, the QR code, the URI, the password and code boxes."""
        yield Static(Content(
            "Custodians also sign in with a code from an authenticator app. Scan this with "
            "the app (shown only now); type your password and the app's code."))
        yield Static(Content(self._offer.qr_text.rstrip("\n")), id="second-factor-qr")
        yield Static(Content(self._offer.uri), id="second-factor-uri")
        yield Input(placeholder="Your password", password=True, id="factor-password",
                    compact=True)
        yield Input(placeholder="Code the app shows", id="factor-code", max_length=8,
                    compact=True)

    def result(self) -> tuple[str, str] | None:
        """The password and the code, neither empty."""
        password = self.query_one("#factor-password", Input).value
        code = self.query_one("#factor-code", Input).value.strip()
        if not password:
            self.query_one("#factor-password", Input).focus()
            raise ValueError("Type your password.")
        if not code:  # Enter after the password: on to the code
            self.query_one("#factor-code", Input).focus()
            raise ValueError("Type the code the app shows.")
        return password, code
