"""Exports for analysis: ``outcomes.csv`` (one row per randomized participant per window),
``diary.csv`` (one row per recorded diary day) and ``participants.csv`` (one row per
screened participant: baseline covariates and the date of each stage, always blinded), each
with exactly the columns of the product specification, a data dictionary and a manifest of
SHA-256 checksums beside it.

- Blinded by default. The unblinded export adds ``arm`` as the last column, only after the
  database lock and only for an unblinding custodian who gives their password; each
  envelope is opened the way the pharmacy opens it (``envelopes.Unsealer``: checked against
  its commitment, audited), the custodian key unlocked once for the whole export.
- Read from one consistent snapshot without the write lock (SQLite WAL read transaction,
  PostgreSQL REPEATABLE READ): randomization at any site never waits for an export. The
  export's audit event is written afterwards in a short transaction of its own.
- Every export is audited with the SHA-256 of each file it wrote; a refused unblinded
  export is audited too.
- Outcomes are those of ``domain.diary.derive_outcomes``, the same function every screen
  uses. Nothing is derived twice.
- Participants are read in batches (keyset on site and screening number) with the current
  diary days of each batch in one query, and every batch is written before the next is
  read: memory stays bounded whatever the trial's size.
- Text cells that a spreadsheet would read as a formula (a leading ``=``, ``+``, ``-``,
  ``@``, tab or carriage return) get a leading apostrophe. Numbers and dates are never
  altered. An empty cell means missing.
- Files are written under temporary names beside their final ones; ``ExportFiles.publish``
  moves them into place once the audit event is committed, and a failed export leaves no
  file behind.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

from sqlalchemy import Engine, func, true, tuple_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from trialkit.domain.clock import Clock
from trialkit.domain.diary import (
    DiaryDay,
    WindowOutcome,
    derive_outcomes,
    is_headache_day,
    study_day,
    window_of,
)
from trialkit.domain.errors import InvalidInput, PermissionDenied, TrialkitError, write_failed
from trialkit.domain.participant_status import Status
from trialkit.domain.protocol import Protocol
from trialkit.domain.roles import Permission
from trialkit.services.actor import Actor, require
from trialkit.services.administration.trial import get_trial, stored_protocol
from trialkit.services.diary.entries import anchors_of, consented_on, withdrawn_on
from trialkit.services.enrolment.allocation import Progress
from trialkit.services.enrolment.participants import status_of
from trialkit.services.exports.dictionary import (
    TRAINING_NOTICE,
    ColumnSpec,
    diary_columns,
    dictionary_rows,
    escape_text,
    outcome_columns,
    participant_columns,
)
from trialkit.services.integrity import audit
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.store.db import snapshot, transaction
from trialkit.store.models import DiaryEntry, Participant, Preparation, Trial

KINDS: Final = ("outcomes", "diary", "participants")
BATCH: Final = 500  # participants per read: well inside every backend's parameter limit

OUTCOME_COLUMNS: Final = (
    "participant_id", "site", "stratum", "randomization_number", "randomized_on",
    "infusion_on", "status", "unblinded_emergency", "window", "window_start", "window_end",
    "days_expected", "days_recorded", "headache_days", "moderate_severe_days",
    "acute_medication_days", "headache_days_28", "baseline_headache_days_28",
    "change_from_baseline",
)
DIARY_COLUMNS: Final = (
    "participant_id", "date", "study_day", "window", "headache", "severity",
    "duration_hours", "acute_medication", "headache_day", "recorded_by", "recorded_at",
)
_YES_NO: Final = ("no", "yes")


class ExportRefused(PermissionDenied):
    """An unblinded export refused for want of permission or lock; the refusal is
    audited (its error keeps the record)."""

    keep_record = True


# --- the files ---------------------------------------------------------------------------------


class ExportFiles:
    """The three files of one export: ``NAME.csv``, ``NAME.dictionary.csv`` and
    ``NAME.manifest.json``. Written under temporary names; ``publish`` (after the audit
    event is committed) moves them into place, and leaving the ``with`` block on an error
    removes them."""

    def __init__(self, out: str | Path) -> None:
        path = Path(out).expanduser()
        if path.suffix.lower() != ".csv":
            raise InvalidInput(f"output file {str(out)!r}: give a file name ending in .csv")
        if path.is_dir():
            raise InvalidInput(f"output file {str(out)!r} is a folder: give a file name ending "
                               "in .csv")
        if not path.parent.is_dir():
            raise InvalidInput(f"output file {str(out)!r}: folder {path.parent} does not exist")
        self.data = path
        self.dictionary = path.with_name(f"{path.stem}.dictionary.csv")
        self.manifest = path.with_name(f"{path.stem}.manifest.json")
        token = secrets.token_hex(4)
        self._partial = {p: p.with_name(f".{p.name}.{token}.partial")
                         for p in (self.data, self.dictionary, self.manifest)}

    @property
    def finals(self) -> tuple[Path, Path, Path]:
        return self.data, self.dictionary, self.manifest

    def partial(self, final: Path) -> Path:
        return self._partial[final]

    def publish(self) -> None:
        """Move the written files into place (each an atomic rename)."""
        for final, partial in self._partial.items():
            try:
                os.replace(partial, final)
            except OSError as err:
                raise InvalidInput(f"cannot write {final}: {err.strerror or err} (the export "
                                   f"was audited; its file is still at {partial})") from None

    def discard(self) -> None:
        for partial in self._partial.values():
            partial.unlink(missing_ok=True)

    def __enter__(self) -> ExportFiles:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is not None:
            self.discard()


class _HashedCsv:
    """A CSV file written a batch at a time, hashed as it is written."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def rows(self, rows: Sequence[Sequence[Any]]) -> None:
        self._writer.writerows(rows)
        data = self._buffer.getvalue().encode("utf-8")
        self._buffer.seek(0)
        self._buffer.truncate()
        self.sha256.update(data)
        self._stream.write(data)
        self.bytes += len(data)


