"""The headache diary and the infusion: recording a day (a correction adds a version and
keeps the old one), the history of a day, the current days, the baseline gate randomization
must pass, and the infusion (day 0). Blinded throughout: nothing here reads or returns an
arm. Importing a file is in ``file_import``, derived outcomes in ``outcomes``, and what
the audit trail records of the diary in ``audit_snapshots``.

Every write takes the audit-chain lock before any row lock, as ``randomize`` does, so two
services never wait on each other in opposite orders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from sqlmodel import Session, col, select

from trialkit.domain.clock import Clock
from trialkit.domain.diary import (
    Anchors,
    BaselineCheck,
    DiaryDay,
    check_baseline,
    check_day,
    date_problem,
    is_headache_day,
    not_consented,
    study_day,
    window_of,
)
from trialkit.domain.errors import InvalidInput, Refused
from trialkit.domain.infusion_time import check_preparation_good, infusion_time
from trialkit.domain.participant_status import Status, can_infuse, keeps_diary
from trialkit.domain.protocol import Diary
from trialkit.domain.roles import Permission
from trialkit.domain.site_time import SiteTime
from trialkit.domain.text import REASON_MAX, optional_text
from trialkit.services.actor import Actor, require
from trialkit.services.administration.trial import ensure_unlocked, site_time, stored_protocol
from trialkit.services.diary import window_summary
from trialkit.services.diary.audit_snapshots import BATCH_MARK, diary_snapshot
from trialkit.services.enrolment.participants import (
    current_status,
    facts_of,
    get_participant,
    participant_snapshot,
)
from trialkit.services.integrity import audit
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.services.pharmacy.preparations import current_preparation
from trialkit.store.models import DiaryEntry, Participant


def diary_rules(session: Session) -> Diary:
    return stored_protocol(session).diary


def anchors_of(p: Participant, local: SiteTime) -> Anchors:
    """Day 0 of the participant's windows: the dates, at their site, of randomization and
    infusion (the infusion date is entered as a local date)."""
    return Anchors(
        randomized_on=local.date_of(p.randomized_at) if p.randomized_at else None,
        infused_on=p.infusion_date,
    )


def withdrawn_on(p: Participant, local: SiteTime) -> date | None:
    """The date, at the participant's site, they withdrew on (None: still in the trial)."""
    return local.date_of(p.withdrawn_at) if p.withdrawn_at else None


def _day_of(e: DiaryEntry) -> DiaryDay:
    return DiaryDay(e.day, e.headache, e.severity, e.duration_hours, e.acute_medication)


# --- recording one day ------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedDay:
    """What was stored (blinded)."""

    participant_id: str
    date: date
    version: int
    corrected: bool
    headache_day: bool
    window: str | None
    study_day: int | None


def no_diary(p: Participant) -> str:
    """Why a participant who keeps no diary (``keeps_diary``) has none."""
    if not p.eligible:
        return f"{p.id} is not eligible: a screen failure keeps no diary"
    return not_consented(p.id)


def consented_on(p: Participant) -> date | None:
    """The date of consent, where the diary starts (None: not consented)."""
    return p.consent_date


def check_can_record(
    p: Participant, on: date, rules: Diary, local: SiteTime, today: date
) -> None:
    """``today`` and every date here are the participant's site's (``local``)."""
    consented = consented_on(p)
    if not keeps_diary(facts_of(p, dispensed=False)) or consented is None:
        raise Refused(no_diary(p))
    left = withdrawn_on(p, local)
    if left is not None and on > left:
        raise Refused(f"{p.id} withdrew on {left}: no diary after that")
    anchors = anchors_of(p, local)
    problem = date_problem(
        on,
        consented_on=consented,
        infused_on=anchors.infused_on,
        today=today,
        rules=rules,
    )
    if problem:
        raise InvalidInput(f"{p.id}: {problem}")


def _versions(session: Session, pid: str, day: date) -> list[DiaryEntry]:
    stmt = (
        select(DiaryEntry)
        .where(DiaryEntry.participant_id == pid, DiaryEntry.day == day)
        .order_by(col(DiaryEntry.version))
    )
    return list(session.exec(stmt))


