"""Engines and transactions. SQLite gets WAL (set once, when trialkit creates its tables),
synchronous=FULL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE`` for every write
transaction: Python's default deferred transactions let two writers read the same "next
envelope" before either commits."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlmodel import Session

from trialkit.domain.errors import Busy, DiskFull, InvalidInput, Refused, TrialkitError
from trialkit.store.urls import plain_file, public_url

BUSY_TIMEOUT_MS = 30_000
READONLY = "trialkit_readonly"
# Execution option: called once, with no argument, when a write transaction finds the write
# lock held by another and starts waiting for it (a reader's sign-in says so on stderr).
ON_WAIT = "trialkit_on_wait"
# Execution option: called with the session at the start of every write transaction on the
# engine, before its work (a reader's sign-in is recorded first, see cli.context).
FIRST = "trialkit_first"


def normalize_url(db: str) -> str:
    """Accept a SQLAlchemy URL or a plain file path; PostgreSQL always goes through psycopg 3."""
    db = db.strip()
    if not db:
        raise InvalidInput("database: empty URL or path")
    if db.startswith("file:"):  # a SQLite URI filename: file:copy.db?mode=ro
        return f"sqlite:///{db}{'&' if '?' in db else '?'}uri=true"
    path = plain_file(db)
    if path is not None:
        return f"sqlite:///{path}"
    for prefix in ("postgresql://", "postgres://"):
        if db.startswith(prefix):
            return "postgresql+psycopg://" + db[len(prefix) :]
    return db


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    if u.query.get("uri") == "true":
        return Path(unquote(urlsplit(u.database).path))
    return Path(u.database)


def opens_read_only(url: str) -> bool:
    """Whether a URL itself says read-only (SQLite ``mode=ro`` or ``immutable=1``)."""
    u = make_url(url)
    return u.get_backend_name() == "sqlite" and (
        u.query.get("mode") == "ro" or u.query.get("immutable") == "1"
    )


def _read_only_url(url: str) -> tuple[str, dict[str, Any]]:
    """The URL (and driver options) that open this database for reading only."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is None or opens_read_only(url):
            return url, {}
        return f"sqlite:///file:{quote(str(path))}?mode=ro&uri=true", {}
    options = f"{u.query.get('options', '')} -c default_transaction_read_only=on".strip()
    return u.update_query_dict({"options": options}).render_as_string(hide_password=False), {}


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event own transaction start (see _sqlite_on_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous = FULL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def use_wal(engine: Engine) -> None:
    """Put a new SQLite database in WAL mode (readers never wait for the writer). The mode
    is kept in the file, so it is set once, when trialkit creates its tables, never on a
    file that merely gets opened (a read-only copy, another application's database)."""
    if engine.dialect.name != "sqlite":
        return
    conn = engine.raw_connection()
    try:
        conn.cursor().execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def _sqlite_on_begin(conn: Any) -> None:
    options = conn.get_execution_options()
    if options.get(READONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        _begin_immediate(conn.connection.dbapi_connection, options.get(ON_WAIT))


def _begin_immediate(dbapi_conn: Any, on_wait: Any = None) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock by polling every 0.1 ms, backing off to
    every 1 ms (with jitter), for up to the busy timeout. SQLite's own busy handler sleeps
    1, 2, 5, 10, ... up to 100 ms between tries, so with several writers the lock often
    sits free while every waiter sleeps, and one unlucky writer can wait seconds behind
    others that keep winning; short polls keep the lock busy and the waits fair enough."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    dbapi_conn.execute("PRAGMA busy_timeout = 0")  # for this statement only (see finally)
    try:
        pause = 0.0001
        while True:
            try:
                dbapi_conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy:
                    raise
                if time.monotonic() > deadline:
                    raise Busy(BUSY_TIMEOUT_MS / 1000) from None
                if on_wait is not None:
                    on_wait()
                    on_wait = None
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 0.001)
    finally:
        dbapi_conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


# Names the PostgreSQL advisory lock every write transaction takes first (see _pg_on_begin):
# the two-int form, this key and the schema the trial lives in, so writers to one trial
# queue while trials in other schemas of the same database (each test its own `t_*`
# schema) never wait on each other. A deployment with one schema has one lock, as before.
WRITE_LOCK_KEY = 0x7472_6B61
_WRITE_LOCK_ARGS = f"{WRITE_LOCK_KEY}, hashtext(coalesce(current_schema(), ''))"
PG_WRITE_LOCK = f"SELECT pg_advisory_xact_lock({_WRITE_LOCK_ARGS})"
_PG_TRY_WRITE_LOCK = f"SELECT pg_try_advisory_xact_lock({_WRITE_LOCK_ARGS})"


def _pg_on_begin(conn: Any) -> None:
    # The PostgreSQL twin of SQLite's BEGIN IMMEDIATE: one writer at a time, and every
    # writer takes this lock before any row lock, so lock order can never deadlock. Taken
    # at once when it is free (one round trip); otherwise waited for, for at most the busy
    # timeout, as SQLite waits.
    options = conn.get_execution_options()
    if options.get(READONLY):
        return
    if conn.exec_driver_sql(_PG_TRY_WRITE_LOCK).scalar():
        return
    on_wait = options.get(ON_WAIT)
    if on_wait is not None:
        on_wait()
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {BUSY_TIMEOUT_MS}")
    conn.exec_driver_sql(PG_WRITE_LOCK)


def takes_write_lock_at_begin(conn: Connection) -> bool:
    """Whether this connection's transaction began by taking the write lock: every write
    transaction of an engine from :func:`make_engine` does (SQLite: BEGIN IMMEDIATE)."""
    if conn.get_execution_options().get(READONLY):
        return False
    listener = _pg_on_begin if conn.dialect.name == "postgresql" else _sqlite_on_begin
    return event.contains(conn.engine, "begin", listener)


def make_engine(
    db: str, *, must_exist: bool = True, read_only: bool = False, **kwargs: Any
) -> Engine:
    """Open an engine for a URL or path. ``must_exist`` refuses a SQLite file that is not
    there yet, so a typo does not silently create an empty database. ``read_only`` (or a
    SQLite URL with ``mode=ro``) opens it so that nothing can be written: the driver
    refuses writes, and nothing trialkit would record is attempted (``NO_WRITES``)."""
    url = normalize_url(db)
    read_only = read_only or opens_read_only(url)
    if read_only:
        must_exist = True
        url, options = _read_only_url(url)
        kwargs = options | kwargs
    path = sqlite_path(url)
    if path is not None and must_exist and not path.exists():
        raise InvalidInput(f"no trialkit database at {path} (create one with `trialkit init`)")
    if path is not None and not path.parent.exists():
        raise InvalidInput(f"cannot create database: folder {path.parent} does not exist")
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError) as exc:
        shown = public_url(db)
        reason = str(exc).replace(db, shown)
        raise InvalidInput(f"database: cannot use {shown}: {reason}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "begin", _pg_on_begin)
    if read_only:  # events stay on the engine itself; this only adds an option
        return engine.execution_options(**{NO_WRITES: True})
    return engine


def make_inspecting_engine(db: str) -> Engine:
    """An engine that can only look at an existing database: a SQLite file opened read-only
    (and without the journal-mode and other settings :func:`make_engine` applies, which
    would change a file that may not be trialkit's at all)."""
    url = normalize_url(db)
    path = sqlite_path(url)
    if path is None:
        return make_engine(db)
    if not path.exists():
        raise InvalidInput(f"no database at {path}")
    return create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")


def check_reachable(engine: Engine) -> None:
    """Connect once, turning a driver failure into one clear line."""
    try:
        with engine.execution_options(**{READONLY: True}).connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:  # unreachable, refused, or a file that is no SQLite database
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        where = public_url(engine.url)
        raise InvalidInput(f"cannot reach database {where}: {reason}") from None


@contextmanager
def transaction(bind: Engine | Connection) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error, except that an error
    flagged ``keep_record`` (a refused sign-in, an audited refusal) commits what the service
    recorded about the refusal before it is raised. An error carrying ``record_after`` (see
    ``services.integrity.refusals``) has it run in a small transaction of its own once this one has
    rolled back, so the record of a refusal outlives the refused work.

    ``bind`` is normally the engine. A connection already inside a transaction gives the
    same unit of work on a SAVEPOINT (tests roll a whole test back this way)."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    if engine.get_execution_options().get(NO_WRITES):
        raise Refused(
            "the database is open read-only: this step writes (a sign-in is recorded too); "
            "only `trialkit audit verify` works on a read-only copy"
        )
    first = engine.get_execution_options().get(FIRST)
    session = Session(bind, expire_on_commit=False, join_transaction_mode="create_savepoint")
    try:
        session.begin()
        if first is not None:
            first(session)
        yield session
        session.commit()
    except TrialkitError as exc:
        if getattr(exc, "keep_record", False):
            session.commit()
        else:
            session.rollback()
        session.close()
        _record_after(bind, exc)
        raise
    except DBAPIError as exc:
        session.rollback()
        if disk_full(exc):
            raise DiskFull(f"the database {public_url(str(engine.url))} cannot grow") from None
        if lock_timed_out(exc):
            raise Busy(BUSY_TIMEOUT_MS / 1000) from None
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def lock_timed_out(exc: DBAPIError) -> bool:
    """Whether the write lock stayed with another past the busy timeout (SQLite:
    SQLITE_BUSY, "database is locked"; PostgreSQL: lock_not_available, SQLSTATE 55P03)."""
    orig = exc.orig
    return (
        getattr(orig, "sqlite_errorname", None) in ("SQLITE_BUSY", "SQLITE_LOCKED")
        or getattr(orig, "sqlstate", None) == "55P03"
        or "database is locked" in str(orig).lower()
    )


def disk_full(exc: DBAPIError) -> bool:
    """Whether the database failed because its disk is full (SQLite: SQLITE_FULL;
    PostgreSQL: disk_full, SQLSTATE 53100; or the operating system's ENOSPC)."""
    orig = exc.orig
    text_ = str(orig).lower()
    return (
        getattr(orig, "sqlite_errorname", None) == "SQLITE_FULL"
        or getattr(orig, "sqlstate", None) == "53100"
        or "database or disk is full" in text_
        or "no space left on device" in text_
    )


@contextmanager
def read_only(engine: Engine, *, consistent: bool = False) -> Iterator[Session]:
    """A session for reads: it takes no write lock, so it never waits for a writer nor
    makes one wait. A refusal raised in it is recorded as :func:`transaction` records one.
    ``consistent``: see :func:`snapshot`."""
    options: dict[str, Any] = {READONLY: True}
    if consistent and engine.dialect.name == "postgresql":
        options |= {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    session = Session(engine.execution_options(**options), expire_on_commit=False)
    try:
        session.begin()
        yield session
        session.rollback()
    except TrialkitError as exc:
        session.rollback()
        session.close()
        _record_after(engine, exc)
        raise
    finally:
        session.close()


def snapshot(engine: Engine) -> AbstractContextManager[Session]:
    """A read transaction that sees one state of the database from its first read to its
    end, without the write lock: on SQLite a deferred transaction in WAL mode (its snapshot
    is fixed at the first read; the writer goes on appending to the WAL meanwhile), on
    PostgreSQL REPEATABLE READ, READ ONLY (the advisory write lock is never taken)."""
    return read_only(engine, consistent=True)


def _record_after(bind: Engine | Connection, exc: TrialkitError) -> None:
    record = exc.record_after
    if record is None:
        return
    exc.record_after = None  # once, even if it passes through another transaction
    engine = bind if isinstance(bind, Engine) else bind.engine
    if engine.get_execution_options().get(NO_WRITES):
        return  # a read-only copy: nothing can change, nothing can be recorded
    with transaction(bind) as session:
        record(session)


# Execution option of an engine over a read-only copy (``audit verify --read-only``).
NO_WRITES = "trialkit_no_writes"
