"""The research pharmacy: the dispense queue, opening a participant's sealed envelope,
recording the preparation, blinded labels, and emergency unblinding.

Blinding rules this module keeps:

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

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from trialkit.domain.audit_chain import canonical_json
from trialkit.domain.clock import Clock
from trialkit.domain.dosing import DosePlan, dose_plan, products_for
from trialkit.domain.errors import (
    IntegrityFailure,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Refused,
)
from trialkit.domain.protocol import Protocol
from trialkit.domain.roles import Permission, Role
from trialkit.domain.sealed_blob import open_blob, seal_blob
from trialkit.domain.sealing import (
    ARM_CODE_WIDTH,
    commitment,
    open_envelope,
    parse_envelope_plaintext,
    unwrap_data_key,
)
from trialkit.labels import LabelSheet, label_sheet
from trialkit.services import audit
from trialkit.services.actor import Actor, require
from trialkit.services.allocation import key_info
from trialkit.services.custody import custodian_private_key
from trialkit.services.enrolment import get_participant, participant_snapshot
from trialkit.services.list_integrity import check_list
from trialkit.services.trial import ensure_unlocked, get_trial, stored_protocol
from trialkit.services.users import find_user, user_sites
from trialkit.store.models import (
    AllocationList,
    Envelope,
    ListKeyGrant,
    Participant,
    Preparation,
    User,
)

# Lot numbers as printed on vials and bags: 3-20 capitals, digits or '-', starting and
# ending with a capital or digit (e.g. KT2403-17). Typed lower case, they are upper-cased.
LOT_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9-]{1,18}[A-Z0-9]")
LOT_RULE = "3-20 capital letters, digits or '-', starting and ending with a letter or digit"
LOT_MAX = 20
REASON_MAX = 1000
# Sealed preparation details are padded to a multiple of this, after the longest content
# any arm could give, so their length says nothing about the arm.
_PAD_BLOCK = 64
_LEN_BYTES = 2


class PharmacyRefused(PermissionDenied):
    """A role without the permission tried a pharmacy action; the refusal is audited."""

    keep_record = True


class EnvelopeBroken(IntegrityFailure):
    """An envelope failed its checks when opened; the failure is audited."""

    keep_record = True


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueEntry:
    """A randomized participant awaiting preparation (blinded columns only)."""

    participant_id: str
    site: str
    randomization_number: str
    label_code: str
    randomized_at: datetime
    weight_kg: float
    infusion_date: str | None  # planned by the coordinator (trialkit schedule)
    unblinded_emergency: bool


@dataclass(frozen=True)
class PreparationRecord:
    """A recorded preparation. ``lots`` are unblinded: only for custodians."""

    prepared_at: datetime
    prepared_by: str
    checked_by: str
    expires_at: datetime
    lots: dict[str, str]
    label_prints: int


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


@dataclass(frozen=True)
class Unblinding:
    """An emergency unblinding, for the requester only. UNBLINDED."""

    participant_id: str
    randomization_number: str
    arm_code: str
    arm_name: str
    at: datetime
    reason: str
    record: PreparationRecord | None  # with the product lots, if the pharmacy has prepared


@dataclass(frozen=True)
class _Opened:
    envelope: Envelope
    arm_code: str
    data_key: bytes


# --- snapshots (what the audit trail records) ------------------------------------------------


def preparation_snapshot(prep: Preparation) -> dict[str, Any]:
    """A preparation as the audit trail records it: blinded, the sealed details as a hash."""
    return {
        "participant": prep.participant_id,
        "prepared_at": prep.prepared_at.astimezone(UTC).isoformat(),
        "prepared_by": prep.prepared_by,
        "checked_by": prep.checked_by,
        "expires_at": prep.expires_at.astimezone(UTC).isoformat(),
        "sealed_details": hashlib.sha256(prep.sealed_details).hexdigest(),
        "label_prints": prep.label_prints,
    }


def dispensed_ids(session: Session) -> set[str]:
    """Participants whose preparation is recorded (blinded: every arm is prepared alike)."""
    return set(session.exec(select(Preparation.participant_id)).all())


# --- checks ----------------------------------------------------------------------------------


def _key(pid: str) -> str:
    return pid.strip().upper()[:128]


def _require(
    session: Session, actor: Actor, permission: Permission, action: str, pid: str, clock: Clock
) -> None:
    """Refuse and audit the refusal when the actor lacks ``permission``."""
    if actor.can(permission):
        return
    audit.record(
        session,
        actor,
        action=f"{action}.refused",
        entity="participant",
        entity_id=_key(pid),
        reason=f"lacks the permission to {permission.value}",
        clock=clock,
    )
    raise PharmacyRefused(
        f"{actor.name} ({actor.role.value}) lacks the permission to {permission.value}"
    )


def check_lots(protocol: Protocol, lots: Mapping[str, str]) -> dict[str, str]:
    """One lot number per preparation of the protocol, each of the documented shape."""
    wanted = [p.id for p in protocol.dosing.preparations]
    unknown = sorted(set(lots) - set(wanted))
    if unknown:
        raise InvalidInput(
            f"lot for {unknown[0]!r}: the preparations are {', '.join(wanted)}"
        )
    missing = [w for w in wanted if w not in lots]
    if missing:
        example = " ".join(f"--lot {w}=LOT" for w in wanted)
        raise InvalidInput(f"no lot number for {', '.join(missing)}: give {example}")
    checked: dict[str, str] = {}
    for prep in wanted:
        lot = lots[prep].strip().upper()
        if not LOT_PATTERN.fullmatch(lot):
            raise InvalidInput(f"lot number {lots[prep]!r} for {prep}: use {LOT_RULE}")
        checked[prep] = lot
    return checked


def _check_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not text:
        raise InvalidInput("an emergency unblinding needs a reason: --reason TEXT")
    if len(text) > REASON_MAX:
        raise InvalidInput(f"the reason is too long ({len(text)} characters, at most {REASON_MAX})")
    return text


def _randomized(p: Participant) -> tuple[str, str]:
    if p.randomization_number is None or p.label_code is None:
        raise Refused(f"{p.id} has not been randomized: there is no envelope to open")
    return p.randomization_number, p.label_code


def _dispensable(session: Session, p: Participant) -> tuple[str, str]:
    numbers = _randomized(p)
    if p.withdrawn_at is not None:
        raise Refused(f"{p.id} has withdrawn: nothing is prepared for them")
    prep = session.get(Preparation, p.id)
    if prep is not None:
        raise Refused(
            f"{p.id} was already dispensed on {prep.prepared_at:%Y-%m-%d %H:%M} UTC by "
            f"{prep.prepared_by}; to print its labels again: trialkit label {p.id} --out FILE.pdf"
        )
    return numbers


def _checker(session: Session, actor: Actor, name: str, p: Participant) -> User:
    """The second pharmacist who checks the preparation: another active pharmacist."""
    try:
        user = find_user(session, name.strip())
    except NotFound:
        raise NotFound(f"checked by {name!r}: no user of that name") from None
    if user.id == actor.user_id:
        raise Refused(
            f"{actor.name} prepared it, so cannot also check it: a second pharmacist must "
            "check the preparation (--checked-by NAME)"
        )
    if user.role != Role.PHARMACIST.value:
        raise Refused(f"{user.name} is a {user.role}, not a pharmacist: a second pharmacist "
                      "must check the preparation")
    if user.disabled:
        raise Refused(f"{user.name}'s account is disabled: another pharmacist must check it")
    sites = user_sites(session, user)
    if sites and p.site_code not in sites:
        raise Refused(f"{user.name} works at {', '.join(sites)}, not at {p.site_code}")
    return user


# --- opening an envelope ---------------------------------------------------------------------


def _envelope(session: Session, p: Participant) -> Envelope:
    env = session.exec(select(Envelope).where(Envelope.participant_id == p.id)).first()
    if env is None:
        raise IntegrityFailure(f"{p.id} is randomized but no envelope is bound to them")
    return env


def _data_key(session: Session, actor: Actor, env: Envelope, password: str) -> bytes:
    grant = session.get(ListKeyGrant, (env.list_id, actor.user_id))
    if grant is None:
        raise Refused(
            f"{actor.name} holds no key to the list of {env.stratum_code}: an existing "
            f"custodian must grant it (trialkit custodian grant {actor.name})"
        )
    private = custodian_private_key(session, actor, password)  # the password KDF: the cost
    return unwrap_data_key(grant.wrapped_key, private, key_info(env.list_id))


def _broken(
    session: Session, actor: Actor, env: Envelope, p: Participant, problem: str, clock: Clock
) -> EnvelopeBroken:
    audit.record(
        session,
        actor,
        action="envelope.broken",
        entity="envelope",
        entity_id=f"{env.stratum_code}#{env.seq}",
        after={"participant": p.id, "list": env.list_id},
        reason=problem,
        clock=clock,
    )
    return EnvelopeBroken(
        f"the envelope of {p.id} ({env.stratum_code} #{env.seq}) fails its checks: {problem}; "
        "it was not used. Tell the trial's data manager"
    )


def _open(
    session: Session,
    actor: Actor,
    p: Participant,
    *,
    password: str,
    purpose: str,
    protocol: Protocol,
    clock: Clock,
) -> _Opened:
    """Unwrap the list key with the actor's own key, check the list and decrypt only this
    participant's envelope, re-checking its commitment; audit the opening (no arm)."""
    env = _envelope(session, p)
    data_key = _data_key(session, actor, env, password)
    lst = session.get(AllocationList, env.list_id)
    problem = "its list is missing" if lst is None else check_list(session, lst)
    if problem is not None:
        raise _broken(session, actor, env, p, f"its list: {problem}", clock)
    try:
        plaintext = open_envelope(data_key, env.ciphertext, env.list_id, env.stratum_code, env.seq)
        content = parse_envelope_plaintext(plaintext)
    except IntegrityFailure as err:
        raise _broken(session, actor, env, p, err.message, clock) from None
    if commitment(plaintext) != env.commitment:
        raise _broken(session, actor, env, p, "its commitment does not match", clock)
    if (content.list_id, content.stratum, content.seq) != (env.list_id, env.stratum_code, env.seq):
        raise _broken(session, actor, env, p, "it names another slot", clock)
    if content.arm_code not in protocol.arm_codes:
        raise _broken(session, actor, env, p, "it names no arm of this protocol", clock)
    audit.record(
        session,
        actor,
        action="envelope.open",
        entity="envelope",
        entity_id=f"{env.stratum_code}#{env.seq}",
        after={"participant": p.id, "list": env.list_id, "purpose": purpose},
        clock=clock,
    )
    return _Opened(env, content.arm_code, data_key)


