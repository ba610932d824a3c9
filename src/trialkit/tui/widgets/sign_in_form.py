"""User name and password (and, where the protocol gives custodians a second factor, the
code from their authenticator app), checked by the audited sign-in service in a thread
worker."""

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


class SignInForm(FieldForm):
    """A sign-in form. With ``user_name`` given (unlocking), only the password is asked.

    Enter (or Tab) in the name moves to the password, however fast it is typed (see
    ``FieldForm``); Enter in the password submits. The result
    is posted as ``LoginSucceeded`` (left to bubble to the screen or app) or
    ``LoginFailed`` (shown here, with the service's own message)."""

    def __init__(
        self,
        db: TrialDatabase,
        *,
        user_name: str | None = None,
        second_factor: bool = False,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._db = db
        self._fixed_name = user_name
        self._second_factor = second_factor

    def compose(self) -> ComposeResult:
        """The inputs and a line for messages. The code box is shown to everyone when the
        protocol uses a second factor, so it tells nobody who has one."""
        if self._fixed_name is None:
            yield Input(placeholder="User name", id="user-name")
        yield Input(placeholder="Password", password=True, id="password")
        code = Input(placeholder="Code from your authenticator app (custodians)",
                     id="code", max_length=8)
        code.display = self._second_factor
        yield code
        yield Static("", id="sign-in-message")

    def ask_for_code(self, second_factor: bool) -> None:
        """Show the code box when the trial's protocol uses a second factor."""
        self._second_factor = second_factor
        self.query_one("#code", Input).display = second_factor

    def focus_first(self) -> None:
        """Put the cursor where typing should start."""
        first = "#password" if self._fixed_name is not None else "#user-name"
        self.query_one(first, Input).focus()

    def submit(self) -> None:
        """Enter in the password: check the name and password."""
        password = self.query_one("#password", Input)
        name = self._fixed_name or self.query_one("#user-name", Input).value.strip()
        if not name:
            self._say("Enter your user name.", error=True)
            self.focus_first()
            return
        if not password.value:
            self._say("Enter your password.", error=True)
            return
        code = self.query_one("#code", Input).value.strip() if self._second_factor else ""
        self._set_busy(True)
        self._say("Checking…", error=False)
        self._check(name, password.value, code or None)

    @work(thread=True, exclusive=True, group="sign-in")
    def _check(self, name: str, password: str, code: str | None) -> None:
        try:
            signin = self._db.sign_in(name, password, code)
        except TrialkitError as exc:
            self.post_message(LoginFailed(tui_message(exc)))
        else:
            self.post_message(LoginSucceeded(signin))

    def on_login_failed(self, message: LoginFailed) -> None:
        """Show the refusal, clear the password and let the user try again."""
        message.stop()
        self._set_busy(False)
        self._say(message.message, error=True)
        password = self.query_one("#password", Input)
        password.value = ""
        self.query_one("#code", Input).value = ""
        password.focus()

    def on_login_succeeded(self, _message: LoginSucceeded) -> None:
        """Forget the typed password; the message bubbles on to whoever acts on it."""
        self._set_busy(False)
        self.query_one("#password", Input).value = ""
        self.query_one("#code", Input).value = ""
        self._say("", error=False)

    def _set_busy(self, busy: bool) -> None:
        for field in self.query(Input):
            field.disabled = busy
        if not busy:
            self.query_one("#password", Input).focus()

    def _say(self, text: str, *, error: bool) -> None:
        line = self.query_one("#sign-in-message", Static)
        line.update(Content(text))
        line.set_class(error, "error")
