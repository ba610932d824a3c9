"""Screening, consent, withdrawal and randomization. A coordinator acts only on their own
sites' participants and never learns an arm: randomizing binds a sealed envelope and
answers with a randomization number and a random label code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from sqlalchemy import func
from sqlmodel import Session, col, select

from trialkit.domain.clock import Clock
from trialkit.domain.codes import new_label_code, participant_id, randomization_number
from trialkit.domain.eligibility import Screening, evaluate, parse_answer
from trialkit.domain.errors import InvalidInput, NextStep, NotFound, Refused
from trialkit.domain.participant_status import (
    Facts,
    Status,
    can_consent,
    can_plan_infusion,
    can_randomize,
    can_withdraw,
)
from trialkit.domain.participant_status import status_of as participant_status
from trialkit.domain.roles import Permission
from trialkit.domain.strata import parse_factor_values, stratum_code
from trialkit.domain.text import REASON_MAX, plain_text
from trialkit.services.actor import Actor, require, require_site
from trialkit.services.administration.trial import ensure_unlocked, site_time, stored_protocol
from trialkit.services.diary import window_summary
from trialkit.services.enrolment.allocation import claim_next
from trialkit.services.integrity import audit
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.store.models import Envelope, Participant, Preparation, Site, Stratum


def facts_of(p: Participant, *, dispensed: bool) -> Facts:
    """What the participant's records say, as ``domain.participant_status`` reads them.
    ``dispensed``: the pharmacy has recorded the preparation (every arm is prepared alike);
    every caller must say, so no view forgets it."""
    return Facts(
        eligible=p.eligible, consented=p.consent_date is not None,
        randomized=p.randomization_number is not None, dispensed=dispensed,
        infused=p.infusion_date is not None, withdrawn=p.withdrawn_at is not None)


def status_of(p: Participant, *, dispensed: bool) -> Status:
    """Where a participant is (``domain.participant_status``, the one rule; blinded)."""
    return participant_status(facts_of(p, dispensed=dispensed))


def current_status(session: Session, p: Participant) -> Status:
    """The participant's status now, the pharmacy's records included."""
    return status_of(p, dispensed=is_dispensed(session, p.id))


def not_allowed(p: Participant, status: Status, step: str) -> Refused:
    """Why ``step`` cannot be taken for a participant of this ``status`` (one wording for
    every service that checks a ``can_...`` rule of ``domain.participant_status``)."""
    if status is Status.WITHDRAWN:
        return Refused(f"{p.id} has withdrawn")
    if status is Status.INELIGIBLE:
        return Refused(f"{p.id} is not eligible (failed {', '.join(p.failed_json)})")
    if status is Status.ELIGIBLE:
        return Refused(f"{p.id} has not consented yet")
    return Refused(f"{p.id} is {status.value}: cannot {step} now")


def is_dispensed(session: Session, pid: str) -> bool:
    """Whether the pharmacy has recorded a preparation of the participant's infusion (as
    ``list_participants`` and the export count it)."""
    stmt = select(Preparation.participant_id).where(Preparation.participant_id == pid)
    return session.exec(stmt.limit(1)).first() is not None


LOOKUP: Final = "lookup"


def participant_snapshot(
    session: Session, p: Participant, envelope: Envelope | None | Literal["lookup"] = LOOKUP
) -> dict[str, Any]:
    """The participant as the audit trail records it (blinded: envelope position, no arm).
    Pass the participant's envelope (or None) when the caller already knows it."""
    env = (
        session.exec(select(Envelope).where(Envelope.participant_id == p.id)).first()
        if envelope == LOOKUP
        else envelope
    )
    assert not isinstance(env, str)
    return participant_state(p, f"{env.stratum_code}#{env.seq}" if env else None)


def participant_state(p: Any, envelope: str | None) -> dict[str, Any]:
    """:func:`participant_snapshot` of a participant model or of a row of the participant
    table (anything with its column names as attributes), given its envelope's position."""
    return {
        "id": p.id,
        "site": p.site_code,
        "stratum": p.stratum_code,
        "age": p.age,
        "sex": p.sex,
        "weight_kg": p.weight_kg,
        "factors": p.factors_json,
        "answers": p.answers_json,
        "eligible": p.eligible,
        "failed": p.failed_json,
        "consent_date": _iso(p.consent_date),
        "consent_form_version": p.consent_form_version,
        "withdrawn": p.withdrawn_at is not None,
        "withdrawal_reason": p.withdrawal_reason,
        "randomization_number": p.randomization_number,
        "label_code": p.label_code,
        "envelope": envelope,
        "infusion_date": _iso(p.infusion_date),
        "unblinded_emergency": p.unblinded_emergency,
    } | ({"planned_infusion_date": _iso(p.planned_infusion_date)}
         if p.planned_infusion_date else {})