# --- sealed preparation details --------------------------------------------------------------


def _details_size(protocol: Protocol) -> int:
    """Padded size of the sealed details: what the longest arm code and lots would take,
    rounded up. Depends on the protocol only, never on the arm."""
    widest = {"v": 1, "arm": "X" * ARM_CODE_WIDTH,
              "lots": {p.id: "X" * LOT_MAX for p in protocol.dosing.preparations}}
    longest = _LEN_BYTES + len(canonical_json(widest).encode())
    return -(-longest // _PAD_BLOCK) * _PAD_BLOCK


def _seal_details(
    protocol: Protocol, data_key: bytes, pid: str, arm_code: str, lots: Mapping[str, str]
) -> bytes:
    body = canonical_json({"v": 1, "arm": arm_code, "lots": dict(lots)}).encode()
    size = _details_size(protocol)
    padded = len(body).to_bytes(_LEN_BYTES, "big") + body
    return seal_blob(data_key, padded.ljust(size, b"\x00"), pid.encode())


def _open_details(data_key: bytes, sealed: bytes, pid: str) -> dict[str, Any]:
    padded = open_blob(data_key, sealed, pid.encode())
    length = int.from_bytes(padded[:_LEN_BYTES], "big")
    try:
        details = json.loads(padded[_LEN_BYTES : _LEN_BYTES + length])
    except ValueError:
        raise IntegrityFailure(f"the sealed preparation details of {pid} are malformed") from None
    if not isinstance(details, dict):
        raise IntegrityFailure(f"the sealed preparation details of {pid} are malformed")
    return details


def _record_of(prep: Preparation, lots: Mapping[str, str]) -> PreparationRecord:
    return PreparationRecord(
        prepared_at=prep.prepared_at,
        prepared_by=prep.prepared_by,
        checked_by=prep.checked_by,
        expires_at=prep.expires_at,
        lots=dict(lots),
        label_prints=prep.label_prints,
    )


def _sheet(session: Session, protocol: Protocol, p: Participant, prep: Preparation) -> LabelSheet:
    rand_no, code = _randomized(p)
    return label_sheet(
        protocol,
        dose_plan(protocol.dosing, p.weight_kg),
        participant_id=p.id,
        randomization_number=rand_no,
        label_code=code,
        prepared_at=prep.prepared_at,
        expires_at=prep.expires_at,
        prepared_by=prep.prepared_by,
        checked_by=prep.checked_by,
        print_number=prep.label_prints,
        training=get_trial(session).training,
    )


# --- services --------------------------------------------------------------------------------


def dispense_queue(session: Session, actor: Actor, *, site: str | None = None) -> list[QueueEntry]:
    """Randomized participants awaiting preparation, per site, oldest randomization first."""
    require(actor, Permission.DISPENSE)
    stmt = (
        select(Participant)
        .where(col(Participant.randomization_number).is_not(None))
        .where(col(Participant.withdrawn_at).is_(None))
        .where(col(Participant.id).not_in(select(Preparation.participant_id)))
        .order_by(col(Participant.site_code), col(Participant.randomized_at), col(Participant.id))
    )
    if actor.sites:
        stmt = stmt.where(col(Participant.site_code).in_(sorted(actor.sites)))
    if site:
        stmt = stmt.where(Participant.site_code == site.strip().upper())
    entries = []
    for p in session.exec(stmt):
        assert p.randomization_number and p.label_code and p.randomized_at
        entries.append(
            QueueEntry(
                participant_id=p.id,
                site=p.site_code,
                randomization_number=p.randomization_number,
                label_code=p.label_code,
                randomized_at=p.randomized_at,
                weight_kg=p.weight_kg,
                infusion_date=p.planned_infusion_date,
                unblinded_emergency=p.unblinded_emergency,
            )
        )
    return entries


def dispense(
    session: Session,
    actor: Actor,
    pid: str,
    *,
    password: str,
    clock: Clock,
    lots: Mapping[str, str] | None = None,
    checked_by: str | None = None,
    print_labels: bool = False,
) -> Dispensing:
    """Open a randomized participant's envelope and show the arm with the preparation
    instructions. With ``lots`` and ``checked_by`` the preparation is recorded in the same
    transaction (and ``print_labels`` counts the first print of its labels); without them
    the opening is only looked at (and audited) and the participant stays in the queue."""
    _require(session, actor, Permission.DISPENSE, "dispense", pid, clock)
    ensure_unlocked(session)
    protocol = stored_protocol(session)
    recording = lots is not None or checked_by is not None
    if print_labels and not recording:
        raise InvalidInput(
            "labels are printed with the preparation record: give a --lot for each "
            "preparation and --checked-by NAME"
        )
    checked_lots = check_lots(protocol, lots or {}) if recording else {}
    if recording and not (checked_by or "").strip():
        raise InvalidInput(
            "name the second pharmacist who checked the preparation: --checked-by NAME"
        )
    p = get_participant(session, actor, pid, lock=True)
    rand_no, code = _dispensable(session, p)
    checker = _checker(session, actor, checked_by or "", p) if recording else None
    opened = _open(session, actor, p, password=password, protocol=protocol, clock=clock,
                   purpose="dispense" if recording else "look")
    record: PreparationRecord | None = None
    sheet: LabelSheet | None = None
    if checker is not None:
        now = clock.now()
        prep = Preparation(
            participant_id=p.id,
            prepared_at=now,
            prepared_by=actor.name,
            checked_by=checker.name,
            expires_at=now + timedelta(hours=protocol.dosing.expiry_hours),
            sealed_details=_seal_details(protocol, opened.data_key, p.id, opened.arm_code,
                                         checked_lots),
            label_prints=1 if print_labels else 0,
        )
        session.add(prep)
        session.flush()
        audit.record(
            session,
            actor,
            action="preparation.record",
            entity="preparation",
            entity_id=p.id,
            after=preparation_snapshot(prep),
            clock=clock,
        )
        record = _record_of(prep, checked_lots)
        sheet = _sheet(session, protocol, p, prep) if print_labels else None
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
        labels=sheet,
    )


