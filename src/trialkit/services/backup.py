"""Backups, the check of a restored backup, and schema upgrades, as audited use cases.

A backup's own event is written after the file is whole (it names the file's SHA-256 and
the chain head inside it), so a backup never holds the record of itself: restored, its
chain ends one step before the event that says it was taken."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from trialkit.domain.clock import Clock
from trialkit.domain.errors import NextStep, Refused
from trialkit.domain.roles import Permission
from trialkit.services import audit
from trialkit.services.actor import Actor, require
from trialkit.services.auth import login
from trialkit.services.integrity import verify
from trialkit.services.list_integrity import verify_lists
from trialkit.services.refusals import audits_refusals
from trialkit.store import schema
from trialkit.store.backup import BackupFile, write_backup
from trialkit.store.db import make_engine, read_only


def _facts(b: BackupFile) -> dict[str, object]:
    return {"file": str(b.path), "kind": b.kind, "bytes": b.size, "sha256": b.sha256,
            "events": b.events, "head": b.head}


@audits_refusals("db.backup", entity="database")
def authorize_backup(session: Session, actor: Actor, *, clock: Clock) -> None:
    """Only an admin takes a backup (it holds the sealed lists and every participant)."""
    require(actor, Permission.MAINTAIN_DATABASE)


def record_backup(session: Session, actor: Actor, backup: BackupFile, *, clock: Clock) -> None:
    """Record a backup that was written (after it was: see the module's words)."""
    audit.record(session, actor, action="db.backup", entity="database",
                 entity_id=backup.path.name[:128], after=_facts(backup), clock=clock)


def take_backup(engine: Engine, session: Session, actor: Actor, out: Path, *,
                clock: Clock) -> BackupFile:
    """Check the actor may, write the backup, then record it in ``session``."""
    authorize_backup(session, actor, clock=clock)
    backup = write_backup(engine, out)
    record_backup(session, actor, backup, clock=clock)
    return backup


@dataclass(frozen=True)
class RestoreCheck:
    """What a restored (or backed-up SQLite) database holds, and that it verifies."""

    schema: str
    events: int
    head: str
    lists: int
    envelopes: int
    newest_event: str | None


def check_restored(db: str) -> RestoreCheck:
    """Open a database read-only and run the audit and list verification on it; refuse
    (exit 1, naming the problem) if either fails."""
    engine = make_engine(db, read_only=True)
    try:
        revision = schema.schema_revision(engine)
        schema.check_current(engine)
        with read_only(engine) as s:
            report = verify(s)
            if not report.ok:
                raise Refused(f"the backup's audit trail does not verify: {report.problem}")
            checks = verify_lists(s)
            bad = [x for x in checks if x.problem]
            if bad:
                raise Refused(f"the backup's list {bad[0].list_id} ({bad[0].stratum}) "
                              f"does not verify: {bad[0].problem}")
            newest = audit.last_event_at(s)
    finally:
        engine.dispose()
    assert revision is not None
    return RestoreCheck(revision, report.events, report.head, len(checks),
                        sum(x.envelopes for x in checks),
                        None if newest is None else newest.isoformat())


@dataclass(frozen=True)
class Upgrade:
    before: str
    after: str
    backup: BackupFile | None


def upgrade_with_backup(engine: Engine, name: str, password: str, backup_to: Path, *,
                        clock: Clock) -> Upgrade:
    """Back the database up, then in one transaction migrate it to this trialkit's schema,
    sign the admin in on the new schema and record the upgrade (old and new schema, the
    backup). A refused sign-in or permission rolls the whole upgrade back; the backup
    stays. An old schema cannot take the record of such a refusal, so none is written."""
    before = schema.schema_revision(engine)
    if before is None:
        raise Refused("this database holds no trial yet",
                      next_step=NextStep("create-trial", ""))
    schema.check_known(before)
    if before == schema.SCHEMA_HEAD:
        return Upgrade(before, before, None)
    backup = write_backup(engine, backup_to)
    with engine.begin() as conn:
        schema.upgrade_on(conn)
        session = Session(bind=conn)
        actor = login(session, name, password, clock=clock)
        require(actor, Permission.MAINTAIN_DATABASE)
        audit.record(session, actor, action="db.upgrade", entity="database",
                     entity_id=schema.SCHEMA_HEAD,
                     before={"schema": before},
                     after={"schema": schema.SCHEMA_HEAD, "backup": _facts(backup)},
                     clock=clock)
        session.flush()
        session.close()
    return Upgrade(before, schema.SCHEMA_HEAD, backup)