def _iso(day: date | None) -> str | None:
    """A date as the audit trail records it (ISO text, as it was stored before schema
    0013): what is hashed must not change with the column's type."""
    return None if day is None else day.isoformat()


@dataclass(frozen=True)
class ParticipantView:
    """What blinded roles see of a participant."""

    id: str
    site: str
    stratum: str
    status: Status
    age: int
    sex: str
    weight_kg: float
    eligible: bool
    failed: tuple[str, ...]
    consent_date: str | None
    randomization_number: str | None
    label_code: str | None
    unblinded_emergency: bool = False  # an emergency unblinding happened (never which arm)


def view(p: Participant, *, dispensed: bool) -> ParticipantView:
    return ParticipantView(
        id=p.id,
        site=p.site_code,
        stratum=p.stratum_code,
        status=status_of(p, dispensed=dispensed),
        age=p.age,
        sex=p.sex,
        weight_kg=p.weight_kg,
        eligible=p.eligible,
        failed=tuple(p.failed_json),
        consent_date=_iso(p.consent_date),
        randomization_number=p.randomization_number,
        label_code=p.label_code,
        unblinded_emergency=p.unblinded_emergency,
    )


def get_participant(session: Session, actor: Actor, pid: str, *, lock: bool = False) -> Participant:
    """A participant the actor may act on (coordinators: their own sites only)."""
    key = pid.strip().upper()
    stmt = select(Participant).where(Participant.id == key)
    p = session.exec(stmt.with_for_update() if lock else stmt).first()
    if p is None:
        raise NotFound(f"no participant {pid!r}")
    require_site(actor, p.site_code)
    return p


@audits_refusals("participant.screen", entity="site", entity_id="site")
def screen(
    session: Session,
    actor: Actor,
    *,
    site: str,
    age: int,
    sex: str,
    weight_kg: float,
    factors: Mapping[str, str],
    answers: Mapping[str, str],
    clock: Clock,
) -> ParticipantView:
    """Record a screening and evaluate eligibility; an ineligible person is a screen
    failure kept (with the failed criteria) for the CONSORT counts."""
    require(actor, Permission.ENROL)
    ensure_unlocked(session)
    protocol = stored_protocol(session)
    code = site.strip().upper()
    if protocol.site(code) is None:
        raise InvalidInput(
            f"unknown site {site!r}: this trial has {', '.join(protocol.site_codes)}"
        )
    require_site(actor, code)
    levels = parse_factor_values(factors, protocol)
    parsed = {k: parse_answer(k, v) for k, v in answers.items()}
    verdict = evaluate(Screening(age, sex.strip().upper(), weight_kg, parsed), protocol)
    # Lock the site row so two coordinators never take the same screening number.
    session.exec(select(Site).where(Site.code == code).with_for_update()).one()
    number = (
        session.exec(
            select(func.max(Participant.number)).where(Participant.site_code == code)
        ).one()
        or 0
    ) + 1
    p = Participant(
        id=participant_id(code, number),
        site_code=code,
        number=number,
        stratum_code=stratum_code(code, levels, protocol),
        factors_json=dict(levels),
        age=age,
        sex=sex.strip().upper(),
        weight_kg=weight_kg,
        answers_json=dict(parsed),
        eligible=verdict.eligible,
        failed_json=list(verdict.failed),
        screened_at=clock.now(),
        screened_by=actor.name,
    )
    session.add(p)
    session.flush()
    audit.record(
        session,
        actor,
        action="participant.screen",
        entity="participant",
        entity_id=p.id,
        after=participant_snapshot(session, p),
        clock=clock,
    )
    return view(p, dispensed=False)  # just screened


