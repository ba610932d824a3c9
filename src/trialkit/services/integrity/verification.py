"""``audit verify``: the hash chain, plus a check that every audited entity still matches
the state its latest audit event recorded, so a direct edit of a table (or the deletion of
the audit event that explains it) is caught too."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from trialkit.domain.audit_chain import (
    ChainBreak,
    ChainFields,
    ChainWalk,
    TimeWalk,
    canonical_json,
)
from trialkit.domain.audit_signing import SignatureWalk
from trialkit.domain.strata import all_strata
from trialkit.services.administration.custody import custody_problems
from trialkit.services.administration.trial import stored_protocol, trial_snapshot
from trialkit.services.administration.users import user_snapshot
from trialkit.services.diary.audit_snapshots import (
    code_point_order,
    diary_digests,
    recorded_diary_digest,
    state_digest,
)
from trialkit.services.enrolment.allocation import list_snapshot
from trialkit.services.enrolment.participants import participant_state
from trialkit.services.integrity import audit
from trialkit.services.integrity.list_verification import verify_lists
from trialkit.services.pharmacy.preparations import audit_key, preparation_snapshot
from trialkit.store.models import (
    AllocationList,
    AuditEvent,
    DiaryEntry,
    Envelope,
    Participant,
    Preparation,
    Stratum,
    Trial,
    User,
)
from trialkit.store.schema import append_only_problems

PARTICIPANTS = Participant.__table__  # type: ignore[attr-defined]
ENVELOPES = Envelope.__table__  # type: ignore[attr-defined]

# What verify holds of an entity's state: the SHA-256 of its canonical JSON (see
# diary.audit_snapshots for a batch's), never the state itself.
Digests = Iterator[tuple[str, bytes]]


def _digests(states: Iterable[tuple[str, dict[str, Any]]]) -> Digests:
    for entity_id, state in states:
        yield entity_id, state_digest(canonical_json(state))


def _users(session: Session) -> Digests:
    users = session.exec(select(User)).all()  # a few: each reads its sites
    return _digests((u.name, user_snapshot(session, u)) for u in users)


def _trial(session: Session) -> Digests:
    trial = session.get(Trial, 1)
    return _digests([] if trial is None else [(trial.trial_code, trial_snapshot(session, trial))])


def _participants(session: Session) -> Digests:
    """Every participant with the envelope bound to it, in one query."""
    dialect = session.get_bind().dialect.name
    stmt = (
        select_columns(*PARTICIPANTS.c, ENVELOPES.c.stratum_code.label("envelope_stratum"),
               ENVELOPES.c.seq.label("envelope_seq"))
        .outerjoin(ENVELOPES, ENVELOPES.c.participant_id == PARTICIPANTS.c.id)
        .order_by(code_point_order(PARTICIPANTS.c.id, dialect), ENVELOPES.c.stratum_code,
                  ENVELOPES.c.seq)
        .execution_options(yield_per=2000)
    )
    rows = session.connection().execute(stmt)
    for pid, same in groupby(rows, key=lambda r: r.id):
        p = next(same)  # a participant bound twice shows its first envelope, as before
        envelope = None if p.envelope_seq is None else f"{p.envelope_stratum}#{p.envelope_seq}"
        yield pid, state_digest(canonical_json(participant_state(p, envelope)))


def _lists(session: Session) -> Digests:
    return _digests((lst.id, list_snapshot(lst)) for lst in session.exec(select(AllocationList)))


def _preparations(session: Session) -> Digests:
    preparations = session.exec(select(Preparation).execution_options(yield_per=2000))
    return _digests((audit_key(p), preparation_snapshot(p)) for p in preparations)


# What an entity's stream may ask of the states recorded for its kind: entity id -> the
# digest its latest event recorded, or None (the diary closes each batch at its last row).
Recorded = Callable[[str], bytes | None]


# Told how many more rows verify has read (for its progress).
RowsRead = Callable[[int], None]


def _ignore_recorded(current: Callable[[Session], Digests]
                     ) -> Callable[[Session, Recorded, RowsRead], Digests]:
    """A reader of one row per entity: each entity yielded is one row read."""

    def read(session: Session, _recorded: Recorded, rows_read: RowsRead) -> Digests:
        for found in current(session):
            rows_read(1)
            yield found

    return read


@dataclass(frozen=True)
class AuditedEntity:
    """How verify reads one kind of audited entity: the digest of every such entity's
    current state, streamed (telling ``rows_read`` the rows it reads), and the digest of a
    state as an event recorded it."""

    current: Callable[[Session, Recorded, RowsRead], Digests]
    recorded: Callable[[str, str], bytes] = lambda _entity_id, after: state_digest(after)


# entity name in the audit trail -> how verify reads it, in the order verify reads them
AUDITED: dict[str, AuditedEntity] = {
    "user": AuditedEntity(_ignore_recorded(_users)),
    "trial": AuditedEntity(_ignore_recorded(_trial)),
    "participant": AuditedEntity(_ignore_recorded(_participants)),
    "list": AuditedEntity(_ignore_recorded(_lists)),
    "diary": AuditedEntity(lambda session, recorded, rows_read: diary_digests(
        session, recorded, rows_read=rows_read), recorded_diary_digest),
    "preparation": AuditedEntity(_ignore_recorded(_preparations)),
}
# The tables whose rows those readers stream (for the progress count: each reader tells
# the rows it reads, the diary's versions included, as the audit walk does its events).
_READ_TABLES = (User, Trial, Participant, AllocationList, DiaryEntry, Preparation)


def _envelope_binding_problem(
    session: Session, bound_by: dict[str, tuple[int, datetime, str | None]]
) -> str | None:
    """Every bound envelope was bound at the time of the event that randomized its
    participant (both carry one time, ``audit.now``), and only a bound one has a time.
    ``bound_by``: participant -> (seq, time, envelope) of its last randomization event."""
    stmt = select(Envelope.stratum_code, Envelope.seq, Envelope.participant_id,
                  Envelope.bound_at).where(
        col(Envelope.participant_id).is_not(None) | col(Envelope.bound_at).is_not(None))
    for stratum, seq, pid, bound_at in session.exec(stmt.execution_options(yield_per=5000)):
        where = f"envelope {stratum}#{seq}"
        found = bound_by.get(pid) if pid else None
        if found is None or found[2] != f"{stratum}#{seq}":
            return f"{where} is bound with no randomization event that bound it"
        if bound_at != found[1]:
            return (f"{where}: its binding time was changed (event {found[0]} bound it at "
                    f"{found[1].isoformat()})")
    return None


def _strata_problem(session: Session) -> str | None:
    """Every stratum row is one the stored protocol defines (its site and levels), and
    holds a sealed list."""
    if session.get(Trial, 1) is None:
        return None
    expected = {s.code: s for s in all_strata(stored_protocol(session))}
    sealed = set(session.exec(select(AllocationList.stratum_code)).all())
    for row in session.exec(select(Stratum)):
        want = expected.get(row.code)
        if want is None:
            return f"stratum {row.code!r} is not one of the protocol's strata"
        if row.site_code != want.site or row.levels_json != dict(want.levels):
            return f"stratum {row.code!r} no longer names its site and levels"
        if row.code not in sealed:
            return f"stratum {row.code!r} has no sealed list"
    return None


# services.administration.second_factor.ENROL (verify must not import it)
_ENROL = "user.totp_enrol"


class StepWalk:
    """The second-factor time steps the trail recorded for each user, event by event: from
    an enrolment on, every sign-in must record a step later than the one before it, and no
    event an earlier one. A step set back in the database lets a spent code sign in again;
    the sign-in then records the same step twice, and this names the user and both events."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int | None]] = {}  # user -> (seq, step)
        self.problem: tuple[int, str] | None = None

    def step(self, seq: int, action: str, user: str, after_json: str) -> None:
        """Note one ``user`` event's recorded state (its ``after`` document)."""
        if self.problem is not None:
            return
        doc = json.loads(after_json) if '"second_factor"' in after_json else {}
        if "second_factor" not in doc:
            self._last.pop(user, None)  # no factor (yet, or reset): nothing to compare
            return
        step = doc.get("totp_step")
        before = self._last.get(user)
        self._last[user] = (seq, step)
        if action == _ENROL or before is None or before[1] is None:
            return  # an older trail recorded no step: start from here
        if step is None or step < before[1] or (action == "login" and step == before[1]):
            said = "no step" if step is None else f"step {step}"
            self.problem = (seq, f"user {user!r}: the second factor's time step went back "
                            f"(this {action} event records {said}, event {before[0]} "
                            f"recorded step {before[1]}): it was set back outside trialkit, "
                            "so a spent code could sign in again")


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    events: int
    head: str
    bad_seq: int | None = None
    problem: str | None = None


