"""What an attacker with write access to the database can do, and how tests look at the
result. The append-only triggers are switched off the way someone holding the file or a
superuser login would; ``audit verify`` must still catch every change."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, select, text
from sqlmodel import Session

from trialkit.domain.audit_chain import ChainFields, event_hash
from trialkit.services.integrity import verification
from trialkit.services.integrity.verification import VerifyReport
from trialkit.store.db import READONLY, read_only
from trialkit.store.models import AuditEvent, User

EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]
USERS = User.__table__  # type: ignore[attr-defined]
_FOUNDATION = importlib.import_module("trialkit.store.migrations.versions.0001_foundation")
_CHAIN_FIELDS = [f.name for f in dataclasses.fields(ChainFields)]


def guards_off(conn: Connection) -> None:
    """Switch off the append-only guards of the audit table."""
    if conn.dialect.name == "sqlite":
        conn.execute(text("DROP TRIGGER audit_event_no_update"))
        conn.execute(text("DROP TRIGGER audit_event_no_delete"))
    else:
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))


def guards_on(conn: Connection) -> None:
    """Put the guards back, so the schema looks untouched afterwards."""
    if conn.dialect.name == "sqlite":
        for statement in _FOUNDATION.SQLITE_GUARDS:
            conn.execute(text(statement))
    else:
        conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))


@contextmanager
def attack(engine: Engine) -> Iterator[Connection]:
    """Tamper for real: guards off, change things, guards back on, commit."""
    with engine.begin() as conn:
        guards_off(conn)
        yield conn
        guards_on(conn)


@contextmanager
def rehearse(engine: Engine) -> Iterator[Connection]:
    """Tamper inside a transaction that is rolled back afterwards, so one trail serves many
    attacks. ``verify_on`` sees exactly what a later reader would see after a commit."""
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            guards_off(conn)
            yield conn
        finally:
            trans.rollback()


def verify(engine: Engine, *, expected_head: str | None = None) -> VerifyReport:
    with read_only(engine) as s:
        return verification.verify(s, expected_head=expected_head)


def verify_on(conn: Connection, *, expected_head: str | None = None) -> VerifyReport:
    with Session(bind=conn) as s:
        return verification.verify(s, expected_head=expected_head)


def events(conn: Connection) -> list[dict[str, Any]]:
    """Every audit row as a dict of typed values, in sequence order."""
    rows = conn.execute(select(EVENTS).order_by(EVENTS.c.seq))
    return [dict(r._mapping) for r in rows]


def event(conn: Connection, seq: int) -> dict[str, Any]:
    row = conn.execute(select(EVENTS).where(EVENTS.c.seq == seq)).one()
    return dict(row._mapping)


def rehash(row: dict[str, Any]) -> str:
    """The hash trialkit would give this row: the algorithm is no secret."""
    return event_hash(ChainFields(**{name: row[name] for name in _CHAIN_FIELDS}))


def set_event(conn: Connection, seq: int, **values: Any) -> None:
    conn.execute(EVENTS.update().where(EVENTS.c.seq == seq).values(**values))


def delete_event(conn: Connection, seq: int) -> None:
    conn.execute(EVENTS.delete().where(EVENTS.c.seq == seq))


def shift_events(conn: Connection, from_seq: int, by: int) -> None:
    """Renumber every event from ``from_seq`` on (in two steps: seq is a primary key)."""
    conn.execute(EVENTS.update().where(EVENTS.c.seq >= from_seq).values(seq=-EVENTS.c.seq))
    conn.execute(EVENTS.update().where(EVENTS.c.seq < 0).values(seq=-EVENTS.c.seq + by))


def reader(engine: Engine) -> Engine:
    """The engine for plain reads: on SQLite a plain transaction would take the write lock."""
    return engine.execution_options(**{READONLY: True})


def audit_actions(engine: Engine) -> list[str]:
    with reader(engine).connect() as conn:
        return [row["action"] for row in events(conn)]
