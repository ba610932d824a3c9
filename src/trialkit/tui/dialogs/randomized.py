"""What a coordinator learns from randomizing: a number and a label code, never an arm."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Static

from trialkit.tui.dialogs.dialog import Dialog

if TYPE_CHECKING:
    from trialkit.services.enrolment.participants import Randomization


def describe_randomization(r: Randomization) -> str:
    """The lines the dialog shows (the blind holds: nothing here depends on the arm)."""
    first = (
        f"{r.participant_id} was already randomized; no envelope was used now."
        if r.already
        else f"{r.participant_id} is randomized."
    )
    return (
        f"{first}\n\n"
        f"Randomization number  {r.randomization_number}\n"
        f"Label code            {r.label_code}\n\n"
        "Record both. The pharmacy prepares the blinded infusion."
    )


class RandomizedDialog(Dialog[None]):
    """The randomization number and label code of a participant, with one Close button."""

    def __init__(self, randomization: Randomization) -> None:
        super().__init__("Randomized", cancel_result=None, ok_label="Close", show_cancel=False)
        self.randomization = randomization

    def fields(self) -> ComposeResult:
        """Number and label code."""
        yield Static(Content(describe_randomization(self.randomization)), id="randomized-text")

    def result(self) -> None:
        """Nothing to return."""
        return None