@audits_refusals("diary.record", entity="participant", entity_id="pid")
def record_day(
    session: Session,
    actor: Actor,
    pid: str,
    day: DiaryDay,
    *,
    clock: Clock,
    reason: str | None = None,
) -> RecordedDay:
    """Record a diary day. If the date already has one, this is a correction: it needs a
    reason, adds a version and keeps the old one."""
    require(actor, Permission.RECORD_DIARY)
    why = optional_text(reason, "the reason", max_len=REASON_MAX)
    ensure_unlocked(session)
    rules = diary_rules(session)
    audit.lock_chain(session)
    p = get_participant(session, actor, pid, lock=True)
    local = site_time(session, p.site_code)
    check_can_record(p, day.day, rules, local, local.today(clock.now()))
    check_day(day, rules)
    if why and BATCH_MARK.search(why):
        raise InvalidInput("a reason may not end with '[batch …]': that marks imported days")
    key = day.day.isoformat()
    earlier = _versions(session, p.id, day.day)
    current = next((e for e in earlier if e.current), None)
    if current is not None:
        if _day_of(current) == day:
            raise Refused(f"{p.id} {key}: no change (version {current.version} says the same)")
        if why is None:
            raise InvalidInput(
                f"{p.id} already has a diary day for {key} (version {current.version}): "
                "a correction needs a reason", needs=("reason",)
            )
    before = diary_snapshot(current, [e for e in earlier if e is not current]) if current else None
    entry = DiaryEntry(
        participant_id=p.id,
        day=day.day,
        version=(earlier[-1].version + 1) if earlier else 1,
        headache=day.headache,
        severity=day.severity,
        duration_hours=float(day.duration_hours),
        acute_medication=day.acute_medication,
        recorded_by=actor.name,
        recorded_at=clock.now(),
        reason=why,
        current=True,
    )
    if current is not None:
        current.current = False
        session.add(current)
    session.add(entry)
    session.flush()
    window_summary.refresh(session, [p.id])  # what the status counts, in this transaction
    audit.record(
        session,
        actor,
        action="diary.correct" if current else "diary.record",
        entity="diary",
        entity_id=f"{p.id}/{key}",
        before=before,
        after=diary_snapshot(entry, earlier),
        reason=why,
        clock=clock,
    )
    anchors = anchors_of(p, local)
    w = window_of(day.day, anchors, rules)
    return RecordedDay(
        participant_id=p.id,
        date=day.day,
        version=entry.version,
        corrected=current is not None,
        headache_day=is_headache_day(day, rules),
        window=w.code if w else None,
        study_day=study_day(day.day, anchors.infused_on),
    )


# --- reading the diary ------------------------------------------------------------------------


@dataclass(frozen=True)
class DiaryVersion:
    """One version of one diary day, as the history shows it (blinded)."""

    participant_id: str
    date: date
    version: int
    current: bool
    headache: bool
    severity: str
    duration_hours: float
    acute_medication: bool
    headache_day: bool
    window: str | None
    study_day: int | None
    recorded_by: str
    recorded_at: datetime  # in the site's local time
    reason: str | None


@audits_refusals("diary.history", entity="participant", entity_id="pid")
def history(
    session: Session, actor: Actor, pid: str, *, on: date | None = None
) -> list[DiaryVersion]:
    """Every version of the participant's diary days (or of one date), oldest first."""
    require(actor, Permission.READ_STATUS)
    p = get_participant(session, actor, pid)
    rules = diary_rules(session)
    local = site_time(session, p.site_code)
    anchors = anchors_of(p, local)
    stmt = select(DiaryEntry).where(DiaryEntry.participant_id == p.id)
    if on is not None:
        stmt = stmt.where(DiaryEntry.day == on)
    stmt = stmt.order_by(col(DiaryEntry.day), col(DiaryEntry.version))
    out: list[DiaryVersion] = []
    for e in session.exec(stmt):
        d = _day_of(e)
        w = window_of(d.day, anchors, rules)
        out.append(
            DiaryVersion(
                participant_id=p.id,
                date=d.day,
                version=e.version,
                current=e.current,
                headache=e.headache,
                severity=e.severity,
                duration_hours=e.duration_hours,
                acute_medication=e.acute_medication,
                headache_day=is_headache_day(d, rules),
                window=w.code if w else None,
                study_day=study_day(d.day, anchors.infused_on),
                recorded_by=e.recorded_by,
                recorded_at=local.local(e.recorded_at),
                reason=e.reason,
            )
        )
    return out


