"""Each participant's derived outcomes (blinded): counts, proration and change from
baseline in every window of the protocol, from the current version of every diary day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import Session

from trialkit.domain.clock import Clock
from trialkit.domain.diary import (
    Anchors,
    WindowOutcome,
    derive_outcomes,
    provisional_randomization,
)
from trialkit.domain.errors import Refused
from trialkit.domain.participant_status import Status
from trialkit.domain.roles import Permission
from trialkit.services.actor import Actor, require
from trialkit.services.administration.trial import site_time
from trialkit.services.diary.entries import (
    anchors_of,
    consented_on,
    current_days,
    diary_rules,
    withdrawn_on,
)
from trialkit.services.enrolment.participants import get_participant, is_dispensed, status_of
from trialkit.services.integrity.refusals import audits_refusals


@dataclass(frozen=True)
class ParticipantOutcomes:
    """A participant's outcomes per window (blinded). Before randomization the baseline
    window is a provisional one (``domain.diary.provisional_randomization``): the 28 days
    from consent, or those before today once they have passed."""

    participant_id: str
    site: str
    status: Status
    randomization_number: str | None
    consented_on: date | None  # the diary starts here
    randomized_on: date | None
    infused_on: date | None
    provisional: bool
    windows: list[WindowOutcome]


@audits_refusals("participant.outcomes", entity="participant", entity_id="pid")
def outcomes(session: Session, actor: Actor, pid: str, *, clock: Clock) -> ParticipantOutcomes:
    """Counts, proration and change from baseline in every window of the protocol."""
    require(actor, Permission.READ_STATUS)
    p = get_participant(session, actor, pid)
    if not p.eligible:
        raise Refused(f"{p.id} is a screen failure: no outcomes")
    local = site_time(session, p.site_code)
    today = local.today(clock.now())
    rules = diary_rules(session)
    anchors = anchors_of(p, local)
    consented = consented_on(p)
    provisional = anchors.randomized_on is None
    if provisional:
        anchors = Anchors(provisional_randomization(consented, today, rules), infused_on=None)
    windows = derive_outcomes(
        current_days(session, p.id),
        anchors,
        rules,
        today=today,
        first_day=consented or today,  # before consent nothing is due
        last_day=withdrawn_on(p, local),
    )
    return ParticipantOutcomes(
        participant_id=p.id,
        site=p.site_code,
        status=status_of(p, dispensed=is_dispensed(session, p.id)),
        randomization_number=p.randomization_number,
        consented_on=consented,
        randomized_on=None if provisional else anchors.randomized_on,
        infused_on=anchors.infused_on,
        provisional=provisional,
        windows=windows,
    )
