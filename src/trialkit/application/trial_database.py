"""The trial's use cases, one method each: the CLI, the TUI (from thread workers), the
browser gate, the demo and the Gherkin steps call them. Each opens its read or write
transaction (:class:`~trialkit.application.unit_of_work.UnitOfWork`), runs the service that
checks the permission and records the audit event, and commits or rolls back.

No Textual here. Services and SQLAlchemy are imported inside each call so that importing
a face stays light and the TUI's first screen shows before any database work."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import TYPE_CHECKING

from trialkit.application.opening import TrialHeading, read_heading
from trialkit.application.unit_of_work import DatabaseUnavailable, UnitOfWork
from trialkit.domain.errors import TrialkitError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from trialkit.domain.checkpoint import Checkpoint
    from trialkit.domain.clock import Clock
    from trialkit.domain.diary import DiaryDay
    from trialkit.domain.protocol import Protocol
    from trialkit.render.labels import LabelSheet
    from trialkit.services.actor import Actor
    from trialkit.services.administration.custody import Approval, CustodianView
    from trialkit.services.administration.database_lock import LockResult
    from trialkit.services.administration.second_factor import SecondFactorOffer
    from trialkit.services.administration.trial import TrialInfo
    from trialkit.services.administration.users import Activation, NewAccount, UserView
    from trialkit.services.diary.entries import DiaryVersion, RecordedDay
    from trialkit.services.diary.file_import import ImportResult
    from trialkit.services.diary.outcomes import ParticipantOutcomes
    from trialkit.services.enrolment.allocation import SealResult, StratumUse
    from trialkit.services.enrolment.design_report import DesignReport
    from trialkit.services.enrolment.participants import ParticipantView, Randomization
    from trialkit.services.exports.datasets import ExportResult
    from trialkit.services.exports.status import TrialCounts, TrialStatus
    from trialkit.services.integrity.audit_review import AuditFilter, AuditPage
    from trialkit.services.integrity.verification import VerifyReport
    from trialkit.services.pharmacy.dispensing import Dispensing, QueueEntry
    from trialkit.services.pharmacy.unblinding import Unblinding, UnblindingEntry
    from trialkit.store.backup import BackupFile

__all__ = ["DatabaseUnavailable", "DiaryFileUnreadable", "DiaryView", "ScreeningEntry",
           "SignIn", "TrialDatabase", "write_label_file"]


class DiaryFileUnreadable(TrialkitError):
    """The diary file to import could not be read."""

    exit_code = 2


@dataclass(frozen=True)
class SignIn:
    """Who signed in, and the trial as it stood at that moment."""

    actor: Actor
    trial: TrialInfo
    # a custodian of a protocol with a second factor who has not enrolled one yet
    enrol_second_factor: bool = False


@dataclass(frozen=True)
class ScreeningEntry:
    """What the screening form collected, as the screening service takes it."""

    site: str
    age: int
    sex: str
    weight_kg: float
    factors: Mapping[str, str]
    answers: Mapping[str, str]


@dataclass(frozen=True)
class DiaryView:
    """One participant's diary as the calendar shows it (blinded): windows with their dates
    and completeness, and the current version of every recorded day."""

    outcomes: ParticipantOutcomes
    days: dict[date, DiaryVersion]
    today: date
    severity_levels: tuple[str, ...]


class TrialDatabase:
    """The trial database and its use cases. Every method blocks: a TUI calls it from a
    worker.

    ``engine`` is an open engine, or a function that opens one: then the first call (in a
    worker, after the sign-in screen has painted) opens it, once; a failure to open is
    raised as the user's message and the next call tries again."""

    def __init__(
        self, *, engine: Engine | Callable[[], Engine], clock: Clock, label: str,
        sqlite_file: Path | None = None,
    ) -> None:
        self.clock = clock
        self.label = label
        self.uow = UnitOfWork(engine, label=label)
        self._sqlite_file = sqlite_file

    @property
    def engine(self) -> Engine:
        """The engine, opened on first use."""
        return self.uow.engine

    def heading(self) -> TrialHeading | None:
        """The trial's title and training flag, read at once without opening the engine
        when the database is a SQLite file given by its path; else None."""
        if self._sqlite_file is None:
            return None
        return read_heading(self._sqlite_file)

    def opened_heading(self) -> TrialHeading | None:
        """The trial's title and training flag by one light query (no models, no protocol
        parse) once the database is open and its schema checked: what the sign-in screen
        shows of a database it could not glance at, ahead of the full read."""
        from trialkit.store.heading import heading_in

        with self.uow.read() as session:
            return heading_in(session)

    def trial_info(self) -> TrialInfo:
        """Title, version, sites and settings of the trial (a read-only transaction)."""
        from trialkit.services.administration.trial import trial_info

        with self.uow.read() as session:
            return trial_info(session)

    def sign_in(self, name: str, password: str, code: str | None = None) -> SignIn:
        """Check the password (and a custodian's second-factor ``code``) through the
        audited sign-in service (failures slow further attempts) and read the trial in the
        same transaction."""
        from trialkit.services.administration.second_factor import second_factor_to_enrol
        from trialkit.services.administration.sign_in import login
        from trialkit.services.administration.trial import trial_info

        with self.uow.write() as session:
            actor = login(session, name, password, clock=self.clock, code=code)
            return SignIn(actor=actor, trial=trial_info(session),
                          enrol_second_factor=second_factor_to_enrol(session, actor))

    def open_browser_session(self, name: str, signing_key: bytes | None) -> SignIn:
        """A browser session's user, already signed in at the serve sign-in page (which
        unlocked ``signing_key``)."""
        from trialkit.services.administration.second_factor import second_factor_to_enrol
        from trialkit.services.administration.sign_in import open_browser_session
        from trialkit.services.administration.trial import trial_info

        with self.uow.write() as session:
            actor = open_browser_session(session, name, signing_key=signing_key,
                                         clock=self.clock)
            return SignIn(actor=actor, trial=trial_info(session),
                          enrol_second_factor=second_factor_to_enrol(session, actor))

    def offer_second_factor(self, actor: Actor) -> SecondFactorOffer:
        """A new second-factor secret for the signed-in custodian, shown once."""
        from trialkit.services.administration.second_factor import offer_second_factor

        with self.uow.read() as session:
            return offer_second_factor(session, actor)

    def enrol_second_factor(self, actor: Actor, *, password: str, secret: str,
                            code: str) -> None:
        """Keep the offered secret once the app's code proves it was scanned (audited)."""
        from trialkit.services.administration.second_factor import enrol_second_factor

        with self.uow.write() as session:
            enrol_second_factor(session, actor, password=password, secret=secret, code=code,
                                clock=self.clock)

    def activate(self, name: str, code: str, password: str) -> SignIn:
        """First sign-in: the enrolment code, the password the person chooses (their own
        keys are made under it), then an ordinary sign-in with it."""
        self.activate_account(name, code, password)
        return self.sign_in(name, password)

    def activate_account(self, name: str, code: str, password: str) -> Activation:
        """Activate an account with its one-time enrolment code and the password the person
        chooses; their own keys are made under it (what the public halves are comes back)."""
        from trialkit.services.administration.users import activate_user

        with self.uow.write() as session:
            return activate_user(session, name=name, code=code, new_password=password,
                                 clock=self.clock)

    def add_user(
        self, actor: Actor, *, name: str, role: str, sites: list[str], custodian: bool
    ) -> NewAccount:
        """An admin adds a user; the one-time enrolment code comes back to be shown once."""
        from trialkit.domain.roles import parse_role
        from trialkit.services.administration.users import create_user

        parsed = parse_role(role)
        with self.uow.write() as session:
            return create_user(session, actor, name=name, role=parsed, sites=sites,
                               custodian=custodian, clock=self.clock)

    def users(self, actor: Actor) -> list[UserView]:
        """Every user, as an admin lists them (never a secret)."""
        from trialkit.services.administration.users import list_users

        # A refused listing is recorded in the audit trail (after the read rolls back).
        with self.uow.snapshot() as session:
            return list_users(session, actor, clock=self.clock)

    def set_disabled(
        self, actor: Actor, *, name: str, disabled: bool, reason: str | None
    ) -> None:
        """Disable a user (reason kept) or enable them again (audited)."""
        from trialkit.services.administration.users import set_disabled

        with self.uow.write() as session:
            set_disabled(session, actor, name=name, disabled=disabled, reason=reason,
                         clock=self.clock)

    def protocol(self) -> Protocol:
        """The protocol stored with the trial (criteria, factors, consent form versions)."""
        from trialkit.services.administration.trial import stored_protocol

        with self.uow.read() as session:
            return stored_protocol(session)

    def label_folder(self) -> Path:
        """Where label PDFs go unless a file is named (``labels.label_folder``: the
        environment, else the protocol's ``[labels] folder``, else the current folder)."""
        from trialkit.render.labels import label_folder

        return label_folder(self.protocol().labels.folder)

    # --- enrolment (coordinators) ------------------------------------------------------

    def participants(
        self, actor: Actor, *, site: str | None = None, status: str | None = None,
        search: str | None = None, limit: int | None = None,
    ) -> list[ParticipantView]:
        """The participants this user may see (a coordinator: their own sites), filtered;
        ``limit``: only the first ones."""
        from trialkit.services.enrolment.participants import list_participants

        with self.uow.snapshot() as session:
            return list_participants(session, actor, site=site, status=status, search=search,
                                     limit=limit)

    def screen(self, actor: Actor, entry: ScreeningEntry) -> ParticipantView:
        """Record a screening; the answer says the new id and whether they are eligible."""
        from trialkit.services.enrolment.participants import screen

        with self.uow.write() as session:
            return screen(
                session, actor, site=entry.site, age=entry.age, sex=entry.sex,
                weight_kg=entry.weight_kg, factors=entry.factors, answers=entry.answers,
                clock=self.clock,
            )

    def consent(self, actor: Actor, pid: str, *, on: date, form_version: str) -> ParticipantView:
        """Record informed consent."""
        from trialkit.services.enrolment.participants import consent

        with self.uow.write() as session:
            return consent(session, actor, pid, on=on, form_version=form_version, clock=self.clock)

    def randomize(self, actor: Actor, pid: str) -> Randomization:
        """Claim the next sealed envelope: a randomization number and label code, no arm."""
        from trialkit.services.enrolment.participants import randomize

        with self.uow.write() as session:
            return randomize(session, actor, pid, clock=self.clock)

    def withdraw(self, actor: Actor, pid: str, *, reason: str) -> ParticipantView:
        """Withdraw a participant, keeping what was recorded."""
        from trialkit.services.enrolment.participants import withdraw

        with self.uow.write() as session:
            return withdraw(session, actor, pid, reason=reason, clock=self.clock)

    # --- allocation lists (admin) ------------------------------------------------------

    def stratum_usage(self, actor: Actor) -> list[StratumUse]:
        """Sealed, used and left envelopes per stratum (never sizes or arms)."""
        from trialkit.services.enrolment.allocation import stratum_usage

        with self.uow.snapshot() as session:
            return stratum_usage(session, actor)

    def custodians(self, actor: Actor) -> tuple[list[CustodianView], str | None]:
        """Every custodian, and why ``actor`` may not approve one now (None: they may)."""
        from trialkit.services.administration.custody import approval_refusal, list_custodians

        with self.uow.snapshot() as session:
            return list_custodians(session, actor), approval_refusal(session, actor)

    def approve_custodian(
        self, actor: Actor, *, name: str, fingerprint: str, password: str
    ) -> Approval:
        """Approve ``name`` as the second person (audited); hands over the list keys."""
        from trialkit.services.administration.custody import approve_custodian

        with self.uow.write() as session:
            return approve_custodian(
                session, actor, name=name, fingerprint=fingerprint, password=password,
                clock=self.clock,
            )

    def design_report(self) -> DesignReport:
        """The protocol's randomization design beside the alternatives, with the exact
        figures ``trialkit design report`` prints (no arm; no list is read)."""
        from trialkit.services.administration.trial import stored_protocol
        from trialkit.services.enrolment.design_report import design_report

        with self.uow.read() as session:
            protocol = stored_protocol(session)
        return design_report(protocol)

    def seal_lists(
        self,
        actor: Actor,
        *,
        per_stratum: int,
        block_sizes: Sequence[int] | None,
        progress: Callable[[int, int], None],
    ) -> SealResult:
        """Generate and seal a list per stratum; ``progress(done, total)`` after each."""
        from trialkit.services.enrolment.allocation import seal_lists

        with self.uow.write() as session:
            return seal_lists(
                session, actor, per_stratum=per_stratum, block_sizes=block_sizes,
                clock=self.clock, progress=progress,
            )

    def extend_list(self, actor: Actor, *, stratum: str, count: int,
                    block_sizes: Sequence[int] | None = None) -> SealResult:
        """Append envelopes to one stratum (block sizes: the protocol's unless given)."""
        from trialkit.services.enrolment.allocation import extend_list

        with self.uow.write() as session:
            return extend_list(session, actor, stratum=stratum, count=count,
                               block_sizes=block_sizes, clock=self.clock)

    # --- the research pharmacy (pharmacists; unblinding also custodian investigators) -----

    def dispense_queue(self, actor: Actor, *, site: str | None = None) -> list[QueueEntry]:
        """Randomized participants awaiting preparation (at ``site`` only, if given), per
        site, oldest first (blinded columns), from one snapshot."""
        from trialkit.services.pharmacy.dispensing import dispense_queue

        with self.uow.snapshot() as session:
            return dispense_queue(session, actor, clock=self.clock, site=site)

    def open_envelope(self, actor: Actor, pid: str, *, password: str) -> Dispensing:
        """Open the envelope (audited) and read the preparation instructions. UNBLINDED."""
        from trialkit.services.pharmacy.dispensing import dispense

        with self.uow.write() as session:
            return dispense(session, actor, pid, password=password, clock=self.clock)

    def prepare(
        self, actor: Actor, pid: str, *, password: str, lots: Mapping[str, str] | None,
        checked_by: str | None, checker_password: str, labels_path: Path | None,
        checker_code: str | None = None,
    ) -> Dispensing:
        """Open the envelope and record the preparation (the checker signs with their
        password); with ``labels_path`` its first label print too, the labels' PDF written
        (atomically) in the same transaction, so a failure to write undoes the record.
        UNBLINDED."""
        from trialkit.services.pharmacy.dispensing import dispense

        with self.uow.write() as session:
            done = dispense(
                session, actor, pid, password=password, clock=self.clock, lots=lots,
                checked_by=checked_by, checker_password=checker_password,
                checker_code=checker_code, print_labels=labels_path is not None,
            )
            if labels_path is not None and done.labels is not None:
                write_label_file(done.labels, labels_path)  # inside: a failure undoes it
        return done

    def prepare_again(
        self, actor: Actor, pid: str, *, password: str, reason: str, lots: Mapping[str, str],
        checked_by: str, checker_password: str, labels_path: Path | None,
        checker_code: str | None = None,
    ) -> Dispensing:
        """Prepare again: the current preparation and its labels become void, the new one is
        recorded (the checker signs), its labels written in the same transaction when
        ``labels_path`` is given. UNBLINDED."""
        from trialkit.services.pharmacy.dispensing import reprepare

        with self.uow.write() as session:
            done = reprepare(
                session, actor, pid, reason=reason, password=password, clock=self.clock,
                lots=lots, checked_by=checked_by, checker_password=checker_password,
                checker_code=checker_code, print_labels=labels_path is not None,
            )
            if labels_path is not None and done.labels is not None:
                write_label_file(done.labels, labels_path)  # inside: a failure undoes it
        return done

    def record_preparation(
        self, actor: Actor, pid: str, *, password: str, lots: Mapping[str, str],
        checked_by: str, checker_password: str, labels_path: Path,
        checker_code: str | None = None,
    ) -> LabelSheet:
        """Record the preparation with its first label print (see :meth:`prepare`).
        Returns the blinded label sheet only."""
        done = self.prepare(actor, pid, password=password, lots=lots, checked_by=checked_by,
                            checker_password=checker_password, labels_path=labels_path,
                            checker_code=checker_code)
        assert done.labels is not None
        return done.labels

    def read_preparation(self, actor: Actor, pid: str, *, password: str) -> Dispensing:
        """Open the envelope (audited) and read the current preparation. UNBLINDED."""
        from trialkit.services.pharmacy.dispensing import read_preparation

        with self.uow.write() as session:
            return read_preparation(session, actor, pid, password=password, clock=self.clock)

    def reprepare(
        self, actor: Actor, pid: str, *, password: str, reason: str, lots: Mapping[str, str],
        checked_by: str, checker_password: str, labels_path: Path,
        checker_code: str | None = None,
    ) -> LabelSheet:
        """Prepare again with new labels (see :meth:`prepare_again`); the blinded label
        sheet only."""
        done = self.prepare_again(actor, pid, password=password, reason=reason, lots=lots,
                                  checked_by=checked_by, checker_password=checker_password,
                                  labels_path=labels_path, checker_code=checker_code)
        assert done.labels is not None
        return done.labels

    def reprint_labels(self, actor: Actor, pid: str, *, labels_path: Path) -> LabelSheet:
        """Print a dispensed participant's labels again (counted and audited)."""
        from trialkit.services.pharmacy.dispensing import print_labels

        with self.uow.write() as session:
            sheet = print_labels(session, actor, pid, clock=self.clock)
            write_label_file(sheet, labels_path)
        return sheet

    def unblind(self, actor: Actor, pid: str, *, reason: str, password: str) -> Unblinding:
        """Emergency unblinding: the arm for this user only, the reason audited. UNBLINDED."""
        from trialkit.services.pharmacy.unblinding import unblind

        with self.uow.write() as session:
            return unblind(session, actor, pid, reason=reason, password=password,
                           clock=self.clock)

    # --- the headache diary (coordinators record; everyone with a view reads) ----------

    def plan_infusion(self, actor: Actor, pid: str, *, on: date) -> ParticipantView:
        """Set (or move) the planned infusion day (the pharmacy queue shows it)."""
        from trialkit.services.enrolment.participants import plan_infusion

        with self.uow.write() as session:
            return plan_infusion(session, actor, pid, on=on, clock=self.clock)

    def infuse(self, actor: Actor, pid: str, *, on: date, at: time | None) -> date:
        """Record the infusion (study day 0); returns its day."""
        from trialkit.services.diary.entries import infuse

        with self.uow.write() as session:
            return infuse(session, actor, pid, on=on, at=at, clock=self.clock)

    def outcomes(self, actor: Actor, pid: str) -> ParticipantOutcomes:
        """Derived outcomes per window of one participant (blinded)."""
        from trialkit.services.diary.outcomes import outcomes

        with self.uow.snapshot() as session:
            return outcomes(session, actor, pid, clock=self.clock)

    def import_diary(self, actor: Actor, path: Path) -> ImportResult:
        """Import a diary CSV file, every row or none (``ImportRejected`` lists the
        problems with their line numbers)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DiaryFileUnreadable(
                f"cannot read {path}: {exc.strerror or exc}") from None
        return self.import_diary_data(actor, data, source=str(path))

    def import_diary_data(self, actor: Actor, data: bytes, *, source: str) -> ImportResult:
        """Import a diary CSV file already read (``source`` names it), every row or none."""
        from trialkit.services.diary.file_import import import_diary

        with self.uow.write() as session:
            return import_diary(session, actor, data, source=source, clock=self.clock)

    def diary(self, actor: Actor, pid: str) -> DiaryView:
        """Windows, completeness and current days of one participant."""
        from trialkit.services.administration.trial import site_time, stored_protocol
        from trialkit.services.diary.entries import history
        from trialkit.services.diary.outcomes import outcomes

        with self.uow.read() as session:
            result = outcomes(session, actor, pid, clock=self.clock)
            days = {v.date: v for v in history(session, actor, pid) if v.current}
            levels = stored_protocol(session).diary.severity_levels
            today = site_time(session, result.site).today(self.clock.now())
        return DiaryView(result, days, today, tuple(levels))

    def record_day(
        self, actor: Actor, pid: str, day: DiaryDay, *, reason: str | None
    ) -> RecordedDay:
        """Record a day; a correction of a recorded day needs ``reason``."""
        from trialkit.services.diary.entries import record_day

        with self.uow.write() as session:
            return record_day(session, actor, pid, day, clock=self.clock, reason=reason)

    def day_history(self, actor: Actor, pid: str, on: date | None) -> list[DiaryVersion]:
        """Every version of one diary day (``on``; None: of every day), oldest first."""
        from trialkit.services.diary.entries import history

        with self.uow.snapshot() as session:
            return history(session, actor, pid, on=on)

    # --- the investigator's dashboard ------------------------------------------------

    def trial_status(self, actor: Actor,
                     on_counts: Callable[[TrialCounts], None] | None = None) -> TrialStatus:
        """Enrolment, CONSORT counts, diary completeness and the enrolment curve (blinded),
        from one snapshot; ``on_counts`` gets the counts first, as soon as they are read."""
        from trialkit.services.exports.status import trial_status

        with self.uow.snapshot() as session:
            return trial_status(session, actor, clock=self.clock, on_counts=on_counts)

    def unblindings(self, actor: Actor) -> list[UnblindingEntry]:
        """Every emergency unblinding and refused attempt (who, when, why; never the arm)."""
        from trialkit.services.pharmacy.unblinding import unblinding_report

        # A transaction, not read-only: a refusal is recorded in the audit trail.
        with self.uow.write() as session:
            return unblinding_report(session, actor, clock=self.clock)

    def lock(self, actor: Actor, checkpoint_out: Path) -> tuple[LockResult, Checkpoint]:
        """Lock the database (audited; once) and write a signed checkpoint of the trail as
        locked to ``checkpoint_out`` (never over a file: checked first); returns both."""
        from trialkit.services.administration.database_lock import lock_database
        from trialkit.services.integrity.checkpoints import (
            checkpoint_path,
            save_checkpoint,
            write_checkpoint,
        )

        path = checkpoint_path(checkpoint_out)
        with self.uow.write() as session:
            result = lock_database(session, actor, clock=self.clock)
            checkpoint = write_checkpoint(session, actor, clock=self.clock,
                                          purpose="database lock")
        save_checkpoint(checkpoint, path)
        return result, checkpoint

    def export(
        self, actor: Actor, kind: str, out: Path, *, progress: Callable[[int, int], None],
        unblinded: bool = False, password: str | None = None,
    ) -> tuple[ExportResult, Path]:
        """Write an export (data, dictionary, manifest; files appear once committed; with
        ``unblinded`` the arm too, after the lock, a custodian's ``password`` unlocking
        their key) and a signed checkpoint beside it (``NAME.checkpoint.json``); returns the
        result and where the checkpoint went."""
        from trialkit.services.exports.datasets import ExportFiles, export_snapshot
        from trialkit.services.integrity.checkpoints import (
            beside,
            save_checkpoint,
            write_checkpoint,
        )

        files = ExportFiles(out)
        with files:
            with self.uow.driver_errors():
                result = export_snapshot(self.engine, actor, kind, files, clock=self.clock,
                                         unblinded=unblinded, password=password,
                                         progress=progress)
            files.publish()
        path = beside(files.data)
        with self.uow.write() as session:
            checkpoint = write_checkpoint(session, actor, clock=self.clock,
                                          purpose=f"{kind} export")
        save_checkpoint(checkpoint, path)
        return result, path

    def backup(self, actor: Actor, out: Path) -> BackupFile:
        """A consistent backup while the trial runs (admin; audited once it is whole)."""
        from trialkit.services.integrity.backup import take_backup

        with self.uow.write() as session:
            return take_backup(self.engine, session, actor, out, clock=self.clock)

    # --- audit review (monitor, admin, investigator) --------------------------------------

    def audit_page(
        self, actor: Actor, filters: AuditFilter, *, after: int | None, limit: int
    ) -> AuditPage:
        """A page of matching events after the sequence number ``after`` (blinded)."""
        from trialkit.services.integrity.audit_review import audit_page

        with self.uow.read() as session:
            return audit_page(session, actor, filters, after=after, limit=limit)

    def write_checkpoint(self, actor: Actor, out: Path) -> Checkpoint:
        """Write a signed checkpoint of the audit trail to ``out`` (never over a file),
        signed with the key the actor's sign-in unlocked, audited; the file appears once
        the event is committed."""
        from trialkit.services.integrity.checkpoints import (
            checkpoint_path,
            save_checkpoint,
            write_checkpoint,
        )

        path = checkpoint_path(out)
        with self.uow.write() as session:
            checkpoint = write_checkpoint(session, actor, clock=self.clock)
        save_checkpoint(checkpoint, path)
        return checkpoint

    def verify_audit(self, *, progress: Callable[[int, int], None]) -> VerifyReport:
        """Verify the chain, every audited record and every list (writes nothing);
        ``progress(done, total)`` is told the rows read as it goes. Reads one snapshot:
        what is committed meanwhile is not half seen."""
        from trialkit.services.integrity.verification import verify

        with self.uow.snapshot() as session:
            return verify(session, progress=progress)


def write_label_file(sheet: LabelSheet, path: Path) -> None:
    """Render the labels' PDF and write it at ``path`` atomically (a temporary file in the
    same folder, then renamed): a reader never sees half a sheet. A failure is the user's
    message and, inside a transaction, undoes what was recorded."""
    from trialkit.domain.errors import write_failed
    from trialkit.render.labels import render_labels

    data = render_labels(sheet)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".labels-", suffix=".pdf", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        raise write_failed(err, path) from None