def print_labels(session: Session, actor: Actor, pid: str, *, clock: Clock) -> LabelSheet:
    """The blinded labels of a dispensed participant, counted and audited as a (re)print."""
    _require(session, actor, Permission.DISPENSE, "label", pid, clock)
    # After the lock nothing is dispensed or infused, so no label is needed; the print count
    # is part of the preparation record. Reading a preparation and emergency unblinding
    # stay possible: safety does not end with the database lock.
    ensure_unlocked(session)
    p = get_participant(session, actor, pid, lock=True)
    prep = session.get(Preparation, p.id)
    if prep is None:
        raise Refused(
            f"{p.id} has not been dispensed yet: its labels are printed when the preparation "
            f"is recorded (trialkit dispense {p.id} --lot ... --checked-by NAME --label-out FILE)"
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
        entity_id=p.id,
        before=before,
        after=preparation_snapshot(prep),
        clock=clock,
    )
    return _sheet(session, stored_protocol(session), p, prep)


def read_preparation(
    session: Session, actor: Actor, pid: str, *, password: str, clock: Clock
) -> Dispensing:
    """A recorded preparation with its sealed details (arm, lots), for the pharmacy: the
    reading is audited as an opening."""
    _require(session, actor, Permission.DISPENSE, "preparation", pid, clock)
    protocol = stored_protocol(session)
    p = get_participant(session, actor, pid, lock=True)
    rand_no, code = _randomized(p)
    prep = session.get(Preparation, p.id)
    if prep is None:
        raise Refused(f"{p.id} has not been dispensed yet: there is no preparation record")
    opened = _open(session, actor, p, password=password, protocol=protocol, clock=clock,
                   purpose="read preparation")
    details = _open_details(opened.data_key, prep.sealed_details, p.id)
    if details.get("arm") != opened.arm_code:
        raise _broken(session, actor, opened.envelope, p,
                      "the preparation record names another allocation", clock)
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
        record=_record_of(prep, details.get("lots") or {}),
        labels=None,
    )


def unblind(
    session: Session, actor: Actor, pid: str, *, reason: str, password: str, clock: Clock
) -> Unblinding:
    """Emergency unblinding of one participant: the arm for the requester only, the
    participant flagged ``unblinded_emergency`` for everyone, the reason audited (no arm)."""
    _require(session, actor, Permission.UNBLIND, "unblind", pid, clock)
    why = _check_reason(reason)
    protocol = stored_protocol(session)
    p = get_participant(session, actor, pid, lock=True)
    rand_no, _code = _randomized(p)
    opened = _open(session, actor, p, password=password, protocol=protocol, clock=clock,
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
    prep = session.get(Preparation, p.id)
    record = None
    if prep is not None:
        details = _open_details(opened.data_key, prep.sealed_details, p.id)
        record = _record_of(prep, details.get("lots") or {})
    return Unblinding(
        participant_id=p.id,
        randomization_number=rand_no,
        arm_code=opened.arm_code,
        arm_name=next(a.name for a in protocol.arms if a.code == opened.arm_code),
        at=clock.now(),
        reason=why,
        record=record,
    )