@dataclass(frozen=True)
class ExportedFile:
    path: Path  # where it is once published
    sha256: str
    bytes: int


@dataclass(frozen=True)
class ExportResult:
    """What was exported: counts and the checksum of every file (no arm)."""

    kind: str
    blinded: bool
    training: bool
    rows: int
    participants: int
    as_of: date
    files: tuple[ExportedFile, ...]  # data, dictionary, manifest


# --- reading in batches ------------------------------------------------------------------------


def participant_batches(
    session: Session, *, randomized_only: bool, batch: int = BATCH
) -> Iterator[list[Participant]]:
    """Participants in site and screening-number order, ``batch`` at a time."""
    last: tuple[str, int] | None = None
    while True:
        stmt = select(Participant).order_by(col(Participant.site_code), col(Participant.number))
        if randomized_only:
            stmt = stmt.where(col(Participant.randomization_number).is_not(None))
        if last is not None:
            stmt = stmt.where(
                tuple_(col(Participant.site_code), col(Participant.number)) > tuple_(*last)
            )
        rows = list(session.exec(stmt.limit(batch)))
        if rows:
            yield rows
        if len(rows) < batch:
            return
        last = (rows[-1].site_code, rows[-1].number)


def count_participants(session: Session, *, randomized_only: bool) -> int:
    stmt = select(func.count()).select_from(Participant)
    if randomized_only:
        stmt = stmt.where(col(Participant.randomization_number).is_not(None))
    return int(session.exec(stmt).one())


# The diary columns every reader needs, then what diary.csv adds.
_DAY_COLUMNS = (col(DiaryEntry.participant_id), col(DiaryEntry.day), col(DiaryEntry.headache),
                col(DiaryEntry.severity), col(DiaryEntry.duration_hours),
                col(DiaryEntry.acute_medication))
_RECORD_COLUMNS = (col(DiaryEntry.recorded_by), col(DiaryEntry.recorded_at))


def _current_rows(session: Session, ids: Sequence[str], *, with_record: bool
                  ) -> Sequence[Any]:
    """The current version of every diary day of these participants, by participant and
    date, as rows of plain values (Core: no ORM objects for millions of rows)."""
    if not ids:
        return []
    stmt = (
        sa_select(*_DAY_COLUMNS, *(_RECORD_COLUMNS if with_record else ()))
        .where(col(DiaryEntry.current).is_(true()), col(DiaryEntry.participant_id).in_(ids))
        .order_by(col(DiaryEntry.participant_id), col(DiaryEntry.day))
    )
    return session.connection().execute(stmt).all()


def _dispensed(session: Session, ids: Sequence[str]) -> set[str]:
    stmt = select(Preparation.participant_id).where(col(Preparation.participant_id).in_(ids))
    return set(session.exec(stmt).all())


