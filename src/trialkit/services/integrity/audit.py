"""Writing and reading the audit trail. Every service that changes anything calls
``record`` in the same transaction as the change, so neither exists without the other."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy import select as select_columns
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, col, select

from trialkit.domain.audit_chain import (
    GENESIS,
    ChainBreak,
    ChainFields,
    ChainWalk,
    canonical_json,
)
from trialkit.domain.audit_chain import event_hash as chain_hash
from trialkit.domain.audit_signing import sign_event
from trialkit.domain.clock import Clock, SystemClock
from trialkit.domain.roles import Permission
from trialkit.services.actor import Actor, require
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.store.db import PG_WRITE_LOCK, takes_write_lock_at_begin
from trialkit.store.models import AuditEvent
from trialkit.store.types import UTCDateTime

_HEAD = "trialkit_audit_head"
EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]
# Built once: the hot paths (randomize, diary entry) append an event per transaction.
_HEAD_ROW = select(EVENTS.c.seq, EVENTS.c.hash).order_by(EVENTS.c.seq.desc()).limit(1)
_APPEND = insert(EVENTS)


class _ServerNow(FunctionElement[datetime]):
    """The database server's clock where there is a server (PostgreSQL's
    ``clock_timestamp()``: the time it is read, not when the transaction began); NULL on
    SQLite, whose only clock is the client's."""

    type = UTCDateTime()
    inherit_cache = True
    name = "trialkit_server_now"


@compiles(_ServerNow)
def _no_server_clock(_element: _ServerNow, _compiler: Any, **_kw: Any) -> str:
    return "NULL"


@compiles(_ServerNow, "postgresql")
def _pg_clock(_element: _ServerNow, _compiler: Any, **_kw: Any) -> str:
    return "clock_timestamp()"


_SERVER_NOW = _ServerNow().label("server_now")


def event_time(clock: Clock, server_now: datetime | None) -> datetime:
    """When an event happened. A live trial (the system clock) on PostgreSQL takes the
    server's clock, read under the write lock with the chain head: every client agrees and
    time never goes back along the chain whatever a client's clock says. Otherwise the
    given clock (SQLite's one machine, a training trial's stated time, tests)."""
    if server_now is not None and isinstance(clock, SystemClock):
        return server_now
    return clock.now()


@event.listens_for(Session, "after_transaction_end")
def _forget_head(session: Session, _transaction: object) -> None:
    # The cached head is only valid inside the transaction (or savepoint) that read it.
    session.info.pop(_HEAD, None)


def lock_chain(session: Session) -> None:
    """Serialise with every other writer until this transaction ends. Write transactions
    from ``store.db`` engines already hold it (BEGIN IMMEDIATE on SQLite, the same advisory
    lock on PostgreSQL): this covers sessions bound some other way, without a second round
    trip for those that hold it."""
    conn = session.connection()
    if conn.dialect.name == "postgresql" and not takes_write_lock_at_begin(conn):
        conn.exec_driver_sql(PG_WRITE_LOCK)


# The chain head and the server's time in one statement (one round trip on PostgreSQL).
_HEAD_AND_TIME = select(
    _HEAD_ROW.with_only_columns(EVENTS.c.seq).scalar_subquery(),
    _HEAD_ROW.with_only_columns(EVENTS.c.hash).scalar_subquery(),
    _SERVER_NOW,
)


def _chain_head(session: Session, clock: Clock) -> tuple[int, str, datetime]:
    # Two transactions must never both read the same head and fork the chain: every write
    # transaction holds the write lock (store.db). The head and the time of this
    # transaction's events (see event_time) are read together and cached for it.
    cached = session.info.get(_HEAD)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    lock_chain(session)
    seq, prev, server_now = session.connection().execute(_HEAD_AND_TIME).one()
    head = (seq or 0, prev or GENESIS, event_time(clock, server_now))
    session.info[_HEAD] = head
    return head


def now(session: Session, clock: Clock) -> datetime:
    """The time this transaction's audit events carry: a service stamps the rows it changes
    with it (an envelope's ``bound_at``), so rows and their event agree to the microsecond."""
    return _chain_head(session, clock)[2]


@dataclass(frozen=True)
class Change:
    """One event to append: what happened to which entity, its states before and after
    (plain JSON values that must never reveal an arm), and why."""

    action: str
    entity: str
    entity_id: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    reason: str | None = None


def chained_rows(
    head: tuple[int, str],
    actor: Actor | None,
    changes: Sequence[Change],
    *,
    at: datetime,
    user_name: str | None = None,
) -> list[dict[str, Any]]:
    """The rows that append ``changes`` after the event ``head`` (its seq and hash), which
    the caller read under the write lock it still holds. Each is signed with the actor's
    signing key when the actor holds it and the event is theirs."""
    seq, prev = head
    at = at.astimezone(UTC)
    who = user_name or (actor.name if actor else "(unknown)")
    role = actor.role.value if actor else "-"
    key = actor.signing_key if actor is not None and who == actor.name else None
    rows: list[dict[str, Any]] = []
    for change in changes:
        seq += 1
        fields = ChainFields(
            seq=seq,
            at=at,
            user_name=who,
            role=role,
            action=change.action,
            entity=change.entity,
            entity_id=change.entity_id,
            before_json=None if change.before is None else canonical_json(change.before),
            after_json=None if change.after is None else canonical_json(change.after),
            reason=change.reason,
            prev_hash=prev,
        )
        prev = chain_hash(fields)
        signature = None if key is None else sign_event(key, prev)
        # flat fields: no deep copy (asdict)
        rows.append(vars(fields) | {"hash": prev, "signature": signature})
    return rows


