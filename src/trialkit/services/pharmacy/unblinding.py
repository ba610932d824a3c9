"""Emergency unblinding: one participant's arm for the requester only, the participant
flagged ``unblinded_emergency`` for everyone, the reason audited (never the arm). The
blinding rules are those of ``dispensing``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from trialkit.domain.clock import Clock
from trialkit.domain.errors import InvalidInput
from trialkit.domain.roles import Permission
from trialkit.domain.text import REASON_MAX, plain_text
from trialkit.services.actor import Actor
from trialkit.services.administration.trial import stored_protocol
from trialkit.services.enrolment.participants import get_participant, participant_snapshot
from trialkit.services.integrity import audit
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.services.pharmacy.checks import randomized_numbers, require_permission
from trialkit.services.pharmacy.dispensing import PreparationRecord, preparation_record
from trialkit.services.pharmacy.envelopes import open_allocation, open_sealed_details
from trialkit.services.pharmacy.preparations import current_preparation


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


def check_reason(reason: str) -> str:
    """The reason for an emergency unblinding, refused when empty (faces check it before
    asking for confirmation)."""
    if not reason.strip():
        raise InvalidInput("an emergency unblinding needs a reason", needs=("reason",))
    return plain_text(reason, "the reason", max_len=REASON_MAX)


@audits_refusals("participant.unblind", entity="participant", entity_id="pid")
def unblind(
    session: Session, actor: Actor, pid: str, *, reason: str, password: str, clock: Clock
) -> Unblinding:
    """Emergency unblinding of one participant: the arm for the requester only, the
    participant flagged ``unblinded_emergency`` for everyone, the reason audited (no arm)."""
    require_permission(session, actor, Permission.UNBLIND, "unblind", pid, clock)
    why = check_reason(reason)
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


# --- the emergency-unblinding report (monitor, investigator, admin; never an arm) --------------


@dataclass(frozen=True)
class UnblindingEntry:
    """One emergency unblinding, or a refused attempt, as the audit trail holds it: who,
    when, why and which participant. It holds no arm: the report is for blinded readers."""

    seq: int
    participant_id: str
    site: str
    at: datetime  # UTC
    at_site: datetime  # the same moment in the site's zone
    user: str
    role: str
    reason: str
    refused: bool


UNBLIND_ACTION = "participant.unblind"
# Refusals: for lack of the permission (the pharmacy's check) and any other (a wrong password,
# a participant not randomized, the database locked).
REFUSED_ACTIONS = ("unblind.refused", f"{UNBLIND_ACTION}.refused")


@audits_refusals("report.unblinding", entity="trial")
def unblinding_report(session: Session, actor: Actor, *, clock: Clock) -> list[UnblindingEntry]:
    """Every emergency unblinding and refused attempt, oldest first (whoever may read the
    audit trail; blinded: the arm is never in the trail, and never here). ``clock`` times
    a refusal's audit event (a training trial's stated time)."""
    from sqlmodel import col, select

    from trialkit.services.actor import require
    from trialkit.store.models import AuditEvent, Participant

    require(actor, Permission.READ_AUDIT)
    protocol = stored_protocol(session)
    stmt = (select(AuditEvent)
            .where(col(AuditEvent.action).in_((UNBLIND_ACTION, *REFUSED_ACTIONS)))
            .order_by(col(AuditEvent.seq)))
    events = list(session.exec(stmt))
    ids = {e.entity_id for e in events}
    found = session.exec(select(Participant.id, Participant.site_code)
                         .where(col(Participant.id).in_(ids))) if ids else ()
    sites = {pid: site for pid, site in found}
    out = []
    for e in events:
        site = sites.get(e.entity_id, "")
        local = protocol.site_time(site).local(e.at) if site else e.at
        refused = e.action != UNBLIND_ACTION
        out.append(UnblindingEntry(e.seq, e.entity_id, site, e.at, local, e.user_name, e.role,
                                   e.reason or "", refused))
    return out


def unblinding_summary(entries: list[UnblindingEntry]) -> str:
    """The report in one line: unblindings, participants, refused attempts."""
    if not entries:
        return "No emergency unblinding has been done or attempted."
    done = sum(1 for e in entries if not e.refused)
    people = len({e.participant_id for e in entries if not e.refused})
    return (f"Emergency unblindings: {done} (participants: {people}); refused attempts: "
            f"{len(entries) - done}. The arm is never shown here.")
