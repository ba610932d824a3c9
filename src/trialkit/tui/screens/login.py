"""The sign-in screen: the trial's title, TRAINING when it applies, name and password."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Container, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from trialkit.application.opening import TrialHeading
from trialkit.application.trial_database import TrialDatabase
from trialkit.domain.errors import TrialkitError
from trialkit.tui.commands import FIRST_SIGN_IN
from trialkit.tui.messages import ServiceFailed, TrialHeadingRead, TrialLoaded
from trialkit.tui.widgets.activation_form import ActivationForm
from trialkit.tui.widgets.sign_in_form import SignInForm
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.wording import tui_message


class LoginScreen(Screen[None]):
    """Shown first and after signing out. The trial is read after the screen appears.
    A new user's first sign-in (with the enrolment code) is one key away."""

    BINDINGS = [FIRST_SIGN_IN.binding()]

    def __init__(self, db: TrialDatabase) -> None:
        super().__init__()
        self._db = db
        self._heading: TrialHeading | None = None

    def compose(self) -> ComposeResult:
        """Header, banner, and a centred sign-in box, with the trial's title from the
        first frame when the database is a SQLite file given by its path (a glance with
        the standard library: a millisecond, no SQLAlchemy)."""
        self._heading = self._db.heading()
        yield Header()
        yield TrainingBanner()
        with Container(classes="centred"), Vertical(id="login-box"):
            yield Static(Content(self._heading.title) if self._heading else "Reading the trial…",
                         id="login-trial")
            yield Static("Sign in", classes="heading", id="login-heading")
            yield SignInForm(self._db, id="sign-in")
            activation = ActivationForm(self._db, id="activate")
            activation.display = False
            yield activation
            yield Static(
                Content("First time here? Press F2 to sign in with your enrolment code."),
                id="first-sign-in-hint",
            )
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Start typing at once; fill in the trial when the database answers. The full
        read starts once the screen has painted: opening the database imports SQLAlchemy,
        which would otherwise hold up the first paint (and, after a glance, the title's)."""
        self.query_one(SignInForm).focus_first()
        if self._heading is not None:
            self.post_message(TrialHeadingRead(self._heading))  # the app learns TRAINING
        else:
            self.call_after_refresh(self._load_trial)

    def action_first_sign_in(self) -> None:
        """Switch between signing in and a first sign-in with an enrolment code."""
        sign_in, activation = self.query_one(SignInForm), self.query_one(ActivationForm)
        first = not activation.display
        activation.display, sign_in.display = first, not first
        self.query_one("#login-heading", Static).update(
            Content("First sign-in" if first else "Sign in")
        )
        self.query_one("#first-sign-in-hint", Static).update(Content(
            "Press F2 to go back to signing in with your password." if first
            else "First time here? Press F2 to sign in with your enrolment code."
        ))
        (activation if first else sign_in).focus_first()

    @work(thread=True, exclusive=True, group="trial-info")
    def _load_trial(self) -> None:
        try:
            if self._heading is None:  # no glance: the title by a light query once open
                heading = self._db.opened_heading()
                if heading is not None:
                    self.post_message(TrialHeadingRead(heading))
            trial = self._db.trial_info()
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(TrialLoaded(trial))

    def on_trial_heading_read(self, message: TrialHeadingRead) -> None:
        """After the glance (the title is on screen from the first frame), read the trial
        in full once it has painted (the schema check, what signing in needs); without
        one, the full read has just read the heading: show it. The message bubbles on so
        the app learns TRAINING."""
        if self._heading is not None:
            self.call_after_refresh(self._load_trial)
        else:
            self.query_one("#login-trial", Static).update(Content(message.heading.title))

    def on_trial_loaded(self, message: TrialLoaded) -> None:
        """Show the title (and the code box if custodians have a second factor); the
        message bubbles on so the app learns the trial too."""
        self.query_one("#login-trial", Static).update(Content(message.trial.title))
        self.query_one(SignInForm).ask_for_code(message.trial.second_factor)

    def on_service_failed(self, message: ServiceFailed) -> None:
        """Say why the trial could not be read (the app also notifies)."""
        line = self.query_one("#login-trial", Static)
        line.update(Content(message.message))
        line.add_class("error")