def record_many(
    session: Session,
    actor: Actor | None,
    changes: Sequence[Change],
    *,
    clock: Clock,
    user_name: str | None = None,
) -> None:
    """Append events to the chain in one bulk insert (sealing thousands of lists, importing
    thousands of diary days), in the caller's transaction."""
    if not changes:
        return
    seq, prev, at = _chain_head(session, clock)
    rows = chained_rows((seq, prev), actor, changes, at=at, user_name=user_name)
    session.flush()  # pending ORM changes go first, as they would with session.add
    session.connection().execute(_APPEND, rows)
    session.info[_HEAD] = (rows[-1]["seq"], rows[-1]["hash"], at)


def record_dated(
    session: Session, events: Sequence[tuple[datetime, Actor, Change]], *, clock: Clock,
    chunk: int = 5000,
) -> int:
    """Append events that each carry their own time (a generated training trial's history,
    in time order), bulk-inserted ``chunk`` at a time in the caller's transaction, chained
    exactly as :func:`record_many` chains. Returns the number appended."""
    if not events:
        return 0
    seq, prev, at = _chain_head(session, clock)
    session.flush()
    conn = session.connection()
    rows: list[dict[str, Any]] = []
    for when, actor, change in events:
        row = chained_rows((seq, prev), actor, [change], at=when)[0]
        seq, prev = row["seq"], row["hash"]
        rows.append(row)
        if len(rows) >= chunk:
            conn.execute(_APPEND, rows)
            rows = []
    if rows:
        conn.execute(_APPEND, rows)
    session.info[_HEAD] = (seq, prev, at)
    return len(events)


def record(
    session: Session,
    actor: Actor | None,
    *,
    action: str,
    entity: str,
    entity_id: str,
    clock: Clock,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str | None = None,
    user_name: str | None = None,
) -> None:
    """Append one event to the chain (see :class:`Change`)."""
    change = Change(action, entity, entity_id, before, after, reason)
    record_many(session, actor, [change], clock=clock, user_name=user_name)


def last_event_at(session: Session) -> datetime | None:
    """When the newest audit event (the highest sequence number) happened; None if none."""
    return session.exec(
        select(AuditEvent.at).order_by(col(AuditEvent.seq).desc()).limit(1)
    ).first()


_CHAIN_COLUMNS = [EVENTS.c[name] for name in ChainFields.__dataclass_fields__]
_CHAIN = select_columns(*_CHAIN_COLUMNS, EVENTS.c.hash).order_by(EVENTS.c.seq)
_SIGNED_CHAIN = _CHAIN.add_columns(EVENTS.c.signature)


def iter_chain(session: Session) -> Iterator[tuple[ChainFields, str]]:
    """Every event's hashed fields and stored hash in stored sequence order, streamed a
    few thousand rows at a time (never the whole trail at once)."""
    rows = session.connection().execute(_CHAIN.execution_options(yield_per=5000))
    for row in rows:
        *fields, stored = row
        yield ChainFields(*fields), stored


def iter_signed_chain(
    session: Session, *, upto: int | None = None
) -> Iterator[tuple[ChainFields, str, bytes | None]]:
    """As :func:`iter_chain`, with each event's signature (up to event ``upto``, if given)."""
    query = _SIGNED_CHAIN if upto is None else _SIGNED_CHAIN.where(EVENTS.c.seq <= upto)
    rows = session.connection().execute(query.execution_options(yield_per=5000))
    for row in rows:
        *fields, stored, signature = row
        yield ChainFields(*fields), stored, signature


def first_break(session: Session) -> tuple[int, str, ChainBreak | None]:
    """Walk the whole chain, streamed: (event count, head hash, first break or None)."""
    walk = ChainWalk()
    for fields, stored in iter_chain(session):
        walk.step(fields, stored)
    return walk.count, walk.head, walk.first_break


@dataclass(frozen=True)
class LogEntry:
    """An audit event as shown to a reader."""

    seq: int
    at: datetime
    user: str
    role: str
    action: str
    entity: str
    entity_id: str
    before: str | None
    after: str | None
    reason: str | None


@audits_refusals("audit.log", entity="audit_event")
def log(
    session: Session,
    actor: Actor,
    *,
    user: str | None = None,
    action: str | None = None,
    entity: str | None = None,
    entity_id: str | None = None,
    limit: int | None = None,
) -> list[LogEntry]:
    """Events matching the filters, newest last (``limit`` keeps the newest ones)."""
    require(actor, Permission.READ_AUDIT)
    stmt = select(AuditEvent)
    if user:
        stmt = stmt.where(AuditEvent.user_name == user)
    if action:
        stmt = stmt.where(col(AuditEvent.action).startswith(action))
    if entity:
        stmt = stmt.where(AuditEvent.entity == entity)
    if entity_id:
        stmt = stmt.where(AuditEvent.entity_id == entity_id)
    stmt = stmt.order_by(col(AuditEvent.seq).desc())
    if limit:
        stmt = stmt.limit(limit)
    rows = list(session.exec(stmt))
    rows.reverse()
    return [
        LogEntry(
            seq=e.seq,
            at=e.at,
            user=e.user_name,
            role=e.role,
            action=e.action,
            entity=e.entity,
            entity_id=e.entity_id,
            before=e.before_json,
            after=e.after_json,
            reason=e.reason,
        )
        for e in rows
    ]