def _change(
    session: Session,
    actor: Actor,
    p: Participant,
    action: str,
    before: dict[str, Any],
    clock: Clock,
    reason: str | None = None,
    envelope: Envelope | None | Literal["lookup"] = LOOKUP,
) -> ParticipantView:
    session.add(p)
    session.flush()
    window_summary.refresh(session, [p.id])  # what the status counts, in this transaction
    audit.record(
        session,
        actor,
        action=action,
        entity="participant",
        entity_id=p.id,
        before=before,
        after=participant_snapshot(session, p, envelope),
        reason=reason,
        clock=clock,
    )
    return view(p, dispensed=is_dispensed(session, p.id))


@audits_refusals("participant.consent", entity="participant", entity_id="pid")
def consent(
    session: Session, actor: Actor, pid: str, *, on: date, form_version: str, clock: Clock
) -> ParticipantView:
    """Record informed consent (date not in the future nor before screening)."""
    require(actor, Permission.ENROL)
    ensure_unlocked(session)
    p = get_participant(session, actor, pid, lock=True)
    versions = stored_protocol(session).consent.form_versions
    form_version = plain_text(form_version, "consent form version", max_len=100)
    if form_version not in versions:
        raise InvalidInput(
            f"consent form version {form_version!r}: the protocol has {', '.join(versions)}"
        )
    local = site_time(session, p.site_code)
    today, screened_on = local.today(clock.now()), local.date_of(p.screened_at)
    if on > today:
        raise InvalidInput(f"consent date {on} is in the future (today is {today})")
    if on < screened_on:
        raise InvalidInput(f"consent date {on} is before screening ({screened_on})")
    status = current_status(session, p)
    if not can_consent(status):
        if p.consent_date is not None and status is not Status.WITHDRAWN:
            raise Refused(f"{p.id} already consented on {p.consent_date}")
        raise not_allowed(p, status, "record consent")
    before = participant_snapshot(session, p)
    p.consent_date, p.consent_form_version = on, form_version
    return _change(session, actor, p, "participant.consent", before, clock)


@audits_refusals("participant.withdraw", entity="participant", entity_id="pid")
def withdraw(
    session: Session, actor: Actor, pid: str, *, reason: str, clock: Clock
) -> ParticipantView:
    """Withdraw a participant; everything recorded so far is kept."""
    require(actor, Permission.ENROL)
    ensure_unlocked(session)
    if not reason.strip():
        raise InvalidInput("a reason is required to withdraw a participant")
    reason = plain_text(reason, "the reason", max_len=REASON_MAX)
    p = get_participant(session, actor, pid, lock=True)
    status = current_status(session, p)
    if status is Status.WITHDRAWN:
        raise Refused(f"{p.id} has already withdrawn")
    if not can_withdraw(status):
        raise Refused(f"{p.id} is a screen failure: there is no participation to withdraw")
    before = participant_snapshot(session, p)
    p.withdrawn_at, p.withdrawal_reason = clock.now(), reason
    return _change(session, actor, p, "participant.withdraw", before, clock, reason)


@dataclass(frozen=True)
class Randomization:
    participant_id: str
    randomization_number: str
    label_code: str
    already: bool  # True: it was randomized before; no envelope was used now


@audits_refusals("participant.randomize", entity="participant", entity_id="pid")
def randomize(session: Session, actor: Actor, pid: str, *, clock: Clock) -> Randomization:
    """Claim the lowest unused envelope of the participant's stratum in one transaction.
    Asking again answers with the existing randomization and uses no envelope."""
    require(actor, Permission.ENROL)
    ensure_unlocked(session)
    # Every write transaction holds the database's write lock (store.db), so one
    # randomization runs at a time: numbers and envelopes are taken in order.
    p = get_participant(session, actor, pid, lock=True)
    if p.randomization_number is not None and p.label_code is not None:
        return Randomization(p.id, p.randomization_number, p.label_code, already=True)
    status = current_status(session, p)
    if not can_randomize(status):
        raise not_allowed(p, status, "randomize")
    # Imported here: the diary service itself builds on this module.
    from trialkit.services.diary.entries import require_baseline

    require_baseline(session, p, site_time(session, p.site_code).today(clock.now()))
    envelope = claim_next(session, p.stratum_code)
    if envelope is None and session.get(Stratum, p.stratum_code) is None:
        raise Refused("the allocation lists are not sealed yet: ask the trial admin to seal them")
    if envelope is None:
        raise Refused(
            f"stratum {p.stratum_code} has no sealed envelope left: ask the trial "
            "admin to extend it", next_step=NextStep("extend-list", p.stratum_code),
        )
    before = participant_snapshot(session, p, None)  # not randomized: no envelope yet
    count = session.exec(
        select(func.count())
        .select_from(Participant)
        .where(col(Participant.randomization_number).is_not(None))
    ).one()
    now = audit.now(session, clock)  # the event's own time: verify compares the two
    envelope.participant_id, envelope.bound_at = p.id, now
    p.randomization_number = randomization_number(count + 1)
    p.label_code, p.randomized_at = new_label_code(), now
    session.add(envelope)
    _change(session, actor, p, "participant.randomize", before, clock, envelope=envelope)
    return Randomization(p.id, p.randomization_number, p.label_code, already=False)