def _days_by_participant(rows: Sequence[Any]) -> dict[str, list[DiaryDay]]:
    by: dict[str, list[DiaryDay]] = {}
    for pid, day, headache, severity, hours, acute in rows:
        days = by.get(pid)
        if days is None:
            days = by[pid] = []
        days.append(DiaryDay(day, bool(headache), severity, hours, bool(acute)))
    return by


@dataclass(frozen=True)
class OutcomeRecord:
    """One randomized participant's derived outcomes (blinded)."""

    participant: Participant
    status: Status
    windows: list[WindowOutcome]
    last_recorded: date | None  # the latest diary day recorded
    randomized_on: date  # at the participant's site, as every date here
    withdrawn_on: date | None
    today: date  # the date at the participant's site when the outcomes were derived


def stream_outcomes(
    session: Session, *, now: datetime, batch: int = BATCH
) -> Iterator[list[OutcomeRecord]]:
    """Every randomized participant's outcomes in every window as of the instant ``now``
    (each participant's "today" is their site's), a batch at a time."""
    protocol = stored_protocol(session)
    for people in participant_batches(session, randomized_only=True, batch=batch):
        yield _outcomes_of(session, people, protocol, now)


def _outcomes_of(session: Session, people: Sequence[Participant], protocol: Protocol,
                 now: datetime) -> list[OutcomeRecord]:
    # Its diary days die when this returns, before the garbage collector runs again: they
    # never reach an older generation, whose full passes would cost a quarter of the export.
    ids = [p.id for p in people]
    days = _days_by_participant(_current_rows(session, ids, with_record=False))
    dispensed = _dispensed(session, ids)
    records = []
    for p in people:
        mine = days.get(p.id, [])
        local = protocol.site_time(p.site_code)
        today, anchors = local.today(now), anchors_of(p, local)
        assert anchors.randomized_on is not None  # randomized participants only
        left = withdrawn_on(p, local)
        windows = derive_outcomes(mine, anchors, protocol.diary, today=today,
                                  first_day=consented_on(p) or date.max, last_day=left)
        records.append(OutcomeRecord(p, status_of(p, dispensed=p.id in dispensed),
                                     windows, mine[-1].day if mine else None,
                                     anchors.randomized_on, left, today))
    return records


# --- the arm (unblinded export only) -----------------------------------------------------------


ArmOf = Callable[[Participant], str]


def _refuse(actor: Actor, kind: str, why: str, clock: Clock) -> ExportRefused:
    """The refusal, carrying its own record (written once the snapshot is let go)."""
    exc = ExportRefused(f"the unblinded export is refused: {why}")

    def record(session: Session) -> None:
        audit.record(session, actor, action="export.refused", entity="export",
                     entity_id=f"{kind}/unblinded", reason=why, clock=clock)

    exc.record_after = record
    return exc


def _arm_reader(session: Session, actor: Actor, trial: Trial, kind: str, *,
                password: str | None, clock: Clock, opened: list[audit.Change]) -> ArmOf:
    """Check that this actor may have arms now, then open envelopes as the pharmacy does:
    the custodian key is unlocked once for the whole export, each opening is added to
    ``opened`` (audited with the export)."""
    if trial.locked_at is None:
        raise _refuse(actor, kind, "the database is not locked yet (an investigator "
                      "locks it)", clock)
    if not actor.custodian:
        raise _refuse(actor, kind, f"{actor.name} is not an unblinding custodian", clock)
    if not password:
        raise InvalidInput("the unblinded export needs your password (it unlocks your "
                           "custodian key)")
    # Imported here: envelope opening is only needed (and only loaded) to unblind.
    from trialkit.services.pharmacy.envelopes import (
        Unsealer,
        broken_error,
        broken_record,
        envelope_of,
        opening,
    )

    unsealer = Unsealer(session, actor, password, stored_protocol(session))  # the one KDF
    purpose = f"unblinded {kind} export"

    def arm_of(p: Participant) -> str:
        env = envelope_of(session, p)
        arm, problem = unsealer.arm(env)
        if arm is None:
            why = problem or "unreadable"
            exc = broken_error(env, p, why)
            exc.record_after = lambda s: audit.record_many(
                s, actor, [broken_record(env, p, why)], clock=clock)
            raise exc
        opened.append(opening(env, p, purpose))
        return arm

    return arm_of


# --- writing -----------------------------------------------------------------------------------