Progress = Callable[[int, int], None]
_PROGRESS_EVERY = 5000  # rows between two progress calls


class _Progress:
    """Counts the rows verify reads and reports every few thousand (``progress(done,
    total)``: audit events plus the rows of every audited table, counted in the same
    snapshot; ``done`` reaches ``total`` when every row has been read)."""

    def __init__(self, session: Session, report: Progress | None) -> None:
        self._report = report
        self.done = 0
        self.total = 0
        if report is not None:
            for table in (AuditEvent, *_READ_TABLES):
                self.total += session.exec(select(func.count()).select_from(table)).one()
            report(0, self.total)

    def tick(self, rows: int = 1) -> None:
        before = self.done
        self.done += rows
        if self._report is not None and before // _PROGRESS_EVERY != self.done // _PROGRESS_EVERY:
            self._report(min(self.done, self.total), self.total)

    def finish(self) -> None:
        """The last report: the rows read (``total`` unless rows were added or removed
        outside trialkit, which verify reports)."""
        if self._report is not None:
            self._report(min(self.done, self.total), self.total)


class _AuditPass:
    """One walk over the audit trail in sequence order, event by event: the hash chain,
    time order, and what each event says about its entity (the digest of the latest state
    recorded for each, and which envelope each randomization bound)."""

    def __init__(self, progress: _Progress) -> None:
        self.chain = ChainWalk()
        # the signatures are checked in a thread per core, alongside the walk
        self.signatures = SignatureWalk(workers=os.cpu_count() or 1)
        self.times = TimeWalk()
        self.steps = StepWalk()
        self.latest = _Latest()
        self.bound_by: dict[str, tuple[int, datetime, str | None]] = {}
        self.trial_created = 1  # the event that stored the protocol
        self._progress = progress

    def event(self, fields: ChainFields, stored_hash: str, signature: bytes | None) -> None:
        """Check one event and note what it recorded."""
        self.chain.step(fields, stored_hash)
        self.signatures.step(fields, stored_hash, signature)
        self.times.step(fields.seq, fields.at)
        audited = AUDITED.get(fields.entity)
        if audited is not None and fields.after_json is not None:
            digest = audited.recorded(fields.entity_id, fields.after_json)
            self.latest.note(fields.entity, fields.entity_id, fields.seq, digest)
            if fields.entity == "user":
                self.steps.step(fields.seq, fields.action, fields.entity_id, fields.after_json)
        if fields.action == "trial.create":
            self.trial_created = fields.seq
        if fields.action == "participant.randomize":
            envelope = json.loads(fields.after_json or "{}").get("envelope")
            self.bound_by[fields.entity_id] = (fields.seq, fields.at, envelope)
        self._progress.tick()

    def walk(self, session: Session) -> None:
        try:
            for fields, stored_hash, signature in audit.iter_signed_chain(session):
                self.event(fields, stored_hash, signature)
        finally:
            self.signatures.finish()

    @property
    def first_break(self) -> ChainBreak | None:
        """The earliest event that breaks the chain or whose signature fails."""
        found = [b for b in (self.chain.first_break, self.signatures.first_break) if b]
        return min(found, key=lambda b: b.seq) if found else None


