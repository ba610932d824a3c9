"""The database's own use cases: creating a trial, the schema upgrade, backups and the check
of a restored backup. Each opens (and closes) the engines it needs, so the CLI names a
database and a file and renders what comes back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trialkit.application.opening import public_url, sqlite_file
from trialkit.domain.errors import InvalidInput, TrialkitError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from trialkit.domain.clock import Clock
    from trialkit.domain.protocol import LoadedProtocol
    from trialkit.services.integrity.backup import BackupGap, RestoreCheck, Upgrade

__all__ = ["NewTrial", "RestoredBackup", "check_backup", "check_new_backup_file",
           "create_trial", "pending_upgrade", "upgrade_backup_path", "upgrade_schema"]


@dataclass(frozen=True)
class NewTrial:
    """A trial just created, and where its recovery sheet was written (once)."""

    fingerprint: str
    sheet: Path
    database: str


def create_trial(
    db: str, loaded: LoadedProtocol, *, admin: str, password: str, training: bool,
    clock: Clock, recovery_sheet: Path | None,
) -> NewTrial:
    """Create the database (a new SQLite file, or an empty PostgreSQL database), load the
    protocol, create the first admin and write the recovery sheet once (default
    ``TRIAL-recovery-sheet-FINGERPRINT.pdf`` here). Anything failing removes a SQLite file
    this call created."""
    from trialkit.render.recovery_sheet import RecoverySheet, write_sheet
    from trialkit.services.administration.setup import initialize
    from trialkit.store.db import check_reachable, make_engine

    path = sqlite_file(db)
    existed = path is None or path.exists()
    engine = make_engine(db, must_exist=False)
    try:
        check_reachable(engine)
        recovery = initialize(
            engine, loaded, admin=admin, admin_password=password, training=training, clock=clock
        )
        sheet = recovery_sheet or Path(
            f"{loaded.protocol.trial.id}-recovery-sheet-"
            f"{recovery.fingerprint.replace(' ', '')[:8]}.pdf"
        )
        write_sheet(
            RecoverySheet(loaded.protocol.trial.id, loaded.protocol.trial.title, training,
                          clock.now(), recovery.fingerprint, recovery.words),
            sheet,
        )
    except BaseException:
        engine.dispose()
        if not existed and path is not None:
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                p.unlink(missing_ok=True)
        raise
    return NewTrial(recovery.fingerprint, sheet, public_url(db))


def pending_upgrade(engine: Engine) -> tuple[str | None, str]:
    """The database's schema revision (None: no trial yet) and this trialkit's; a revision
    this trialkit does not know is refused."""
    from trialkit.store.schema import SCHEMA_HEAD, check_known, schema_revision

    revision = schema_revision(engine)
    if revision is not None and revision != SCHEMA_HEAD:
        check_known(revision)
    return revision, SCHEMA_HEAD


def upgrade_schema(engine: Engine, name: str, password: str, backup_to: Path, *,
                   clock: Clock) -> Upgrade:
    """Back up, then migrate, sign the admin in and record the upgrade in one transaction."""
    from trialkit.services.integrity.backup import upgrade_with_backup

    return upgrade_with_backup(engine, name, password, backup_to, clock=clock)


def upgrade_backup_path(db: str, revision: str) -> Path:
    """The default backup of an upgrade: beside a SQLite file, else in the current directory."""
    from sqlalchemy.engine import make_url

    from trialkit.store.db import normalize_url

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = sqlite_file(db)
    if path is not None:
        return path.with_name(f"{path.name}.schema-{revision}.{stamp}.backup")
    name = make_url(normalize_url(db)).database or "trialkit"
    return Path.cwd() / f"{name}.schema-{revision}.{stamp}.dump"


def check_new_backup_file(out: Path) -> None:
    """Refuse a backup file that exists or whose folder does not (before anyone signs in)."""
    from trialkit.store.backup import check_new_file

    check_new_file(out)


@dataclass(frozen=True)
class RestoredBackup:
    """A backup that verified, and what it lacks against the live database (or why it was
    not compared)."""

    check: RestoreCheck
    database: str
    live: BackupGap | str


def check_backup(file: Path, *, into: str | None, live: str) -> RestoredBackup:
    """Open a backup read-only (restoring it ``into`` a new database first, as a pg_dump
    file needs) and verify its audit trail and lists; then compare it with the ``live``
    database (read only)."""
    from trialkit.services.integrity.backup import check_restored
    from trialkit.store.backup import backup_kind, restore

    kind = backup_kind(file)
    if into is not None:
        restore(file, into)
        target = into
    elif kind == "sqlite":
        target = f"file:{file.resolve()}?mode=ro"
    else:
        raise InvalidInput("restore-check: a pg_dump file needs --into URL of an empty "
                           "PostgreSQL database to restore it into")
    done = check_restored(target)
    where = public_url(into) if into else str(file)
    return RestoredBackup(done, where, _gap_to_live(live, into, done))


def _gap_to_live(db: str, into: str | None, check: RestoreCheck) -> BackupGap | str:
    """What the backup lacks against the live database, or why it was not compared (none
    there, unreachable, the same database as the restore)."""
    from sqlalchemy.exc import SQLAlchemyError

    from trialkit.services.integrity.backup import compare_with_live
    from trialkit.store.db import make_engine

    if into is not None and db == into:
        return "--into is the live database"
    try:
        engine = make_engine(db, read_only=True)
    except TrialkitError as exc:
        return exc.message
    try:
        return compare_with_live(engine, check)
    except (TrialkitError, SQLAlchemyError) as exc:
        message = exc.message if isinstance(exc, TrialkitError) else type(exc).__name__
        return f"{public_url(db)}: {message}"
    finally:
        engine.dispose()