@dataclass
class _Counts:
    rows: int = 0
    participants: int = 0
    done: int = 0
    total: int = 0
    progress: Progress | None = None
    escaped: dict[str, str] = field(default_factory=dict)

    def text(self, value: str) -> str:
        """``escape_text`` once per distinct value: for the few values repeated on many
        rows (sites, windows, severities, users), not for ids."""
        shown = self.escaped.get(value)
        if shown is None:
            shown = self.escaped[value] = escape_text(value)
        return shown

    def advance(self, people: int) -> None:
        self.done += people
        if self.progress is not None:
            self.progress(self.done, self.total)


def _outcome_rows(records: Sequence[OutcomeRecord], n: _Counts,
                  arm_of: ArmOf | None) -> list[list[Any]]:
    rows: list[list[Any]] = []
    t = n.text
    for r in records:
        p = r.participant
        assert p.randomized_at is not None and p.randomization_number is not None
        head = [escape_text(p.id), t(p.site_code), t(p.stratum_code),
                escape_text(p.randomization_number),
                r.randomized_on, p.infusion_date, t(r.status),
                _YES_NO[p.unblinded_emergency]]
        tail = [t(arm_of(p))] if arm_of is not None else []
        for w in r.windows:
            rows.append([*head, t(w.window), w.start, w.end, w.days_expected,
                         w.days_recorded, w.headache_days, w.moderate_severe_days,
                         w.acute_medication_days, w.headache_days_28,
                         w.baseline_headache_days_28, w.change_from_baseline, *tail])
    return rows


def _write_outcomes(session: Session, out: _HashedCsv, n: _Counts, now: datetime, batch: int,
                    arm_of: ArmOf | None) -> None:
    n.total = count_participants(session, randomized_only=True)
    for records in stream_outcomes(session, now=now, batch=batch):
        rows = _outcome_rows(records, n, arm_of)
        out.rows(rows)
        n.rows += len(rows)
        n.participants += len(records)
        n.advance(len(records))


def _utc_text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _diary_rows(session: Session, people: Sequence[Participant], n: _Counts,
                protocol: Protocol, arm_of: ArmOf | None) -> list[list[Any]]:
    rules = protocol.diary
    by_id = {p.id: p for p in people}
    pids = {p.id: escape_text(p.id) for p in people}
    anchors = {p.id: anchors_of(p, protocol.site_time(p.site_code)) for p in people}
    # The diary starts at consent; who never consented has none (no date is that late).
    starts = {p.id: consented_on(p) or date.max for p in people}
    arms: dict[str, str] = {}
    times: dict[Any, str] = {}
    rows: list[list[Any]] = []
    t = n.text
    for pid, day, headache, severity, hours, acute, by, at in _current_rows(
            session, list(by_id), with_record=True):
        if day < starts[pid]:
            continue  # before consent (an older version let it in): no diary, not exported
        d = DiaryDay(day, bool(headache), severity, hours, bool(acute))
        a = anchors[pid]
        w = window_of(d.day, a, rules)
        shown_at = times.get(at)
        if shown_at is None:
            shown_at = times[at] = _utc_text(at)
        row = [pids[pid], d.day, study_day(d.day, a.infused_on), t(w.code) if w else None,
               _YES_NO[d.headache], t(severity), hours, _YES_NO[d.acute_medication],
               _YES_NO[is_headache_day(d, rules)], t(by), shown_at]
        if arm_of is not None:
            if pid not in arms:
                p = by_id[pid]
                arms[pid] = t(arm_of(p)) if p.randomization_number is not None else ""
            row.append(arms[pid])
        rows.append(row)
    return rows


def _write_diary(session: Session, out: _HashedCsv, n: _Counts, batch: int,
                 arm_of: ArmOf | None) -> None:
    protocol = stored_protocol(session)
    n.total = count_participants(session, randomized_only=False)
    for people in participant_batches(session, randomized_only=False, batch=batch):
        rows = _diary_rows(session, people, n, protocol, arm_of)
        out.rows(rows)
        n.rows += len(rows)
        n.participants += len({r[0] for r in rows})
        n.advance(len(people))


def _first_preparations(session: Session, ids: Sequence[str]) -> dict[str, datetime]:
    """When the pharmacy first prepared each of these participants' infusions."""
    stmt = (sa_select(col(Preparation.participant_id), func.min(col(Preparation.prepared_at)))
            .where(col(Preparation.participant_id).in_(ids))
            .group_by(col(Preparation.participant_id)))
    return {pid: at for pid, at in session.connection().execute(stmt).all()}


