"""Creating and checking a database's schema through the migrations shipped in the package."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

from trialkit.domain.errors import InvalidInput, Refused
from trialkit.store.db import READONLY

# Every revision this trialkit knows, oldest first. A test keeps it equal to Alembic's view.
KNOWN_REVISIONS: tuple[str, ...] = (
    "0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011",
    "0012", "0013", "0014",
)
SCHEMA_HEAD = KNOWN_REVISIONS[-1]
MIGRATIONS = Path(__file__).with_name("migrations")


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision a database is at, or None if it is no trialkit database (read
    without the write lock: a command never waits for a writer to learn the schema)."""
    with engine.execution_options(**{READONLY: True}).connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def table_names(engine: Engine) -> list[str]:
    """The tables (and nothing else) in the database's default schema."""
    with engine.execution_options(**{READONLY: True}).connect() as conn:
        return inspect(conn).get_table_names()


def erase(engine: Engine) -> None:
    """Drop every table of the database's default schema, and trialkit's own trigger
    function, in one transaction: for `trialkit demo --fresh` on a server database, after
    it has checked that the database holds its own demo and nothing else."""
    from sqlalchemy import MetaData

    with engine.begin() as conn:
        tables = MetaData()
        tables.reflect(conn)
        tables.drop_all(conn)
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP FUNCTION IF EXISTS audit_event_append_only()"))


def upgrade_on(conn: Connection) -> None:
    """Apply every migration up to the head inside the caller's transaction."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


@contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """A write transaction that may change the schema. SQLite changes a column's type by
    rebuilding its table, and dropping a table that others refer to fails while foreign
    keys are enforced, so they are off for this transaction only (SQLite's own procedure
    for schema changes: the setting cannot change inside a transaction) and every
    reference is checked before the commit."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        raw = conn.connection.dbapi_connection if sqlite else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys = OFF")
        try:
            with conn.begin():
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise InvalidInput(
                            f"the schema change would leave {len(broken)} broken "
                            f"references (first: {tuple(broken[0])}); nothing was changed"
                        )
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys = ON")


def upgrade(engine: Engine) -> None:
    """Apply every migration up to the head, in one transaction."""
    with migrating(engine) as conn:
        upgrade_on(conn)


def refuse_foreign_tables(engine: Engine) -> None:
    """Refuse to create trialkit's tables next to another application's: ``init`` wants a
    new database (a new SQLite file, an empty PostgreSQL schema)."""
    with engine.execution_options(**{READONLY: True}).connect() as conn:
        tables = sorted(inspect(conn).get_table_names())
    if tables:
        shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
        raise InvalidInput(
            f"this database already holds tables trialkit does not know ({shown}); "
            "give `trialkit init` a new database file or an empty PostgreSQL schema"
        )


def check_known(revision: str) -> None:
    """Refuse a schema newer than this code (one it has no migration for)."""
    if revision not in KNOWN_REVISIONS:
        raise InvalidInput(
            f"database schema {revision} is newer than this trialkit ({SCHEMA_HEAD}); "
            "upgrade trialkit"
        )


def check_current(engine: Engine) -> None:
    """Refuse a database that is not trialkit's, newer than this code, or not yet upgraded."""
    revision = schema_revision(engine)
    if revision is None:
        raise InvalidInput("this database holds no trial yet (create one with `trialkit init`)")
    check_known(revision)
    if revision != SCHEMA_HEAD:
        raise Refused(
            f"database schema {revision} is older than this trialkit ({SCHEMA_HEAD}); "
            "run `trialkit db upgrade` (admin) after a backup"
        )


# The guards that keep ``audit_event`` append-only (migration 0001): on SQLite each trigger
# as its exact text; on PostgreSQL each trigger's kind (pg_trigger.tgtype: row 1, before 2,
# delete 8, update 16, truncate 32) and the function that must refuse.
_SQLITE_GUARDS = {
    name: f"CREATE TRIGGER {name} BEFORE {what} ON audit_event "
          "BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END"
    for name, what in (("audit_event_no_update", "UPDATE"), ("audit_event_no_delete", "DELETE"))
}
_PG_GUARDS = {"audit_event_no_change": 1 | 2 | 8 | 16, "audit_event_no_truncate": 2 | 32}
_PG_GUARD_FUNCTION = "audit_event_append_only"
_PG_TRIGGERS = text(
    "SELECT t.tgname, t.tgtype, t.tgenabled, p.proname, p.prosrc FROM pg_trigger t "
    "JOIN pg_proc p ON p.oid = t.tgfoid "
    "WHERE t.tgrelid = to_regclass('audit_event') AND NOT t.tgisinternal"
)


def append_only_problems(conn: Connection) -> list[str]:
    """What is wrong with the guards that make the audit trail append-only: a trigger
    dropped, disabled, changed, or its function rewritten so it no longer refuses."""
    if conn.dialect.name == "sqlite":
        found: dict[str, str] = dict(conn.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
            "AND tbl_name = 'audit_event'")).tuples().all())
        return [
            f"trigger {name} is missing" if name not in found
            else f"trigger {name} was changed"
            for name, sql in _SQLITE_GUARDS.items()
            if " ".join(str(found.get(name, "")).split()) != sql
        ]
    if conn.dialect.name != "postgresql":
        return []
    rows = {r.tgname: r for r in conn.execute(_PG_TRIGGERS)}
    problems = []
    for name, kind in _PG_GUARDS.items():
        row = rows.get(name)
        if row is None:
            problems.append(f"trigger {name} is missing")
        elif row.tgenabled not in ("O", "A"):
            problems.append(f"trigger {name} is disabled")
        elif row.tgtype != kind or row.proname != _PG_GUARD_FUNCTION:
            problems.append(f"trigger {name} was changed")
        elif "RAISE EXCEPTION" not in row.prosrc.upper():
            problems.append(f"function {_PG_GUARD_FUNCTION} no longer refuses")
    return problems
