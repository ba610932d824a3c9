"""Backups, the check of a restored backup, and schema upgrades, as audited use cases.

A backup's own event is written after the file is whole (it names the file's SHA-256 and
the chain head inside it), so a backup never holds the record of itself: restored, its
chain ends one step before the event that says it was taken."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from trialkit.domain.clock import Clock
from trialkit.domain.errors import NextStep, Refused
from trialkit.domain.roles import Permission
from trialkit.services.actor import Actor, require
from trialkit.services.administration.sign_in import login
from trialkit.services.integrity import audit
from trialkit.services.integrity.list_verification import verify_lists
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.services.integrity.verification import verify
from trialkit.store import schema
from trialkit.store.backup import BackupFile, write_backup
from trialkit.store.db import make_engine, read_only
from trialkit.store.models import AuditEvent


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
class BackupGap:
    """What a backup lacks against the live database: the live schema and events, whether
    the live chain holds the backup's head where the backup ends, and the events after it
    (how many, from when, by action)."""

    schema: str | None
    events: int
    holds_head: bool
    lacking: int
    since: str | None
    actions: dict[str, int]

    def describe(self) -> str:
        """One sentence for the one who checks the backup."""
        if not self.holds_head:
            return ("its audit chain is not the live database's: the live chain does not "
                    "hold the backup's chain head where the backup ends (a backup of "
                    "another database, or the live trail was changed)")
        if not self.lacking:
            return "the backup holds every event of the live database"
        counted = ", ".join(f"{a} {n}" for a, n in sorted(self.actions.items()))
        return (f"the backup lacks the last {self.lacking} event(s), from {self.since} on "
                f"({counted}): enter them again from paper if you restore it")


def compare_with_live(live: Engine, check: RestoreCheck) -> BackupGap:
    """Compare a checked backup with the live database (read only): the events after the
    backup's last one are what a restore would lose."""
    revision = schema.schema_revision(live)
    with read_only(live) as s:
        total = s.exec(select(func.count()).select_from(AuditEvent)).one()
        last = s.exec(select(AuditEvent).where(col(AuditEvent.seq) == check.events)).first()
        holds = last is not None and last.hash == check.head
        action, at = col(AuditEvent.action), col(AuditEvent.at)
        rows = s.execute(select_columns(action, func.count(), func.min(at))
                         .where(col(AuditEvent.seq) > check.events)
                         .group_by(action)).all()
    actions = {str(a): int(n) for a, n, _ in rows}
    firsts = [at for _, _, at in rows if at is not None]
    since = min(firsts).isoformat() if firsts else None
    return BackupGap(revision, int(total), holds, sum(actions.values()), since, actions)


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
    with schema.migrating(engine) as conn:
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