@dataclass(frozen=True)
class ParticipantFilter:
    """Which participants a list shows: one site, one status, and part of an id. The one
    rule for both the database query and a list already in memory (the TUI filters the
    list it holds as the user types)."""

    site: str | None = None
    status: str | None = None
    search: str | None = None

    @classmethod
    def of(cls, *, site: str | None = None, status: str | None = None,
           search: str | None = None) -> ParticipantFilter:
        """The filter as typed: a site code in any case, search text checked (no control
        characters) and matched in upper case, as participant ids are written."""
        if search:
            search = plain_text(search, "search text", max_len=100).upper()
        return cls(site.strip().upper() if site else None, status or None, search or None)

    def matches(self, v: ParticipantView) -> bool:
        """Whether the participant passes every part of the filter."""
        return ((self.site is None or v.site == self.site)
                and (self.status is None or v.status == self.status)
                and (self.search is None or self.search in v.id))

    def narrow(self, stmt: Any) -> Any:
        """The query for participants, narrowed by what the database can check (every part
        but the status, which is decided from more than the participant's row)."""
        if self.site:
            stmt = stmt.where(Participant.site_code == self.site)
        if self.search:
            stmt = stmt.where(col(Participant.id).contains(self.search, autoescape=True))
        return stmt


@audits_refusals("participant.list", entity="participant")
def list_participants(
    session: Session,
    actor: Actor,
    *,
    site: str | None = None,
    status: str | None = None,
    search: str | None = None,
    limit: int | None = None,
) -> list[ParticipantView]:
    """Participants the actor may see (coordinators: own sites), filtered, in site and
    number order; ``limit``: only the first ones (a screen's first page)."""
    require(actor, Permission.READ_STATUS)
    wanted = ParticipantFilter.of(site=site, status=status, search=search)
    stmt = select(Participant).order_by(col(Participant.site_code), col(Participant.number))
    if actor.scope is not None:
        stmt = stmt.where(col(Participant.site_code).in_(sorted(actor.scope)))
    stmt = wanted.narrow(stmt)
    if limit is not None and wanted.status is None:
        stmt = stmt.limit(limit)
    people = session.exec(stmt).all()
    prepared = select(Preparation.participant_id)
    if limit is not None:
        prepared = prepared.where(col(Preparation.participant_id).in_([p.id for p in people]))
    dispensed = set(session.exec(prepared).all())
    views = [view(p, dispensed=p.id in dispensed) for p in people]
    return [v for v in views if wanted.matches(v)][:limit]


@audits_refusals("participant.plan_infusion", entity="participant", entity_id="pid")
def plan_infusion(
    session: Session, actor: Actor, pid: str, *, on: date, clock: Clock
) -> ParticipantView:
    """Set (or move) the planned infusion day of a randomized participant: the pharmacy
    queue shows it so preparations are made in time."""
    require(actor, Permission.ENROL)
    ensure_unlocked(session)
    p = get_participant(session, actor, pid, lock=True)
    today = site_time(session, p.site_code).today(clock.now())
    status = current_status(session, p)
    if not can_plan_infusion(status):
        if status is Status.WITHDRAWN:
            raise Refused(f"{p.id} has withdrawn")
        if p.infusion_date is not None:
            raise Refused(f"{p.id} was already infused on {p.infusion_date}")
        raise Refused(f"{p.id} has not been randomized yet")
    if on < today:
        raise InvalidInput(f"planned infusion date {on} is in the past (today is {today})")
    before = participant_snapshot(session, p)
    p.planned_infusion_date = on
    return _change(session, actor, p, "participant.plan_infusion", before, clock)
