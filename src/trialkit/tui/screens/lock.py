"""The lock screen: hides everything until the signed-in user's password is given again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Container, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from trialkit.application.trial_database import SignIn, TrialDatabase
from trialkit.tui.messages import LoginSucceeded
from trialkit.tui.widgets.sign_in_form import SignInForm
from trialkit.tui.widgets.training_banner import TrainingBanner

if TYPE_CHECKING:
    from trialkit.services.actor import Actor


class LockScreen(Screen[SignIn]):
    """An opaque screen naming who is signed in, with a password box. Dismissed with the
    fresh sign-in once the password is accepted (through the audited sign-in service, so
    wrong passwords count toward lockout as anywhere else)."""

    def __init__(self, db: TrialDatabase, actor: Actor, *, second_factor: bool = False) -> None:
        super().__init__()
        self._db = db
        self._actor = actor
        self._second_factor = second_factor

    def compose(self) -> ComposeResult:
        """Only the banner, who is signed in, and the password box."""
        yield TrainingBanner()
        with Container(classes="centred"), Vertical(id="lock-box"):
            yield Static("Screen locked", id="lock-heading")
            yield Static(
                Content(f"Signed in: {self._actor.name} ({self._actor.role.value})"),
                id="lock-who",
            )
            yield Static("Enter your password and the code your app shows to unlock."
                         if self._second_factor else "Enter your password to unlock.")
            yield SignInForm(self._db, user_name=self._actor.name,
                             second_factor=self._second_factor, id="unlock")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Ready for the password."""
        self.query_one(SignInForm).focus_first()

    def on_login_succeeded(self, message: LoginSucceeded) -> None:
        """Unlock: hand the fresh sign-in back to the app."""
        message.stop()
        self.dismiss(message.signin)
