"""Emergency unblinding: one participant's arm for the requester only, the participant
flagged ``unblinded_emergency`` for everyone, the reason audited (never the arm). The
blinding rules are those of ``pharmacy``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from trialkit.domain.clock import Clock
from trialkit.domain.errors import InvalidInput
from trialkit.domain.roles import Permission
from trialkit.domain.text import REASON_MAX, plain_text
from trialkit.services import audit
from trialkit.services.actor import Actor
from trialkit.services.enrolment import get_participant, participant_snapshot
from trialkit.services.envelopes import open_allocation, open_sealed_details
from trialkit.services.pharmacy import PreparationRecord, preparation_record
from trialkit.services.pharmacy_checks import randomized_numbers, require_permission
from trialkit.services.preparations import current_preparation
from trialkit.services.refusals import audits_refusals
from trialkit.services.trial import stored_protocol


@dataclass(frozen=True)
class Unblinding:
    """An emergency unblinding, for the requester only. UNBLINDED."""

    participant_id: str
    randomization_number: str
    arm_code: str
    arm_name: str
    at: datetime  # in the site's zone
    reason: str
    record: PreparationRecord | None  # with the product lots, if the pharmacy has prepared


def _check_reason(reason: str) -> str:
    if not reason.strip():
        raise InvalidInput("an emergency unblinding needs a reason: --reason TEXT")
    return plain_text(reason, "the reason", max_len=REASON_MAX)


@audits_refusals("participant.unblind", entity="participant", entity_id="pid")
def unblind(
    session: Session, actor: Actor, pid: str, *, reason: str, password: str, clock: Clock
) -> Unblinding:
    """Emergency unblinding of one participant: the arm for the requester only, the
    participant flagged ``unblinded_emergency`` for everyone, the reason audited (no arm)."""
    require_permission(session, actor, Permission.UNBLIND, "unblind", pid, clock)
    why = _check_reason(reason)
    protocol = stored_protocol(session)
    p = get_participant(session, actor, pid, lock=True)
    rand_no, _code = randomized_numbers(p)
    opened = open_allocation(session, actor, p, password=password, protocol=protocol, clock=clock,
                   purpose="emergency unblinding")
    before = participant_snapshot(session, p)
    p.unblinded_emergency = True
    session.add(p)
    session.flush()
    audit.record(
        session,
        actor,
        action="participant.unblind",
        entity="participant",
        entity_id=p.id,
        before=before,
        after=participant_snapshot(session, p),
        reason=why,
        clock=clock,
    )
    prep = current_preparation(session, p.id)
    record = None
    if prep is not None:
        details = open_sealed_details(opened.data_key, prep.sealed_details, p.id)
        record = preparation_record(protocol, p, prep, details.get("lots") or {})
    return Unblinding(
        participant_id=p.id,
        randomization_number=rand_no,
        arm_code=opened.arm_code,
        arm_name=next(a.name for a in protocol.arms if a.code == opened.arm_code),
        at=protocol.site_time(p.site_code).local(clock.now()),
        reason=why,
        record=record,
    )
