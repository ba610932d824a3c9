"""The research pharmacy: the dispense queue, dispensing (opening a participant's sealed
envelope, recording the preparation), blinded labels and reading a recorded preparation.
Opening envelopes and the sealed details are in ``envelopes``, the checks before an action
in ``checks``, emergency unblinding in ``unblinding``.

Blinding rules these modules keep:

- the same code path and the same work for every arm: nothing here branches on the arm,
  and what differs by arm (the allocation and the product lots) is sealed under the list's
  data key, padded to a length fixed by the protocol, so the stored row is the same size
  whichever arm it hides;
- every opening of an envelope is audited (who, when, which envelope, why) and no audit
  event carries an arm;
- a refusal for want of permission is audited too (its error keeps the record);
- bad input is refused before any envelope is opened, and then nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from trialkit.domain.clock import Clock
from trialkit.domain.dosing import DosePlan, dose_plan, products_for
from trialkit.domain.errors import InvalidInput, NextStep, Refused
from trialkit.domain.infusion_time import has_expired
from trialkit.domain.participant_status import can_dispense, can_reprepare
from trialkit.domain.protocol import Protocol
from trialkit.domain.roles import Permission
from trialkit.render.labels import LabelSheet, label_sheet
from trialkit.services.actor import Actor, require
from trialkit.services.administration.trial import ensure_unlocked, get_trial, stored_protocol
from trialkit.services.enrolment.participants import get_participant, status_of
from trialkit.services.integrity import audit
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.services.pharmacy.checks import (
    check_lots,
    checking_pharmacist,
    dispensable,
    randomized_numbers,
    require_permission,
    sign_check,
    to_prepare_again,
)
from trialkit.services.pharmacy.envelopes import (
    OpenedEnvelope,
    envelope_broken,
    open_allocation,
    open_sealed_details,
    seal_details,
)
from trialkit.services.pharmacy.preparations import (
    audit_key,
    current_preparation,
    is_current,
    preparation_snapshot,
)
from trialkit.store.models import Participant, Preparation

# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueEntry:
    """A randomized participant awaiting preparation (blinded columns only): never prepared,
    or prepared but not infused before the preparation expired (``expired_at``), to be
    prepared again."""

    participant_id: str
    site: str
    randomization_number: str
    label_code: str
    randomized_at: datetime
    weight_kg: float
    infusion_date: str | None  # planned by the coordinator (trialkit schedule)
    unblinded_emergency: bool
    expired_at: datetime | None = None  # when the current preparation expired


@dataclass(frozen=True)
class PreparationRecord:
    """A recorded preparation. ``lots`` are unblinded: only for custodians."""

    prepared_at: datetime
    prepared_by: str
    checked_by: str
    checked_at: datetime | None  # when the checker signed; None: recorded before signatures
    expires_at: datetime
    lots: dict[str, str]
    label_prints: int
    number: int = 1  # 2, 3, ... when prepared again


@dataclass(frozen=True)
class Dispensing:
    """What the pharmacist who opened the envelope is shown. UNBLINDED: never to be shown
    to anyone else; ``labels`` alone is blinded."""

    participant_id: str
    site: str
    randomization_number: str
    label_code: str
    envelope: str
    arm_code: str
    arm_name: str
    plan: DosePlan
    products: dict[str, str]
    concomitant: tuple[str, ...]
    record: PreparationRecord | None
    labels: LabelSheet | None


def preparation_record(protocol: Protocol, p: Participant, prep: Preparation,
               lots: Mapping[str, str]) -> PreparationRecord:
    local = protocol.site_time(p.site_code)  # what the pharmacist reads: the site's clock
    return PreparationRecord(
        prepared_at=local.local(prep.prepared_at),
        prepared_by=prep.prepared_by,
        checked_by=prep.checked_by,
        checked_at=local.local(prep.checked_at) if prep.checked_at else None,
        expires_at=local.local(prep.expires_at),
        lots=dict(lots),
        label_prints=prep.label_prints,
        number=prep.number,
    )


def _sheet(session: Session, protocol: Protocol, p: Participant, prep: Preparation) -> LabelSheet:
    rand_no, code = randomized_numbers(p)
    local = protocol.site_time(p.site_code)  # the label shows the site's wall clock
    return label_sheet(
        protocol,
        dose_plan(protocol.dosing, p.weight_kg),
        participant_id=p.id,
        randomization_number=rand_no,
        label_code=code,
        prepared_at=local.local(prep.prepared_at),
        expires_at=local.local(prep.expires_at),
        prepared_by=prep.prepared_by,
        checked_by=prep.checked_by,
        print_number=prep.label_prints,
        preparation_number=prep.number,
        training=get_trial(session).training,
    )


# --- services --------------------------------------------------------------------------------


def _dispensing(
    protocol: Protocol,
    p: Participant,
    rand_no: str,
    code: str,
    opened: OpenedEnvelope,
    record: PreparationRecord | None,
    labels: LabelSheet | None,
) -> Dispensing:
    """What an opened envelope shows its custodian: arm, dose plan and products."""
    return Dispensing(
        participant_id=p.id,
        site=p.site_code,
        randomization_number=rand_no,
        label_code=code,
        envelope=f"{opened.envelope.stratum_code} #{opened.envelope.seq}",
        arm_code=opened.arm_code,
        arm_name=next(a.name for a in protocol.arms if a.code == opened.arm_code),
        plan=dose_plan(protocol.dosing, p.weight_kg),
        products=products_for(protocol.dosing, opened.arm_code),
        concomitant=protocol.dosing.concomitant,
        record=record,
        labels=labels,
    )


@audits_refusals("pharmacy.queue", entity="participant")
def dispense_queue(
    session: Session, actor: Actor, *, clock: Clock, site: str | None = None
) -> list[QueueEntry]:
    """Randomized participants awaiting preparation, per site, oldest randomization first:
    those never prepared, and those whose preparation expired before they were infused
    (to be prepared again)."""
    require(actor, Permission.DISPENSE)
    prepared = (
        select(Preparation.participant_id, Preparation.expires_at).where(is_current())
    ).subquery()
    stmt = (
        select(Participant, prepared.c.expires_at)
        .outerjoin(prepared, prepared.c.participant_id == Participant.id)
        .where(col(Participant.randomization_number).is_not(None))
        .where(col(Participant.withdrawn_at).is_(None))
        .where(col(Participant.infusion_date).is_(None))
        .order_by(col(Participant.site_code), col(Participant.randomized_at), col(Participant.id))
    )
    if actor.scope is not None:
        stmt = stmt.where(col(Participant.site_code).in_(sorted(actor.scope)))
    if site:
        stmt = stmt.where(Participant.site_code == site.strip().upper())
    now = clock.now()
    protocol = stored_protocol(session)
    entries = []
    for p, expires_at in session.exec(stmt):  # the query narrows; the status rule decides
        status = status_of(p, dispensed=expires_at is not None)
        if not (can_dispense(status) or (can_reprepare(status) and expires_at is not None
                                         and has_expired(expires_at, now))):
            continue  # prepared and still good, infused or withdrawn: nothing to do
        assert p.randomization_number and p.label_code and p.randomized_at
        entries.append(
            QueueEntry(
                participant_id=p.id,
                site=p.site_code,
                randomization_number=p.randomization_number,
                label_code=p.label_code,
                randomized_at=protocol.site_time(p.site_code).local(p.randomized_at),
                weight_kg=p.weight_kg,
                infusion_date=(p.planned_infusion_date.isoformat()
                               if p.planned_infusion_date else None),
                unblinded_emergency=p.unblinded_emergency,
                expired_at=protocol.site_time(p.site_code).local(expires_at)
                if expires_at is not None else None,
            )
        )
    return entries


def _record(
    session: Session,
    actor: Actor,
    protocol: Protocol,
    p: Participant,
    opened: OpenedEnvelope,
    *,
    checker: str,
    lots: Mapping[str, str],
    number: int,
    print_labels: bool,
    reason: str | None,
    clock: Clock,
) -> tuple[PreparationRecord, LabelSheet | None]:
    """Record a preparation (the checker has signed) and, with ``print_labels``, count the
    first print of its labels; audited."""
    now = clock.now()
    prep = Preparation(
        participant_id=p.id,
        number=number,
        prepared_at=now,
        prepared_by=actor.name,
        checked_by=checker,
        checked_at=now,
        expires_at=now + timedelta(hours=protocol.dosing.expiry_hours),
        sealed_details=seal_details(protocol, opened.data_key, p.id, opened.arm_code, lots),
        label_prints=1 if print_labels else 0,
    )
    session.add(prep)
    session.flush()
    audit.record(
        session,
        actor,
        action="preparation.record",
        entity="preparation",
        entity_id=audit_key(prep),
        after=preparation_snapshot(prep),
        reason=reason,
        clock=clock,
    )
    sheet = _sheet(session, protocol, p, prep) if print_labels else None
    return preparation_record(protocol, p, prep, lots), sheet


@audits_refusals("envelope.open", entity="participant", entity_id="pid")
def dispense(
    session: Session,
    actor: Actor,
    pid: str,
    *,
    password: str,
    clock: Clock,
    lots: Mapping[str, str] | None = None,
    checked_by: str | None = None,
    checker_password: str = "",
    checker_code: str | None = None,
    print_labels: bool = False,
) -> Dispensing:
    """Open a randomized participant's envelope and show the arm with the preparation
    instructions. With ``lots`` and ``checked_by`` the preparation is recorded in the same
    transaction (and ``print_labels`` counts the first print of its labels); the checker
    signs the check with ``checker_password`` (and their second-factor ``checker_code``),
    verified as a sign-in. Without them the
    opening is only looked at (and audited) and the participant stays in the queue."""
    require_permission(session, actor, Permission.DISPENSE, "dispense", pid, clock)
    ensure_unlocked(session)
    protocol = stored_protocol(session)
    recording = lots is not None or checked_by is not None
    if print_labels and not recording:
        raise InvalidInput("labels are printed with the preparation record",
                           needs=("lots", "checker"))
    checked_lots = _recording_input(protocol, lots, checked_by) if recording else {}
    p = get_participant(session, actor, pid, lock=True)
    rand_no, code = dispensable(session, p, clock)
    checker = checking_pharmacist(session, actor, checked_by or "", p) if recording else None
    if checker is not None:
        sign_check(session, checker, checker_password, code=checker_code, clock=clock)
    opened = open_allocation(
        session,
        actor,
        p,
        password=password,
        protocol=protocol,
        clock=clock,
        purpose="dispense" if recording else "look",
    )
    record: PreparationRecord | None = None
    sheet: LabelSheet | None = None
    if checker is not None:
        record, sheet = _record(
            session, actor, protocol, p, opened, checker=checker.name, lots=checked_lots,
            number=1, print_labels=print_labels, reason=None, clock=clock,
        )
    return _dispensing(protocol, p, rand_no, code, opened, record, sheet)


def _recording_input(
    protocol: Protocol, lots: Mapping[str, str] | None, checked_by: str | None
) -> dict[str, str]:
    checked = check_lots(protocol, lots or {})
    if not (checked_by or "").strip():
        raise InvalidInput("name the second pharmacist who checked the preparation",
                           needs=("checker",))
    return checked


def reprepare(
    session: Session,
    actor: Actor,
    pid: str,
    *,
    reason: str,
    password: str,
    clock: Clock,
    lots: Mapping[str, str],
    checked_by: str,
    checker_password: str,
    checker_code: str | None = None,
    print_labels: bool = False,
) -> Dispensing:
    """Prepare again for a participant whose preparation expired (or was spoilt) before the
    infusion: the same envelope is opened again, the current preparation and its labels are
    marked void (who, when, why) and a new preparation is recorded, numbered after it, with
    a signed check and new labels. Everything is audited with the reason."""
    require_permission(session, actor, Permission.DISPENSE, "reprepare", pid, clock)
    ensure_unlocked(session)
    protocol = stored_protocol(session)
    why = " ".join(reason.split())
    if not why:
        raise InvalidInput(
            "say why the preparation is made again (e.g. expired before the infusion)",
            needs=("reason",),
        )
    checked_lots = _recording_input(protocol, lots, checked_by)
    p = get_participant(session, actor, pid, lock=True)
    rand_no, code, old = to_prepare_again(session, p)
    checker = checking_pharmacist(session, actor, checked_by, p)
    sign_check(session, checker, checker_password, code=checker_code, clock=clock)
    opened = open_allocation(
        session, actor, p, password=password, protocol=protocol, clock=clock,
        purpose="prepare again",
    )
    before = preparation_snapshot(old)
    old.voided_at, old.voided_by, old.void_reason = clock.now(), actor.name, why
    session.add(old)
    session.flush()
    audit.record(
        session,
        actor,
        action="preparation.void",
        entity="preparation",
        entity_id=audit_key(old),
        before=before,
        after=preparation_snapshot(old),
        reason=why,
        clock=clock,
    )
    record, sheet = _record(
        session, actor, protocol, p, opened, checker=checker.name, lots=checked_lots,
        number=old.number + 1, print_labels=print_labels, reason=why, clock=clock,
    )
    return _dispensing(protocol, p, rand_no, code, opened, record, sheet)


@audits_refusals("label.print", entity="participant", entity_id="pid")
def print_labels(session: Session, actor: Actor, pid: str, *, clock: Clock) -> LabelSheet:
    """The blinded labels of a dispensed participant, counted and audited as a (re)print."""
    require_permission(session, actor, Permission.DISPENSE, "label", pid, clock)
    # After the lock nothing is dispensed or infused, so no label is needed; the print count
    # is part of the preparation record. Reading a preparation and emergency unblinding
    # stay possible: safety does not end with the database lock.
    ensure_unlocked(session)
    p = get_participant(session, actor, pid, lock=True)
    prep = current_preparation(session, p.id)
    if prep is None:
        raise Refused(
            f"{p.id} has not been dispensed yet: its labels are printed when the preparation "
            "is recorded", next_step=NextStep("dispense", p.id),
        )
    before = preparation_snapshot(prep)
    prep.label_prints += 1
    session.add(prep)
    session.flush()
    audit.record(
        session,
        actor,
        action="label.print" if prep.label_prints == 1 else "label.reprint",
        entity="preparation",
        entity_id=audit_key(prep),
        before=before,
        after=preparation_snapshot(prep),
        clock=clock,
    )
    return _sheet(session, stored_protocol(session), p, prep)


@audits_refusals("preparation.read", entity="participant", entity_id="pid")
def read_preparation(
    session: Session, actor: Actor, pid: str, *, password: str, clock: Clock
) -> Dispensing:
    """A recorded preparation with its sealed details (arm, lots), for the pharmacy: the
    reading is audited as an opening."""
    require_permission(session, actor, Permission.DISPENSE, "preparation", pid, clock)
    protocol = stored_protocol(session)
    p = get_participant(session, actor, pid, lock=True)
    rand_no, code = randomized_numbers(p)
    prep = current_preparation(session, p.id)
    if prep is None:
        raise Refused(f"{p.id} has not been dispensed yet: there is no preparation record")
    opened = open_allocation(
        session,
        actor,
        p,
        password=password,
        protocol=protocol,
        clock=clock,
        purpose="read preparation",
    )
    details = open_sealed_details(opened.data_key, prep.sealed_details, p.id)
    if details.get("arm") != opened.arm_code:
        raise envelope_broken(
            session,
            actor,
            opened.envelope,
            p,
            "the preparation record names another allocation",
            clock,
        )
    record = preparation_record(protocol, p, prep, details.get("lots") or {})
    return _dispensing(protocol, p, rand_no, code, opened, record, None)
