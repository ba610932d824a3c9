"""First sign-in with a one-time enrolment code: the person chooses their own password
(typed twice) and their own keys are made under it; then they are signed in."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Input, Static

from trialkit.application.trial_database import TrialDatabase
from trialkit.domain.errors import TrialkitError
from trialkit.tui.messages import LoginFailed, LoginSucceeded
from trialkit.tui.widgets.field_form import FieldForm
from trialkit.tui.wording import tui_message

FIELDS = ("activate-name", "activate-code", "activate-password", "activate-again")


class ActivationForm(FieldForm):
    """Name, enrolment code, new password twice. Enter moves on (however fast it is typed,
    see ``FieldForm``); Enter in the last submits.
    The result is posted as ``LoginSucceeded`` or ``LoginFailed`` like a sign-in."""

    def __init__(self, db: TrialDatabase, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._db = db

    def compose(self) -> ComposeResult:
        """The four inputs and a line for messages."""
        yield Input(placeholder="User name", id="activate-name")
        yield Input(placeholder="Enrolment code (from your trial admin)", id="activate-code")
        yield Input(placeholder="Choose a password", password=True, id="activate-password")
        yield Input(placeholder="The same password again", password=True, id="activate-again")
        yield Static("", id="activate-message")

    def focus_first(self) -> None:
        self.query_one("#activate-name", Input).focus()

    def submit(self) -> None:
        """Enter in the last field: set up the account."""
        name, code, password, again = (self.query_one(f"#{f}", Input).value for f in FIELDS)
        if not name.strip() or not code.strip():
            self._say("Enter your user name and the enrolment code you were given.")
            return
        if password != again:
            self._say("The two passwords differ; type them again.")
            self._clear_passwords()
            return
        self._set_busy(True)
        self._say("Setting up your account…", error=False)
        self._activate(name.strip(), code.strip(), password)

    @work(thread=True, exclusive=True, group="activate")
    def _activate(self, name: str, code: str, password: str) -> None:
        try:
            signin = self._db.activate(name, code, password)
        except TrialkitError as exc:
            self.post_message(LoginFailed(tui_message(exc)))
        else:
            self.post_message(LoginSucceeded(signin))

    def on_login_failed(self, message: LoginFailed) -> None:
        message.stop()
        self._set_busy(False)
        self._say(message.message)
        self._clear_passwords()

    def on_login_succeeded(self, _message: LoginSucceeded) -> None:
        """Forget what was typed; the message bubbles on to the app."""
        self._set_busy(False)
        for field in self.query(Input):
            field.value = ""
        self._say("", error=False)

    def _clear_passwords(self) -> None:
        for f in ("activate-password", "activate-again"):
            self.query_one(f"#{f}", Input).value = ""
        self.query_one("#activate-password", Input).focus()

    def _set_busy(self, busy: bool) -> None:
        for field in self.query(Input):
            field.disabled = busy

    def _say(self, text: str, *, error: bool = True) -> None:
        line = self.query_one("#activate-message", Static)
        line.update(Content(text))
        line.set_class(error, "error")
