"""Database lock: the moment the trial's clinical data is final. After it every clinical
write (screening, consent, withdrawal, randomization, dispensing, infusion, diary) is
refused (``trial.ensure_unlocked``) and the unblinded export becomes possible. A lock is
never undone; emergency unblinding still works after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from trialkit.domain.clock import Clock
from trialkit.domain.errors import Refused
from trialkit.domain.roles import Permission
from trialkit.services.actor import Actor, require
from trialkit.services.administration.trial import get_trial, trial_snapshot, trial_time
from trialkit.services.integrity import audit
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.store.models import DiaryEntry, Participant


@dataclass(frozen=True)
class LockResult:
    """What was locked, and what the lock covers (counts only: blinded)."""

    trial_code: str
    locked_at: datetime  # in the trial's local time (site_time)
    locked_by: str
    participants: int
    randomized: int
    diary_days: int
    training: bool


@audits_refusals("trial.lock", entity="trial")
def lock_database(session: Session, actor: Actor, *, clock: Clock) -> LockResult:
    """Lock the database (investigator). Audited; a second lock is refused."""
    require(actor, Permission.LOCK)
    # Write transactions run one at a time (store.db), so no second lock can slip in
    # between this check and the commit.
    audit.lock_chain(session)
    trial = get_trial(session)
    if trial.locked_at is not None:
        raise Refused(f"{trial.trial_code} is already locked: since "
                      f"{trial_time(session).show(trial.locked_at)}, by {trial.locked_by}")
    before = trial_snapshot(session, trial)
    now = clock.now().astimezone(UTC)
    trial.locked_at, trial.locked_by = now, actor.name
    session.add(trial)
    session.flush()
    counted = select(func.count()).select_from(Participant)
    participants = int(session.exec(counted).one())
    randomized = int(session.exec(
        counted.where(col(Participant.randomization_number).is_not(None))).one())
    days = int(session.exec(select(func.count()).select_from(DiaryEntry)
                            .where(col(DiaryEntry.current).is_(True))).one())
    audit.record(
        session,
        actor,
        action="trial.lock",
        entity="trial",
        entity_id=trial.trial_code,
        before=before,
        after=trial_snapshot(session, trial),
        reason=(f"database lock: {participants} participants screened, {randomized} "
                f"randomized, {days} diary days"),
        clock=clock,
    )
    return LockResult(trial.trial_code, trial_time(session).local(now), actor.name,
                      participants, randomized, days, trial.training)

