"""Creating and checking a database's schema through the migrations shipped in the package."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

from trialkit.domain.errors import InvalidInput, Refused

# Every revision this trialkit knows, oldest first. A test keeps it equal to Alembic's view.
KNOWN_REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008")
SCHEMA_HEAD = KNOWN_REVISIONS[-1]
MIGRATIONS = Path(__file__).with_name("migrations")


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision a database is at, or None if it is no trialkit database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def table_names(engine: Engine) -> list[str]:
    """The tables (and nothing else) in the database's default schema."""
    with engine.connect() as conn:
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


def upgrade(engine: Engine) -> None:
    """Apply every migration up to the head, in one transaction."""
    with engine.begin() as conn:
        upgrade_on(conn)


def check_current(engine: Engine) -> None:
    """Refuse a database that is not trialkit's, newer than this code, or not yet upgraded."""
    revision = schema_revision(engine)
    if revision is None:
        raise InvalidInput("this database holds no trial yet (create one with `trialkit init`)")
    if revision not in KNOWN_REVISIONS:
        raise InvalidInput(
            f"database schema {revision} is newer than this trialkit ({SCHEMA_HEAD}); "
            "upgrade trialkit"
        )
    if revision != SCHEMA_HEAD:
        raise Refused(
            f"database schema {revision} is older than this trialkit ({SCHEMA_HEAD}); "
            "run `trialkit db upgrade` (admin) after a backup"
        )
