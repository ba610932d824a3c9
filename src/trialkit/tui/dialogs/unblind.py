"""Emergency unblinding: a reason (required) and the password, then the arm in this dialog
only. Nothing of the answer leaves the dialog: closing it forgets the arm."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Button, Input, Static

from trialkit.domain.errors import TrialkitError
from trialkit.tui.dialogs.dialog import Dialog
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from trialkit.application.trial_database import TrialDatabase
    from trialkit.services.actor import Actor
    from trialkit.services.pharmacy.unblinding import Unblinding
    from trialkit.tui.app import TrialkitApp


def describe_unblinding(u: Unblinding) -> str:
    """What the requester is shown. UNBLINDED."""
    lines = [f"{u.participant_id} ({u.randomization_number}) received:", "",
             f"  {u.arm_name} ({u.arm_code})", ""]
    if u.record is not None:
        lots = ", ".join(f"{k} {v}" for k, v in sorted(u.record.lots.items()))
        lines.append(f"Prepared by {u.record.prepared_by}, lots: {lots}")
    lines.append("Audited with your reason. Close this dialog when done.")
    return "\n".join(lines)


class UnblindDialog(Dialog[bool]):
    """Reason and password; OK unblinds (in a worker) and shows the arm here. Returns
    whether the participant was unblinded."""

    def __init__(self, db: TrialDatabase, actor: Actor, pid: str) -> None:
        super().__init__(f"Emergency unblind {pid}", cancel_result=False, ok_label="Unblind")
        self._db = db
        self._actor = actor
        self._pid = pid
        self._done = False

    def fields(self) -> ComposeResult:
        """What happens, the reason, the password, and (later) the answer."""
        yield Static(
            Content(f"Only for a medical emergency: the arm of {self._pid} is shown to you "
                    "alone, the participant is flagged and the reason audited."),
            classes="dialog-text",
        )
        yield Input(placeholder="Reason (required)", id="unblind-reason", compact=True)
        yield Input(placeholder="Your password", password=True, id="unblind-password",
                    compact=True)
        yield Static("", id="unblind-answer", classes="unblinded")

    def result(self) -> bool:
        """Unblind on OK; once the arm is shown, OK closes."""
        if self._done:
            return True
        reason = self.query_one("#unblind-reason", Input).value.strip()
        password = self.query_one("#unblind-password", Input).value
        if not reason:
            raise ValueError("A reason is required to unblind.")
        if not password:
            raise ValueError("Type your password.")
        self.say("Opening the envelope…")
        self._unblind(reason, password)
        raise ValueError("Opening the envelope…")

    @work(thread=True, exclusive=True, group="unblind")
    def _unblind(self, reason: str, password: str) -> None:
        try:
            answer = self._db.unblind(self._actor, self._pid, reason=reason, password=password)
        except TrialkitError as exc:
            self.app.call_from_thread(self.say, tui_message(exc))
        else:
            self.app.call_from_thread(self._show, describe_unblinding(answer))

    def _show(self, text: str) -> None:
        if cast("TrialkitApp", self.app).discard_while_locked(
            f"The emergency unblinding of {self._pid} was recorded while the screen was "
            "locked, so the arm was not shown. Unblind again to see it."
        ):
            self.say("The answer arrived while the screen was locked and was not shown.")
            return
        self._done = True
        self.say("")
        for field in self.query(Input):
            field.disabled = True
        answer = self.query_one("#unblind-answer", Static)
        answer.border_title = "UNBLINDED — you only"
        answer.update(Content(text))
        answer.add_class("shown")
        ok = self.query_one("#ok", Button)
        ok.label = "Close"
        self.query_one("#cancel", Button).display = False  # done: nothing left to cancel
        ok.focus()