_SEQ = 6  # bytes of an event's seq in a _Latest value


class _Latest:
    """The latest state the trail recorded of every audited entity, compactly (hundreds of
    thousands at 20,000 participants): per entity kind, entity id -> one bytes value, the
    event's seq (6 bytes) then the state's digest. Once compared with the entity's current
    state, only the seq is kept: a second current state under the same id (a diary batch
    row added after its last one) is a mismatch at that event."""

    def __init__(self) -> None:
        self._kinds: dict[str, dict[str, bytes]] = {entity: {} for entity in AUDITED}

    def note(self, entity: str, entity_id: str, seq: int, digest: bytes) -> None:
        self._kinds[entity][entity_id] = seq.to_bytes(_SEQ, "big") + digest

    def of(self, entity: str) -> dict[str, bytes]:
        return self._kinds[entity]

    @staticmethod
    def recorded(kind: dict[str, bytes]) -> Recorded:
        """The digest recorded for an entity of this kind not yet compared, or None."""

        def digest(entity_id: str) -> bytes | None:
            value = kind.get(entity_id)
            return None if value is None or len(value) == _SEQ else value[_SEQ:]

        return digest


def _first_state_mismatch(
    session: Session, latest: _Latest, events: int, progress: _Progress,
) -> tuple[int, str] | None:
    """Compare every audited entity's current state with the latest one recorded, entity
    kind by kind in a fixed order; the problem at the lowest event (the first one noticed
    among equals)."""
    first: tuple[int, str] | None = None

    def found(seq: int, why: str) -> None:
        nonlocal first
        if first is None or (seq, why) < first:
            first = (seq, why)

    for entity, audited in AUDITED.items():
        kind = latest.of(entity)
        for entity_id, digest in audited.current(session, _Latest.recorded(kind), progress.tick):
            recorded = kind.get(entity_id)
            if recorded is None:
                found(events + 1, f"{entity} {entity_id!r} exists but no audit event records "
                      "it: an event is missing or the row was added outside trialkit")
                continue
            if len(recorded) == _SEQ or digest != recorded[_SEQ:]:
                found(int.from_bytes(recorded[:_SEQ], "big"),
                      f"{entity} {entity_id!r} no longer matches this event: it was changed "
                      "outside trialkit or a later event is missing")
            kind[entity_id] = recorded[:_SEQ]
        for entity_id, recorded in kind.items():
            if len(recorded) > _SEQ:
                found(int.from_bytes(recorded[:_SEQ], "big"),
                      f"{entity} {entity_id!r} recorded here no longer exists")
    return first