def current_days(session: Session, pid: str) -> list[DiaryDay]:
    """The current version of every recorded day of a participant, by date."""
    stmt = (
        select(DiaryEntry)
        .where(DiaryEntry.participant_id == pid, col(DiaryEntry.current).is_(True))
        .order_by(col(DiaryEntry.day))
    )
    return [_day_of(e) for e in session.exec(stmt)]


# --- the baseline gate ------------------------------------------------------------------------


def baseline_check(session: Session, p: Participant, randomize_on: date) -> BaselineCheck:
    """The baseline window before ``randomize_on`` as the gate sees it."""
    return check_baseline(current_days(session, p.id), randomize_on, diary_rules(session),
                          consented_on=consented_on(p))


def require_baseline(session: Session, p: Participant, randomize_on: date) -> None:
    """Refuse randomization unless the baseline diary meets the protocol's minimums."""
    check = baseline_check(session, p, randomize_on)
    if not check.passed:
        raise Refused(
            f"{p.id} cannot be randomized yet: the baseline diary ({check.start} to "
            f"{check.end}) has {' and '.join(check.shortfalls)}"
        )


# --- the infusion -----------------------------------------------------------------------------


@audits_refusals("participant.infuse", entity="participant", entity_id="pid")
def infuse(
    session: Session,
    actor: Actor,
    pid: str,
    *,
    on: date,
    at: time | None = None,
    clock: Clock,
) -> date:
    """Record the infusion (day 0) of a randomized participant whose infusion the pharmacy
    has prepared, on ``on`` (at ``at``, the site's wall clock, when given): refused if the
    preparation had expired at that minute (``domain.infusion_time`` says what the infusion
    time is when only a date is given)."""
    require(actor, Permission.ENROL)
    ensure_unlocked(session)
    audit.lock_chain(session)
    p = get_participant(session, actor, pid, lock=True)
    local = site_time(session, p.site_code)
    status = current_status(session, p)
    if not can_infuse(status):
        if status is Status.INFUSED:
            raise Refused(f"{p.id} was already infused on {p.infusion_date}")
        if status is Status.RANDOMIZED:
            raise Refused(f"{p.id} has no dispensed infusion yet: the pharmacy records it first")
        if status is Status.WITHDRAWN:
            raise Refused(f"{p.id} has withdrawn")
        raise Refused(f"{p.id} has not been randomized yet")
    assert p.randomized_at is not None  # dispensed: randomized before
    when = infusion_time(on, at, now=clock.now(), site=local)
    randomized_on = local.date_of(p.randomized_at)
    if on < randomized_on:
        raise InvalidInput(f"infusion date {on} is before randomization ({randomized_on})")
    prep = current_preparation(session, p.id)
    if prep is None:
        raise Refused(f"{p.id} has no dispensed infusion yet: the pharmacy records it first")
    check_preparation_good(
        when, pid=p.id, prepared_at=prep.prepared_at, expires_at=prep.expires_at, site=local
    )
    before = participant_snapshot(session, p)
    p.infusion_date = on
    session.add(p)
    session.flush()
    window_summary.refresh(session, [p.id])  # the windows after the infusion have dates now
    audit.record(
        session,
        actor,
        action="participant.infuse",
        entity="participant",
        entity_id=p.id,
        before=before,
        after=participant_snapshot(session, p),
        reason=(
            f"infused at {local.show(when.at)}" if when.at is not None else f"infused on {on}"
        ) + f", within preparation {prep.number} (expires {local.show(prep.expires_at)})",
        clock=clock,
    )
    return on