def _participant_rows(session: Session, people: Sequence[Participant], n: _Counts,
                      protocol: Protocol) -> list[list[Any]]:
    prepared = _first_preparations(session, [p.id for p in people])
    factor_ids = [f.id for f in protocol.stratification]
    t = n.text
    rows: list[list[Any]] = []
    for p in people:
        local = protocol.site_time(p.site_code)
        levels = p.factors_json
        first_prepared = prepared.get(p.id)
        rows.append([
            escape_text(p.id), t(p.site_code), t(p.stratum_code),
            *(t(levels.get(f, "")) for f in factor_ids),
            p.age, t(p.sex), p.weight_kg, _YES_NO[p.eligible],
            t(";".join(p.failed_json)),
            t(status_of(p, dispensed=first_prepared is not None)),
            _YES_NO[p.unblinded_emergency],
            local.date_of(p.screened_at), p.consent_date,
            t(p.consent_form_version) if p.consent_form_version else None,
            escape_text(p.randomization_number) if p.randomization_number else None,
            local.date_of(p.randomized_at) if p.randomized_at else None,
            local.date_of(first_prepared) if first_prepared else None,
            p.planned_infusion_date, p.infusion_date,
            withdrawn_on(p, local),
            escape_text(p.withdrawal_reason) if p.withdrawal_reason else None,
        ])
    return rows


def _write_participants(session: Session, out: _HashedCsv, n: _Counts, batch: int) -> None:
    protocol = stored_protocol(session)
    n.total = count_participants(session, randomized_only=False)
    for people in participant_batches(session, randomized_only=False, batch=batch):
        out.rows(_participant_rows(session, people, n, protocol))
        n.rows += len(people)
        n.participants += len(people)
        n.advance(len(people))