def verify(
    session: Session, *, expected_head: str | None = None, progress: Progress | None = None
) -> VerifyReport:
    """Recompute the chain and compare stored state with the audited state. Streams: one
    pass over the audit trail, then one query per audited table, holding digests rather
    than documents. ``progress(done, total)`` is told the rows read every few thousand.
    ``session`` should read one snapshot (``store.db.snapshot``): a change committed while
    verify reads would otherwise look like one made outside trialkit."""
    counter = _Progress(session, progress)
    events = _AuditPass(counter)
    events.walk(session)
    count, head = events.chain.count, events.chain.head
    brk = events.first_break
    if brk is not None:
        return VerifyReport(False, count, head, brk.seq, f"event {brk.seq}: {brk.why}")
    trial = session.get(Trial, 1)
    back = events.times.first_reversal
    if trial is not None and not trial.training and back is not None:
        # a training trial's clock is stated: only a live trial's time must go forward
        return VerifyReport(False, count, head, back.seq, f"event {back.seq}: {back.why}")
    if events.steps.problem is not None:
        seq, why = events.steps.problem
        return VerifyReport(False, count, head, seq, f"event {seq}: {why}")
    mismatch = _first_state_mismatch(session, events.latest, count, counter)
    counter.finish()
    if mismatch is not None:
        seq, why = mismatch
        return VerifyReport(False, count, head, seq, f"event {seq}: {why}")
    if trial is not None and (
        hashlib.sha256(trial.protocol_text.encode("utf-8")).hexdigest() != trial.protocol_sha256
    ):
        seq = events.trial_created
        return VerifyReport(
            False, count, head, seq,
            f"event {seq}: the stored protocol text no longer matches its SHA-256",
        )
    for problem in (_envelope_binding_problem(session, events.bound_by),
                    _strata_problem(session)):
        if problem is not None:
            return VerifyReport(False, count, head, None, problem)
    for check in verify_lists(session):
        if check.problem is not None:
            return VerifyReport(
                False, count, head, None, f"list {check.list_id} ({check.stratum}): {check.problem}"
            )
    custody = custody_problems(session)
    if custody:
        return VerifyReport(False, count, head, None, custody[0])
    if expected_head:
        known = session.exec(
            select(AuditEvent.seq).where(col(AuditEvent.hash).startswith(expected_head.lower()))
        ).first()
        if known is None:
            return VerifyReport(
                False,
                count,
                head,
                count + 1,
                f"the chain no longer contains the head {expected_head} you noted: "
                "events after it were removed or rewritten",
            )
    guards = append_only_problems(session.connection())
    if guards:
        return VerifyReport(False, count, head, None,
                            "the audit trail is no longer append-only: " + "; ".join(guards))
    return VerifyReport(True, count, head)
