"""Typed messages that thread workers post back to the UI thread.

Workers never touch widgets: they post one of these, and a handler on the UI thread
updates the screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from datetime import date
    from pathlib import Path

    from trialkit.application.opening import TrialHeading
    from trialkit.application.trial_database import DiaryView, SignIn
    from trialkit.domain.protocol import Protocol
    from trialkit.render.labels import LabelSheet
    from trialkit.services.administration.custody import Approval, CustodianView
    from trialkit.services.administration.database_lock import LockResult
    from trialkit.services.administration.trial import TrialInfo
    from trialkit.services.administration.users import NewAccount, UserView
    from trialkit.services.diary.entries import DiaryVersion
    from trialkit.services.diary.outcomes import ParticipantOutcomes
    from trialkit.services.enrolment.allocation import SealResult, StratumUse
    from trialkit.services.enrolment.design_report import DesignReport
    from trialkit.services.enrolment.participants import (
        ParticipantFilter,
        ParticipantView,
        Randomization,
    )
    from trialkit.services.exports.status import TrialCounts, TrialStatus
    from trialkit.services.pharmacy.dispensing import Dispensing, QueueEntry
    from trialkit.services.pharmacy.unblinding import UnblindingEntry


class TrialHeadingRead(Message):
    """The trial's title and training flag were read, ahead of the full read."""

    def __init__(self, heading: TrialHeading) -> None:
        super().__init__()
        self.heading = heading


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


class ProtocolLoaded(Message):
    """The trial's stored protocol was read (criteria, factors, consent form versions)."""

    def __init__(self, protocol: Protocol) -> None:
        super().__init__()
        self.protocol = protocol


class ParticipantsLoaded(Message):
    """The participants list was read: all of them (``wanted`` None), or the first page of
    those passing ``wanted``. ``reading`` numbers the read it belongs to."""

    def __init__(self, participants: list[ParticipantView], *, reading: int,
                 wanted: ParticipantFilter | None = None) -> None:
        super().__init__()
        self.participants = participants
        self.reading = reading
        self.wanted = wanted


class ParticipantChanged(Message):
    """A participant was screened, consented or withdrawn; ``what`` says which, in words."""

    def __init__(self, participant: ParticipantView, what: str) -> None:
        super().__init__()
        self.participant = participant
        self.what = what


class StepRecorded(Message):
    """A step recorded for a participant (an infusion planned or given, a diary file
    imported): ``text`` says what, in words; ``pid`` is the participant to select."""

    def __init__(self, pid: str | None, text: str) -> None:
        super().__init__()
        self.pid = pid
        self.text = text


class OutcomesLoaded(Message):
    """One participant's outcomes per window (blinded)."""

    def __init__(self, outcomes: ParticipantOutcomes) -> None:
        super().__init__()
        self.outcomes = outcomes


class DiaryImportRefused(Message):
    """A diary file was refused: nothing stored; its problems (the first hundred) and how
    many there were."""

    def __init__(self, source: str, problems: list[str], total: int) -> None:
        super().__init__()
        self.source = source
        self.problems = problems
        self.total = total


class ParticipantRandomized(Message):
    """A randomization number and label code were given (never an arm)."""

    def __init__(self, randomization: Randomization) -> None:
        super().__init__()
        self.randomization = randomization


class StrataLoaded(Message):
    """Envelope counts per stratum were read."""

    def __init__(self, strata: list[StratumUse]) -> None:
        super().__init__()
        self.strata = strata


class UsersLoaded(Message):
    """Every user was read (admin)."""

    def __init__(self, users: list[UserView]) -> None:
        super().__init__()
        self.users = users


class UserAdded(Message):
    """A user was added: their one-time enrolment code is in ``account``, shown once."""

    def __init__(self, account: NewAccount) -> None:
        super().__init__()
        self.account = account


class UserChanged(Message):
    """A user was disabled or enabled."""

    def __init__(self, name: str, disabled: bool) -> None:
        super().__init__()
        self.name = name
        self.disabled = disabled


class CustodiansLoaded(Message):
    """The custodians were read, with why the signed-in user may not approve (or None)."""

    def __init__(self, custodians: list[CustodianView], refusal: str | None) -> None:
        super().__init__()
        self.custodians = custodians
        self.refusal = refusal


class CustodianApproved(Message):
    """A custodian was approved (and handed the list keys the approver holds)."""

    def __init__(self, approval: Approval) -> None:
        super().__init__()
        self.approval = approval


class DesignReportReady(Message):
    """The protocol's design report was computed; ``then`` is what it was asked for
    ("seal" or "extend")."""

    def __init__(self, report: DesignReport, then: str) -> None:
        super().__init__()
        self.report = report
        self.then = then


class ListsSealed(Message):
    """Lists were sealed or a stratum extended; ``verb`` says which."""

    def __init__(self, result: SealResult, verb: str) -> None:
        super().__init__()
        self.result = result
        self.verb = verb


class QueueLoaded(Message):
    """The dispense queue was read (blinded columns)."""

    def __init__(self, entries: list[QueueEntry], label_folder: Path) -> None:
        super().__init__()
        self.entries = entries
        self.label_folder = label_folder  # where label PDFs go unless a file is named


class EnvelopeOpened(Message):
    """An envelope was opened for preparation. UNBLINDED: for the pharmacy screen only."""

    def __init__(self, opened: Dispensing, password: str, *, again: bool = False) -> None:
        super().__init__()
        self.opened = opened
        self.password = password
        self.again = again  # to prepare again: ``opened.record`` is the preparation replaced


class LabelsPrinted(Message):
    """A participant's labels were (re)printed to ``path`` (blinded)."""

    def __init__(self, sheet: LabelSheet, path: Path) -> None:
        super().__init__()
        self.sheet = sheet
        self.path = path


class DiaryLoaded(Message):
    """A participant's diary was read (windows, completeness, current days)."""

    def __init__(self, view: DiaryView) -> None:
        super().__init__()
        self.view = view


class DayRecorded(Message):
    """A diary day was recorded or corrected."""

    def __init__(self, on: date) -> None:
        super().__init__()
        self.on = on


class DayHistoryLoaded(Message):
    """Every version of one diary day was read."""

    def __init__(self, on: date, versions: list[DiaryVersion]) -> None:
        super().__init__()
        self.on = on
        self.versions = versions


class CountsLoaded(Message):
    """The trial's counts (enrolment, CONSORT) were read; the diary's part follows."""

    def __init__(self, counts: TrialCounts) -> None:
        super().__init__()
        self.counts = counts


class StatusLoaded(Message):
    """The trial status (enrolment, CONSORT, completeness, curve) was read."""

    def __init__(self, status: TrialStatus) -> None:
        super().__init__()
        self.status = status


class DatabaseLocked(Message):
    """The database was locked."""

    def __init__(self, result: LockResult, checkpoint: Path) -> None:
        super().__init__()
        self.result = result
        self.checkpoint = checkpoint  # the signed checkpoint of the trail as locked


class UnblindingsLoaded(Message):
    """The emergency-unblinding report was read (never an arm)."""

    def __init__(self, entries: list[UnblindingEntry]) -> None:
        super().__init__()
        self.entries = entries