def _sha256_of(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def check_kind(kind: str, *, unblinded: bool) -> None:
    """Bad input: an unknown export, or asking the participants export for arms."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown export {kind!r}: choose {', '.join(KINDS[:-1])} or "
                           f"{KINDS[-1]}")
    if kind == "participants" and unblinded:
        raise InvalidInput("the participants export is always blinded: join it on "
                           "participant_id to an unblinded outcomes export for the arm")


def export_table(
    session: Session,
    actor: Actor,
    kind: str,
    files: ExportFiles,
    *,
    clock: Clock,
    unblinded: bool = False,
    password: str | None = None,
    progress: Progress | None = None,
    batch: int = BATCH,
) -> ExportResult:
    """Write ``outcomes``, ``diary`` or ``participants`` with its data dictionary and
    manifest (under ``files``' temporary names) and audit the export with each file's
    SHA-256, all in the caller's transaction. The caller commits, then calls
    ``files.publish()``. (The CLI and the TUI use :func:`export_snapshot`, which holds no
    write lock while it reads.)"""
    try:
        written = _write_export(session, actor, kind, files, clock=clock, unblinded=unblinded,
                                password=password, progress=progress, batch=batch)
    except TrialkitError as exc:
        if exc.keep_record and exc.record_after is not None:
            exc.record_after(session)  # the caller's transaction keeps it
            exc.record_after = None
        raise
    audit.record_many(session, actor, [*written.opened, written.event], clock=clock)
    return written.result


def export_snapshot(
    engine: Engine,
    actor: Actor,
    kind: str,
    files: ExportFiles,
    *,
    clock: Clock,
    unblinded: bool = False,
    password: str | None = None,
    progress: Progress | None = None,
    batch: int = BATCH,
) -> ExportResult:
    """:func:`export_table` from one consistent snapshot of the database read without the
    write lock (``store.db.snapshot``: randomization and diary entry at every site go on
    meanwhile), then the export's audit event (with every envelope an unblinded export
    opened) in a short write transaction of its own. The caller then calls
    ``files.publish()``."""
    with snapshot(engine) as session:
        written = _write_export(session, actor, kind, files, clock=clock, unblinded=unblinded,
                                password=password, progress=progress, batch=batch)
    with transaction(engine) as session:
        audit.record_many(session, actor, [*written.opened, written.event], clock=clock)
    return written.result


@dataclass(frozen=True)
class _Written:
    result: ExportResult
    event: audit.Change
    opened: list[audit.Change]


@audits_refusals("export", entity="export", entity_id="kind")
def _write_export(
    session: Session,
    actor: Actor,
    kind: str,
    files: ExportFiles,
    *,
    clock: Clock,
    unblinded: bool,
    password: str | None,
    progress: Progress | None,
    batch: int,
) -> _Written:
    require(actor, Permission.EXPORT)
    check_kind(kind, unblinded=unblinded)
    trial = get_trial(session)
    protocol = stored_protocol(session)
    opened: list[audit.Change] = []
    arm_of = (_arm_reader(session, actor, trial, kind, password=password, clock=clock,
                          opened=opened)
              if unblinded else None)
    # One instant for the whole export; each participant's dates are their site's, and
    # "as of" is the trial's date (its sites' shared zone).
    now = clock.now()
    today = protocol.trial_time.today(now)
    specs = (participant_columns(protocol) if kind == "participants" else
             (outcome_columns if kind == "outcomes" else diary_columns)(
                 protocol, unblinded=unblinded))
    n = _Counts(progress=progress)
    try:
        data, dictionary, manifest = _write_files(session, actor, trial, kind, files, specs,
                                                  n, (now, today), batch, arm_of, clock)
    except OSError as err:
        raise write_failed(err, files.data) from None
    result = ExportResult(kind, not unblinded, trial.training, n.rows, n.participants, today,
                          (data, dictionary, manifest))
    event = audit.Change(
        action=f"export.{kind}",
        entity="export",
        entity_id=data.sha256,
        after={
            "kind": kind,
            "blinded": not unblinded,
            "training": trial.training,
            "as_of": today.isoformat(),
            "rows": n.rows,
            "participants": n.participants,
            "protocol_sha256": trial.protocol_sha256,
            "files": {f.path.name: f.sha256 for f in result.files},
        },
        reason=f"{'unblinded' if unblinded else 'blinded'} {kind} export to {files.data.name}",
    )
    return _Written(result, event, opened)


def _write_files(session: Session, actor: Actor, trial: Trial, kind: str, files: ExportFiles,
                 specs: Sequence[ColumnSpec], n: _Counts, when: tuple[datetime, date],
                 batch: int, arm_of: ArmOf | None, clock: Clock
                 ) -> tuple[ExportedFile, ExportedFile, ExportedFile]:
    """The data (streamed), its dictionary and its manifest, under their temporary names.
    ``when``: the export's instant and the trial's date then ("as of")."""
    with files.partial(files.data).open("wb") as stream:
        out = _HashedCsv(stream)
        out.rows([[s.name for s in specs]])
        if kind == "outcomes":
            _write_outcomes(session, out, n, when[0], batch, arm_of)
        elif kind == "participants":
            _write_participants(session, out, n, batch)
        else:
            _write_diary(session, out, n, batch, arm_of)
    data = ExportedFile(files.data, out.sha256.hexdigest(), out.bytes)
    with files.partial(files.dictionary).open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(dictionary_rows(specs, trial.training))
    dictionary = ExportedFile(files.dictionary, *_sha256_of(files.partial(files.dictionary)))
    unblinded = arm_of is not None
    doc = _manifest(trial, actor, kind, unblinded, clock, when[1], n, specs, (data, dictionary))
    files.partial(files.manifest).write_text(
        json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    manifest = ExportedFile(files.manifest, *_sha256_of(files.partial(files.manifest)))
    return data, dictionary, manifest


def _manifest(trial: Trial, actor: Actor, kind: str, unblinded: bool, clock: Clock,
              today: date, n: _Counts, specs: Sequence[ColumnSpec],
              written: Sequence[ExportedFile]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if trial.training:
        doc["TRAINING"] = TRAINING_NOTICE
    doc |= {
        "trial": trial.trial_code,
        "title": trial.title,
        "protocol_version": trial.protocol_version,
        "protocol_sha256": trial.protocol_sha256,
        "training": trial.training,
        "export": kind,
        "blinded": not unblinded,
        "created_at": clock.now().astimezone(UTC).isoformat(timespec="seconds"),
        "created_by": actor.name,
        "as_of": today.isoformat(),
        "database_locked_at": (trial.locked_at.astimezone(UTC).isoformat(timespec="seconds")
                               if trial.locked_at else None),
        "rows": n.rows,
        "participants": n.participants,
        "columns": [s.name for s in specs],
        "files": [{"name": f.path.name, "sha256": f.sha256, "bytes": f.bytes}
                  for f in written],
    }
    return doc
