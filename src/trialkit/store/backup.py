"""Backups of a trial database and their restore: SQLite through its online backup API
(sqlite3's ``Connection.backup``, safe while others write), PostgreSQL through ``pg_dump -Fc``
and ``pg_restore`` when they are on the PATH.

Credentials never reach a command line (where any user of the machine could read them):
``pg_dump`` and ``pg_restore`` get the connection in libpq's environment variables."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from trialkit.domain.errors import InvalidInput, Refused
from trialkit.store.db import READONLY, normalize_url, sqlite_path

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"

# libpq reads these from the environment (https://www.postgresql.org/docs/current/libpq-envars.html).
_LIBPQ_ENV = {
    "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY", "sslcrl": "PGSSLCRL", "options": "PGOPTIONS",
    "connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME",
    "target_session_attrs": "PGTARGETSESSIONATTRS", "service": "PGSERVICE",
    "passfile": "PGPASSFILE", "gssencmode": "PGGSSENCMODE",
}


@dataclass(frozen=True)
class BackupFile:
    """A backup as written: where, how big, its SHA-256, and the audit chain it holds."""

    path: Path
    kind: str  # "sqlite" or "pg_dump"
    size: int
    sha256: str
    events: int
    head: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def backup_kind(path: Path) -> str:
    """What a backup file is, from its first bytes: "sqlite" or "pg_dump" (custom format)."""
    if not path.is_file():
        raise InvalidInput(f"backup: no such file {path}")
    with path.open("rb") as f:
        start = f.read(len(SQLITE_MAGIC))
    if start.startswith(SQLITE_MAGIC):
        return "sqlite"
    if start.startswith(PG_DUMP_MAGIC):
        return "pg_dump"
    raise InvalidInput(
        f"backup: {path} is neither a SQLite database nor a pg_dump custom-format file")


def check_new_file(out: Path) -> None:
    """A backup never overwrites anything: a file already there is refused (exit 2)."""
    if out.exists():
        raise InvalidInput(f"backup: {out} already exists; give a new file name")
    if not out.parent.is_dir():
        raise InvalidInput(f"backup: no such directory {out.parent}")


def libpq_env(url: str) -> dict[str, str]:
    """The environment that makes pg_dump, pg_restore and psql connect where ``url`` does:
    what the URL gives, and for anything it leaves out (a port, a password file, the TLS
    root certificate, ...) libpq's own environment variables, as trialkit's own connection
    to ``url`` uses them."""
    u = make_url(normalize_url(url))
    env = dict(os.environ)
    for value, name in ((u.host, "PGHOST"), (u.port, "PGPORT"), (u.username, "PGUSER"),
                        (u.password, "PGPASSWORD"), (u.database, "PGDATABASE")):
        if value is not None:
            env[name] = str(value)
    for key, given in u.query.items():
        if key in _LIBPQ_ENV:
            env[_LIBPQ_ENV[key]] = given if isinstance(given, str) else given[-1]
    return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise Refused(
            f"{name} is not on the PATH: install the PostgreSQL client tools "
            "(Debian: apt-get install postgresql-client) of the server's major version; "
            "nothing was written")
    return found


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise Refused(f"{what} failed: {why}")


def _chain_head(conn: Connection) -> tuple[int, str]:
    row = conn.execute(text(
        "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1")).first()
    return (0, "") if row is None else (int(row[0]), str(row[1]))


@contextmanager
def _unfinished(out: Path) -> Iterator[Path]:
    """A temporary name beside ``out``, renamed to it only when the backup is whole."""
    tmp = out.with_name(f".{out.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        tmp.rename(out)
    finally:
        tmp.unlink(missing_ok=True)


def write_backup(engine: Engine, out: Path) -> BackupFile:
    """Write a consistent copy of the database to ``out`` (a new file)."""
    check_new_file(out)
    if engine.dialect.name == "sqlite":
        return _sqlite_backup(engine, out)
    if engine.dialect.name == "postgresql":
        return _pg_backup(engine, out)
    raise Refused(f"backup: no backup method for {engine.dialect.name}")


def _sqlite_backup(engine: Engine, out: Path) -> BackupFile:
    source = sqlite_path(str(engine.url))
    if source is None:
        raise Refused("backup: an in-memory database has nothing to back up")
    with _unfinished(out) as tmp:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dest = sqlite3.connect(tmp)
        try:
            src.backup(dest)
            # One self-contained file: reading it read-only leaves no -wal/-shm beside it.
            dest.execute("PRAGMA journal_mode = DELETE")
            row = dest.execute(
                "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1").fetchone()
        finally:
            dest.close()
            src.close()
    seq, head = (0, "") if row is None else (int(row[0]), str(row[1]))
    return BackupFile(out, "sqlite", out.stat().st_size, file_sha256(out), seq, head)


def _pg_backup(engine: Engine, out: Path) -> BackupFile:
    pg_dump = _tool("pg_dump")
    url = engine.url.render_as_string(hide_password=False)
    # pg_dump dumps the snapshot this transaction exports, so the chain head read here is
    # exactly the one in the file, however busy the trial is meanwhile.
    with engine.execution_options(
            isolation_level="REPEATABLE READ", **{READONLY: True}).connect() as conn:
        snapshot = str(conn.execute(text("SELECT pg_export_snapshot()")).scalar_one())
        seq, head = _chain_head(conn)
        with _unfinished(out) as tmp:
            _run([pg_dump, "--format=custom", f"--snapshot={snapshot}", "--no-password",
                  f"--file={tmp}"], libpq_env(url), "pg_dump")
        conn.rollback()
    return BackupFile(out, "pg_dump", out.stat().st_size, file_sha256(out), seq, head)


def restore(backup: Path, into: str) -> None:
    """Restore a backup into a new database: a SQLite backup is copied to a new file (and
    put back in WAL mode); a pg_dump file is restored into an empty PostgreSQL database."""
    kind = backup_kind(backup)
    url = normalize_url(into)
    target = sqlite_path(url)
    if kind == "sqlite":
        if target is None:
            raise InvalidInput("restore: a SQLite backup restores into a new SQLite file")
        check_new_file(target)
        with _unfinished(target) as tmp:
            src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
            dest = sqlite3.connect(tmp)
            try:
                src.backup(dest)
                dest.execute("PRAGMA journal_mode = WAL")
            finally:
                dest.close()
                src.close()
        return
    if make_url(url).get_backend_name() != "postgresql":
        raise InvalidInput("restore: a pg_dump file restores into an empty PostgreSQL database")
    _refuse_non_empty(url)
    _run([_tool("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction",
          "--no-password", f"--dbname={_dbname_only(url)}", str(backup)],
         libpq_env(url), "pg_restore")


def _dbname_only(url: str) -> str:
    name = make_url(url).database
    if not name:
        raise InvalidInput("restore: the PostgreSQL URL names no database")
    return name


def _refuse_non_empty(url: str) -> None:
    from sqlalchemy import inspect

    from trialkit.store.db import make_engine

    engine = make_engine(url, read_only=True)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise InvalidInput(
            "restore: the target database already holds tables; restore into a new, empty one")
