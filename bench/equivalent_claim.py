"""The raw claim that writes what a randomization writes, for ``bench/randomize.py``.

The minimal raw loop there binds an envelope and inserts a three-column audit row in
tables of its own. A randomization must write more: the envelope bound, the participant's
randomization number and label code, and an audit event chained to the one before it,
with the participant's state before and after (the product's audit rule). This loop does
exactly those writes in plain SQL over the bare driver, in a trialkit database prepared
like the service's (same tables, indexes, foreign keys and triggers), with the same
locking and durability, and nothing else: no checks, no reads beyond the claim's own (the
next envelope, the chain head, the count for the number). Its state payloads are the
stored snapshot of a real participant, so the rows are as large as the service's.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

CHAIN_LOCK_KEY = 0x7472_6B61  # trialkit's write lock (store.db)
NEXT = ("SELECT id, seq FROM envelope WHERE stratum_code = {p} AND participant_id IS NULL "
        "ORDER BY seq LIMIT 1")
HEAD = "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1"
COUNT = "SELECT count(*) FROM participant WHERE randomization_number IS NOT NULL"
BIND = "UPDATE envelope SET participant_id = {p}, bound_at = {p} WHERE id = {p}"
NUMBER = ("UPDATE participant SET randomization_number = {p}, label_code = {p}, "
          "randomized_at = {p} WHERE id = {p}")
APPEND = ("INSERT INTO audit_event (seq, at, user_name, role, action, entity, entity_id, "
          "before_json, after_json, reason, prev_hash, hash) "
          "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})")


def _statements(p: str) -> dict[str, str]:
    return {name: sql.replace("{p}", p) for name, sql in
            {"next": NEXT, "bind": BIND, "number": NUMBER, "append": APPEND}.items()}


def snapshot_payload(conninfo_or_path: str) -> str:
    """A participant's stored snapshot (the after-state of a consent event): the size of
    the before and after states a randomization event holds."""
    query = ("SELECT after_json FROM audit_event WHERE action = 'participant.consent' "
             "ORDER BY seq LIMIT 1")
    if conninfo_or_path.startswith("sqlite:"):
        lite = sqlite3.connect(conninfo_or_path.removeprefix("sqlite:"))
        row = lite.execute(query).fetchone()
        lite.close()
    else:
        with psycopg.connect(conninfo_or_path) as pg:
            row = pg.execute(query).fetchone()
    assert row is not None, "no consent event to copy a snapshot from"
    return str(row[0])


def _event(head: tuple[int, str] | None, pid: str, at: Any, payload: str) -> tuple[Any, ...]:
    seq, prev = head if head is not None else (0, "0" * 64)
    digest = hashlib.sha256(f"{prev}|{seq + 1}|{pid}|{payload}".encode()).hexdigest()
    return (seq + 1, at, "cora", "coordinator", "participant.randomize", "participant", pid,
            payload, payload, None, prev, digest)


Claimer = tuple[Callable[[str, str], None], Callable[[], None]]


def sqlite_claimer(path: str, payload: str) -> Claimer:
    """(claim(stratum, pid), close) on a trialkit SQLite file, as trialkit opens it."""
    lite = sqlite3.connect(path, isolation_level=None, timeout=30)
    for pragma in ("busy_timeout = 30000", "journal_mode = WAL", "synchronous = FULL",
                   "foreign_keys = ON"):
        lite.execute(f"PRAGMA {pragma}")
    sql = _statements("?")

    def claim(stratum: str, pid: str) -> None:
        lite.execute("BEGIN IMMEDIATE")
        try:
            row = lite.execute(sql["next"], (stratum,)).fetchone()
            if row is None:
                raise RuntimeError(f"stratum {stratum} is exhausted")
            head = lite.execute(HEAD).fetchone()
            (count,) = lite.execute(COUNT).fetchone()
            now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
            lite.execute(sql["bind"], (pid, now, row[0]))
            lite.execute(sql["number"], (f"R{count + 1:04d}", _label(), now, pid))
            lite.execute(sql["append"], _event(head, pid, now, payload))
            lite.execute("COMMIT")
        except BaseException:
            lite.execute("ROLLBACK")
            raise

    return claim, lite.close


def pg_claimer(conninfo: str, payload: str) -> Claimer:
    """(claim(stratum, pid), close) on a trialkit PostgreSQL schema."""
    pg = psycopg.connect(conninfo)
    sql = _statements("%s")

    def claim(stratum: str, pid: str) -> None:
        with pg.transaction(), pg.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK_KEY,))
            row = cur.execute(sql["next"], (stratum,)).fetchone()
            if row is None:
                raise RuntimeError(f"stratum {stratum} is exhausted")
            head = cur.execute(HEAD).fetchone()
            count = cur.execute(COUNT).fetchone()
            assert count is not None
            now = datetime.now(UTC)
            cur.execute(sql["bind"], (pid, now, row[0]))
            cur.execute(sql["number"], (f"R{count[0] + 1:04d}", _label(), now, pid))
            cur.execute(sql["append"], _event(head, pid, now, payload))

    return claim, pg.close


def _label() -> str:
    return secrets.token_hex(5).upper()
