"""Randomizing in turn: the checks before the write lock, only the claim under it.

Every randomization is serialised by the database's write lock (``store.db``: BEGIN
IMMEDIATE on SQLite, an advisory lock on PostgreSQL), so how many can be made per second
is one over the time that lock is held. :func:`randomize_in_turn` therefore makes its
checks (site, eligibility, consent, withdrawal, the baseline-diary gate) in a read-only
transaction first, which any number of clients run at once, and keeps under the lock only
what must be there:

1. one query re-reads everything the checks depended on (the participant's row, the
   newest version of any of their diary days, the database lock, the protocol's hash)
   and the number of participants randomized so far; the answer must equal what the
   checks saw (and the day must be the same), else nothing is taken this way;
2. the stratum's lowest unused envelope is bound, the next randomization number and a
   label code are given, and the audit event is appended, in that one transaction.

Whenever the checks refused, or anything they read changed in between, or the stratum has
no envelope left, the full :func:`trialkit.services.enrolment.randomize` runs under the
lock instead and gives the authoritative answer (and any refusal), so both paths always
agree. Diary days are never updated in place (a correction adds a version with a new id),
so the newest id of a participant's diary rows changes whenever their diary does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, Insert, bindparam, exists, func, insert, select, true, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter
from sqlmodel import Session

from trialkit.domain.clock import Clock
from trialkit.domain.codes import new_label_code, randomization_number
from trialkit.domain.diary import DiaryDay, check_baseline
from trialkit.domain.errors import TrialkitError
from trialkit.domain.roles import Permission
from trialkit.services import audit
from trialkit.services.actor import Actor
from trialkit.services.enrolment import Randomization, participant_state, randomize
from trialkit.services.trial import protocol_with_sha
from trialkit.store.db import read_only, transaction
from trialkit.store.models import DiaryEntry, Envelope, Participant, Trial

_P = Participant.__table__  # type: ignore[attr-defined]
_D = DiaryEntry.__table__  # type: ignore[attr-defined]
_T = Trial.__table__  # type: ignore[attr-defined]
_E = Envelope.__table__  # type: ignore[attr-defined]


# Statements are built once, with bound parameters, so each call only executes them (their
# compiled forms are cached by SQLAlchemy): building a statement costs more than running it.
_PID: BindParameter[str] = bindparam("pid")
_NEWEST_DIARY = select(func.max(_D.c.id)).where(_D.c.participant_id == _PID)
_STATE = select(  # the participant's row and what else the checks read, in one query
    _P,
    _NEWEST_DIARY.scalar_subquery().label("newest_diary_row"),
    select(_T.c.locked_at).where(_T.c.id == 1).scalar_subquery().label("locked_at"),
    select(_T.c.protocol_sha256).where(_T.c.id == 1).scalar_subquery().label("protocol"),
).where(_P.c.id == _PID)
_NEXT = (
    select(_E.c.id)
    .where(_E.c.stratum_code == bindparam("stratum"), _E.c.participant_id.is_(None))
    .order_by(_E.c.seq)
    .limit(1)
)
# Under the lock, one round trip reads the checked state again and what the claim needs.
_CLAIM_STATE = _STATE.add_columns(
    select(func.count())
    .select_from(_P)
    .where(_P.c.randomization_number.is_not(None))
    .scalar_subquery()
    .label("randomized_so_far"),
    _NEXT.scalar_subquery().label("envelope_id"),
    _NEXT.with_only_columns(_E.c.seq).scalar_subquery().label("envelope_seq"),
    audit.HEAD_SEQ,
    audit.HEAD_HASH,
)
_CHECKED_COLUMNS = len(_STATE.selected_columns)
_BASELINE_DAYS = select(
    _D.c.day, _D.c.headache, _D.c.severity, _D.c.duration_hours, _D.c.acute_medication
).where(
    _D.c.participant_id == _PID,
    _D.c.current.is_(true()),
    _D.c.day >= bindparam("start"),
    _D.c.day <= bindparam("end"),
)
_BIND_ENVELOPE = (
    update(_E)
    .where(_E.c.id == bindparam("envelope"), _E.c.participant_id.is_(None))
    .values(participant_id=_PID, bound_at=bindparam("now", type_=_E.c.bound_at.type))
)
_NUMBER_PARTICIPANT = (
    update(_P)
    .where(_P.c.id == _PID)
    .values(
        randomization_number=bindparam("rand_number"),
        label_code=bindparam("label"),
        randomized_at=bindparam("now", type_=_P.c.randomized_at.type),
    )
)
_A = audit.EVENTS
_EVENT_COLUMNS = [c.name for c in _A.c if c.name != "id"]


def _claim_in_one_statement() -> Insert:
    """PostgreSQL: bind the envelope, number the participant and append the audit event in
    one statement (data-modifying CTEs), one round trip under the lock instead of three.
    The participant is numbered and the event appended only if the envelope was bound (it
    returns the event's seq, else no row)."""
    bound = _BIND_ENVELOPE.returning(_E.c.id).cte("bound")
    numbered = (
        _NUMBER_PARTICIPANT.where(exists(select(bound.c.id))).returning(_P.c.id).cte("numbered")
    )
    event = select(
        *[bindparam(f"event_{c}", type_=_A.c[c].type).label(c) for c in _EVENT_COLUMNS]
    ).select_from(bound.join(numbered, true()))
    return (
        insert(_A)
        .from_select(_EVENT_COLUMNS, event)
        .add_cte(bound)
        .add_cte(numbered)
        .returning(_A.c.seq)
    )


_CLAIM_IN_ONE = _claim_in_one_statement()
_APPEND_EVENT = insert(_A)


@dataclass(frozen=True)
class Checked:
    """A participant found ready to randomize, and what that finding rested on."""

    participant_id: str
    stratum: str
    day: date
    seen: tuple[Any, ...]  # the row of :func:`_state` the checks read
    before: dict[str, Any]  # the participant as the audit trail records it now


def _baseline_passes(conn: Connection, session: Session, row: Any, today: date) -> bool:
    rules = protocol_with_sha(session, row.protocol).diary
    window = rules.baseline_window
    start, end = today + timedelta(days=window.start), today + timedelta(days=window.end)
    days = conn.execute(
        _BASELINE_DAYS, {"pid": row.id, "start": start.isoformat(), "end": end.isoformat()}
    )
    recorded = [DiaryDay(date.fromisoformat(d[0]), *d[1:]) for d in days]
    return check_baseline(recorded, today, rules).passed


def check(session: Session, actor: Actor, pid: str, *, clock: Clock) -> Checked | None:
    """Whether ``pid`` can be randomized now, read without the write lock; None whenever
    it cannot or the answer needs the full path (which then says why)."""
    if not actor.can(Permission.ENROL):
        return None
    conn = session.connection()
    row = conn.execute(_STATE, {"pid": pid.strip().upper()}).first()
    if row is None or row.locked_at is not None:
        return None
    if (actor.sites or actor.role.value == "coordinator") and row.site_code not in actor.sites:
        return None
    ready = (
        row.randomization_number is None
        and row.eligible
        and row.withdrawn_at is None
        and row.consent_date is not None
    )
    today = clock.now().date()
    if not ready or not _baseline_passes(conn, session, row, today):
        return None
    return Checked(row.id, row.stratum_code, today, tuple(row), participant_state(row, None))


def claim_checked(
    session: Session, actor: Actor, checked: Checked, *, clock: Clock
) -> Randomization | None:
    """Under the write lock: bind the next envelope to a participant :func:`check` found
    ready, if nothing it read has changed; None (having written nothing) otherwise."""
    now = clock.now()
    if now.date() != checked.day:
        return None
    conn = session.connection()
    pid = checked.participant_id
    row = conn.execute(_CLAIM_STATE, {"pid": pid, "stratum": checked.stratum}).first()
    if row is None or tuple(row)[:_CHECKED_COLUMNS] != checked.seen:
        return None
    if row.envelope_id is None:
        return None  # exhausted, or not sealed: the full path says which
    audit.known_head(session, row.audit_head_seq, row.audit_head_hash)
    number, label = randomization_number(row.randomized_so_far + 1), new_label_code()
    after = checked.before | {
        "randomization_number": number,
        "label_code": label,
        "envelope": f"{checked.stratum}#{row.envelope_seq}",
    }
    change = audit.Change("participant.randomize", "participant", pid, checked.before, after)
    (event,) = audit.event_rows(session, actor, [change], clock=clock)
    params = {"envelope": row.envelope_id, "pid": pid, "now": now}
    params |= {"rand_number": number, "label": label}
    if conn.dialect.name == "postgresql":
        params |= {f"event_{c}": event[c] for c in _EVENT_COLUMNS}
        done = conn.execute(_CLAIM_IN_ONE, params).first() is not None
    else:  # SQLite has no data-modifying CTEs, and no round trips to save
        done = conn.execute(_BIND_ENVELOPE, params).rowcount == 1
        if done:
            conn.execute(_NUMBER_PARTICIPANT, params)
            conn.execute(_APPEND_EVENT, event)
    if not done:  # impossible under the write lock; never number without an envelope
        raise RuntimeError(f"envelope {checked.stratum}#{row.envelope_seq} was taken meanwhile")
    audit.appended(session, [event])
    return Randomization(checked.participant_id, number, label, already=False)


def randomize_in_turn(engine: Engine, actor: Actor, pid: str, *, clock: Clock) -> Randomization:
    """Randomize ``pid`` as :func:`trialkit.services.enrolment.randomize` does, holding the
    write lock only for the claim (see the module's description)."""
    checked: Checked | None
    try:
        with read_only(engine) as session:
            checked = check(session, actor, pid, clock=clock)
    except TrialkitError:
        checked = None  # the full path, under the lock, gives (and records) the refusal
    with transaction(engine) as session:
        if checked is not None:
            done = claim_checked(session, actor, checked, clock=clock)
            if done is not None:
                return done
        return randomize(session, actor, pid, clock=clock)
