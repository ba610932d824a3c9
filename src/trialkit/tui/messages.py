"""Typed messages that thread workers post back to the UI thread.

Workers never touch widgets: they post one of these, and a handler on the UI thread
updates the screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from trialkit.services.trial import TrialInfo
    from trialkit.tui.trial_db import SignIn


class TrialLoaded(Message):
    """The trial details were read from the database."""

    def __init__(self, trial: TrialInfo) -> None:
        super().__init__()
        self.trial = trial


class LoginSucceeded(Message):
    """A user name and password were accepted (sign-in or unlock)."""

    def __init__(self, signin: SignIn) -> None:
        super().__init__()
        self.signin = signin


class LoginFailed(Message):
    """A sign-in was refused; ``message`` is the service's words for the user."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class ServiceFailed(Message):
    """A database call in a worker was refused or failed; shown as a notification."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message
