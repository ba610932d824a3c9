"""Randomizing in one short write transaction: what the CLI and the TUI call.

Every randomization is serialised by the database's write lock (``store.db``: BEGIN
IMMEDIATE on SQLite, an advisory lock on PostgreSQL), so how many can be made per second
is one over the time that lock is held. :func:`randomize_in_turn` holds it for as little
as the claim allows, on the bare driver connection with statements compiled once
(``store.prepared``):

1. the checks of :func:`trialkit.services.enrolment.randomize` (site, eligibility,
   consent, withdrawal, the baseline-diary gate) on the participant's row and diary days,
   read in one batch with the database lock, the protocol's hash, the number randomized so
   far, the stratum's lowest unused envelope and the audit chain's head;
2. the envelope bound, the participant numbered and the audit event appended, with the
   COMMIT.

On PostgreSQL every statement is a round trip, so the reads are pipelined with BEGIN and the
lock (one round trip) and the writes with the COMMIT (one statement, one round trip). On
SQLite statements cost no round trip but the Python work does count while the lock is held,
so the checks are made first, in a read transaction without the lock; under the lock the
same row is read again and must be exactly what the checks saw (the participant's row, the
newest of their diary rows, the database lock, the protocol, the day), else nothing is
taken this way. Diary days are never updated in place (a correction adds a version with a
new id), so the newest id of a participant's diary rows changes whenever their diary does.

Whenever anything is not simply ready (a check refuses, the participant was randomized
already, the stratum is exhausted or not sealed, something changed, the protocol is not
parsed in this process yet), it writes nothing and the full ``randomize`` runs instead, in
a transaction of its own, and gives the authoritative answer (and records any audited
refusal): both paths always agree, and the refusals keep their one wording.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

from sqlalchemy import (
    Engine,
    Insert,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.sql.elements import BindParameter

from trialkit.domain.audit_chain import GENESIS
from trialkit.domain.clock import Clock
from trialkit.domain.codes import new_label_code, randomization_number
from trialkit.domain.diary import DiaryDay, check_baseline
from trialkit.domain.roles import Permission
from trialkit.services import audit
from trialkit.services.actor import Actor
from trialkit.services.enrolment import Randomization, participant_state, randomize
from trialkit.services.trial import cached_protocol, stored_protocol
from trialkit.store.db import read_only, transaction
from trialkit.store.models import DiaryEntry, Envelope, Participant, Trial
from trialkit.store.prepared import PreparedSet, raw_transaction

_P = Participant.__table__  # type: ignore[attr-defined]
_D = DiaryEntry.__table__  # type: ignore[attr-defined]
_T = Trial.__table__  # type: ignore[attr-defined]
_E = Envelope.__table__  # type: ignore[attr-defined]


# Statements are built once, with bound parameters, and compiled once per dialect
# (``_STATEMENTS``): building and compiling a statement costs more than running it.
_PID: BindParameter[str] = bindparam("pid")
_NEXT = (  # the lowest unused envelope of the participant's stratum (correlated)
    select(_E.c.id)
    .where(_E.c.stratum_code == _P.c.stratum_code, _E.c.participant_id.is_(None))
    .order_by(_E.c.seq)
    .limit(1)
)
_LOOK = select(  # the participant's row and everything else the checks read
    _P,
    select(func.max(_D.c.id)).where(_D.c.participant_id == _PID).scalar_subquery()
    .label("newest_diary_row"),
    select(_T.c.locked_at).where(_T.c.id == 1).scalar_subquery().label("locked_at"),
    select(_T.c.protocol_sha256).where(_T.c.id == 1).scalar_subquery().label("protocol"),
).where(_P.c.id == _PID)
_LOOKED = len(_LOOK.selected_columns)
_STATE = _LOOK.add_columns(  # under the lock: the same, and what the claim needs
    select(func.count())
    .select_from(_P.alias("randomized"))
    .where(literal_column("randomized.randomization_number").is_not(None))
    .scalar_subquery()
    .label("randomized_so_far"),
    _NEXT.scalar_subquery().label("envelope_id"),
    _NEXT.with_only_columns(_E.c.seq).scalar_subquery().label("envelope_seq"),
    audit.HEAD_SEQ,
    audit.HEAD_HASH,
)
_DIARY_DAYS = select(  # before randomization a diary holds its baseline days only
    _D.c.day, _D.c.headache, _D.c.severity, _D.c.duration_hours, _D.c.acute_medication
).where(_D.c.participant_id == _PID, _D.c.current.is_(true()))
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


_APPEND_EVENT = insert(_A).values(
    {c: bindparam(f"event_{c}", type_=_A.c[c].type) for c in _EVENT_COLUMNS}
)
_STATEMENTS = PreparedSet(
    look=_LOOK,
    state=_STATE,
    diary_days=_DIARY_DAYS,
    claim_in_one=_claim_in_one_statement(),
    bind_envelope=_BIND_ENVELOPE,
    number_participant=_NUMBER_PARTICIPANT,
    append_event=_APPEND_EVENT,
)


def _ready(actor: Actor, row: Any, days: list[Any], today: date) -> bool:
    """Whether the full path would randomize now, from what was read."""
    if row.locked_at is not None:
        return False
    if (actor.sites or actor.role.value == "coordinator") and row.site_code not in actor.sites:
        return False
    if not (
        row.randomization_number is None
        and row.eligible
        and row.withdrawn_at is None
        and row.consent_date is not None
    ):
        return False
    protocol = cached_protocol(row.protocol)
    if protocol is None:
        return False  # not parsed in this process yet: the full path parses it
    recorded = [DiaryDay(date.fromisoformat(d[0]), *d[1:]) for d in days]
    return check_baseline(recorded, today, protocol.diary).passed


@dataclass(frozen=True)
class _Looked:
    """A participant found ready before the lock, and what that rested on."""

    seen: tuple[Any, ...]  # the row of ``_LOOK``: participant, newest diary row, lock, protocol
    before: dict[str, Any]  # their state as the audit trail records it


def _look(engine: Engine, actor: Actor, key: str, today: date) -> _Looked | None:
    stmt = partial(_STATEMENTS.get, engine.dialect)
    with raw_transaction(engine, write=False) as conn:
        state, diary = conn.cursor(), conn.cursor()
        stmt("look").run(state, {"pid": key})
        stmt("diary_days").run(diary, {"pid": key})
        row = stmt("look").fetch_first(state)
        days = stmt("diary_days").fetch_all(diary)
    if row is None or not _ready(actor, row, days, today):
        return None
    return _Looked(tuple(row), participant_state(row, None))


def claim(engine: Engine, actor: Actor, pid: str, *, clock: Clock) -> Randomization | None:
    """Randomize ``pid`` the short way if it is simply ready; None, having written nothing,
    whenever the full path must answer (see the module's description)."""
    if not actor.can(Permission.ENROL):
        return None
    key = pid.strip().upper()
    stmt = partial(_STATEMENTS.get, engine.dialect)
    postgres = engine.dialect.name == "postgresql"
    today = clock.now().date()
    looked = None
    if not postgres:  # SQLite: the checks before the lock (see the module's description)
        looked = _look(engine, actor, key, today)
        if looked is None:
            return None
    label = new_label_code()
    with raw_transaction(engine, write=True) as conn:
        now = clock.now()
        state, diary = conn.cursor(), conn.cursor()
        stmt("state").run(state, {"pid": key})
        if looked is None:  # both reads go with the lock: one round trip on PostgreSQL
            stmt("diary_days").run(diary, {"pid": key})
        row = stmt("state").fetch_first(state)
        if row is None or now.date() != today:
            return None
        if looked is None:
            if not _ready(actor, row, stmt("diary_days").fetch_all(diary), today):
                return None
            before = participant_state(row, None)
        elif tuple(row)[:_LOOKED] == looked.seen:  # nothing the checks read has changed
            before = looked.before
        else:
            return None
        if row.envelope_id is None:
            return None  # exhausted, or not sealed: the full path says which
        number = randomization_number(row.randomized_so_far + 1)
        envelope = f"{row.stratum_code}#{row.envelope_seq}"
        after = before | {"randomization_number": number, "label_code": label, "envelope": envelope}
        change = audit.Change("participant.randomize", "participant", key, before, after)
        head = (row.audit_head_seq or 0, row.audit_head_hash or GENESIS)
        (event,) = audit.chained_rows(head, actor, [change], at=now)
        params = {"envelope": row.envelope_id, "pid": key, "now": now}
        params |= {"rand_number": number, "label": label}
        params |= {f"event_{c}": event[c] for c in _EVENT_COLUMNS}
        writes = conn.cursor()
        if postgres:  # sent with the COMMIT: the three writes happen together or not at all
            stmt("claim_in_one").run(writes, params)
            conn.commit()  # one round trip for both (pipeline mode)
            if writes.fetchone() is None:  # it wrote nothing: impossible under the lock
                raise RuntimeError(f"envelope {envelope} was taken under the write lock")
        else:  # SQLite has no data-modifying CTEs, and no round trips to save
            if stmt("bind_envelope").run(writes, params).rowcount != 1:
                raise RuntimeError(f"envelope {envelope} was taken under the write lock")
            stmt("number_participant").run(writes, params)
            stmt("append_event").run(writes, params)
    return Randomization(key, number, label, already=False)


_PROTOCOL_READ: weakref.WeakSet[Engine] = weakref.WeakSet()


def randomize_in_turn(engine: Engine, actor: Actor, pid: str, *, clock: Clock) -> Randomization:
    """Randomize ``pid`` as :func:`trialkit.services.enrolment.randomize` does, holding the
    write lock as briefly as the claim allows (see the module's description)."""
    if engine not in _PROTOCOL_READ:  # parse it once per process, not under the lock
        with read_only(engine) as session:
            stored_protocol(session)
        _PROTOCOL_READ.add(engine)
    done = claim(engine, actor, pid, clock=clock)
    if done is not None:
        return done
    with transaction(engine) as session:
        return randomize(session, actor, pid, clock=clock)
