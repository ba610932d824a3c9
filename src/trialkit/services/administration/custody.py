"""Custody of the list keys. A custodian (a pharmacist, or an investigator made one) makes
their own key pair at activation, but holds list keys only once a second person approved
them: an approved custodian, who re-wraps the list keys they hold to the newcomer, or for
the very first custodian an investigator. Nobody approves themselves, and the approver
checks the key fingerprint the newcomer reads out, so an account someone else activated
(an admin who kept the enrolment code) is not approved by mistake. Audited; no arm is ever
read here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlmodel import Session, col, select

from trialkit.domain import second_factor as totp
from trialkit.domain.clock import Clock
from trialkit.domain.credentials import key_fingerprint
from trialkit.domain.errors import (
    IntegrityFailure,
    InvalidInput,
    NextStep,
    PermissionDenied,
    Refused,
)
from trialkit.domain.key_wrap import WRAPPED_LEN, stored_key_problem
from trialkit.domain.recovery import recovery_private_key
from trialkit.domain.roles import Permission, Role
from trialkit.domain.sealing import (
    CustodianKeys,
    key_info,
    unwrap_data_key,
    unwrap_private_key,
    wrap_data_key,
)
from trialkit.services.actor import Actor, require
from trialkit.services.administration.trial import stored_protocol
from trialkit.services.administration.users import find_user, user_snapshot
from trialkit.services.integrity import audit
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.store.models import AllocationList, ListKeyGrant, Trial, User


class CustodyRefused(PermissionDenied):
    keep_record = True


@audits_refusals("custodian.key", entity="user")
def custodian_private_key(session: Session, actor: Actor, password: str) -> X25519PrivateKey:
    """Unlock the actor's own custodian key with their password. Where the protocol gives
    custodians a second factor, a custodian who has not enrolled one is refused: the
    password alone opens no envelope and no list (the use case calling this names the
    attempt in the refusal's record)."""
    user = session.get(User, actor.user_id)
    if (
        user is None
        or not user.custodian
        or user.public_key is None
        or user.wrapped_private_key is None
        or user.key_kdf is None
    ):
        raise PermissionDenied(f"{actor.name} is not an unblinding custodian")
    if user.totp_wrapped is None and stored_protocol(session).security.custodian_totp:
        raise Refused(
            f"{actor.name} has not enrolled the second factor this trial's protocol asks of "
            "custodians: enrol it first, then open envelopes or unblind",
            next_step=NextStep("enrol-second-factor", actor.name),
        )
    keys = CustodianKeys(user.public_key, user.wrapped_private_key, user.key_kdf)
    return unwrap_private_key(keys, password)


def is_approved(user: User) -> bool:
    """An active custodian a second person approved: the only kind list keys are wrapped to."""
    return (
        user.custodian
        and user.custodian_approved_at is not None
        and user.public_key is not None
        and not user.disabled
    )


def approved_custodians(session: Session) -> list[User]:
    """Every approved, active custodian, in name order: sealing and extending wrap to these."""
    users = session.exec(select(User).where(col(User.custodian)).order_by(col(User.name))).all()
    return [u for u in users if is_approved(u)]


def normal_fingerprint(text: str) -> str:
    """A fingerprint as read out or typed (any case, spaces or dashes) in its shown form."""
    digits = "".join(ch for ch in text.lower() if ch.isalnum())
    if len(digits) != 16 or any(ch not in "0123456789abcdef" for ch in digits):
        raise InvalidInput(
            f"fingerprint {text!r}: give the 16 hex digits the custodian read out "
            "(e.g. '3f2a 9c01 77be 0d45')"
        )
    return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


def approval_refusal(session: Session, actor: Actor) -> str | None:
    """Why the actor may not approve custodians now, or None if they may: an approved
    custodian always; an investigator only for the very first custodian, while nobody has
    ever been approved. Once custodians existed, a disabled team cannot be replaced by an
    investigator's word alone: the sponsor's recovery sheet approves then
    (:func:`recover_custody`), so an admin who disables every custodian and adds an
    investigator of their own gains nothing."""
    me = session.get(User, actor.user_id)
    if me is not None and is_approved(me):
        return None
    ever = session.exec(
        select(User.id).where(col(User.custodian_approved_at).is_not(None)).limit(1)
    ).first()
    if actor.role is Role.INVESTIGATOR and ever is None:
        return None
    if actor.role is Role.INVESTIGATOR:
        return (
            f"{actor.name} is not an approved custodian: an investigator approves only the "
            "first custodian; after that an approved custodian approves the next (they hold "
            "the list keys), or, if none is left, the recovery sheet (trialkit custodian "
            "recover)"
        )
    return (
        f"{actor.name} ({actor.role.value}) cannot approve custodians: an approved custodian "
        "does, or an investigator for the first one"
    )


@dataclass(frozen=True)
class Approval:
    name: str
    approved_by: str
    fingerprint: str
    lists_wrapped: int


@audits_refusals("custodian.approve", entity="user", entity_id="name")
def approve_custodian(
    session: Session,
    actor: Actor,
    *,
    name: str,
    fingerprint: str,
    password: str | None,
    clock: Clock,
) -> Approval:
    """A second person approves a custodian whose key fingerprint they checked with them.
    An approving custodian re-wraps every list key to the newcomer (their password unlocks
    their own key); until approved, sealing and extending wrap nothing to them."""
    read_out = normal_fingerprint(fingerprint)
    target = find_user(session, name)
    if target.id == actor.user_id:
        raise Refused("nobody approves themselves: another custodian, or an investigator, must")
    if not target.custodian:
        raise Refused(f"{name} is not an unblinding custodian")
    if target.disabled:
        raise Refused(f"{name} is disabled")
    if target.public_key is None or target.activated_at is None:
        raise Refused(f"{name} has not activated their account yet: they make their key then")
    if target.custodian_approved_at is not None:
        raise Refused(f"{name} is already approved (by {target.custodian_approved_by})")
    why = approval_refusal(session, actor)
    if why is not None:
        raise Refused(why)
    made = key_fingerprint(target.public_key)
    if read_out != made:
        raise Refused(
            f"the fingerprint you were given ({read_out}) is not that of the key {name}'s "
            "account holds: do not approve; ask who activated this account"
        )
    before = user_snapshot(session, target)
    wrapped = _wrap_all_to(session, actor, target, password)
    _mark_approved(session, actor, target, before, by=actor.name,
                   reason=f"custodian key {made} checked with them; {wrapped} list keys "
                   "wrapped to it", clock=clock)
    return Approval(name, actor.name, made, wrapped)


def _mark_approved(session: Session, actor: Actor, target: User, before: dict[str, Any], *,
                   by: str, reason: str, clock: Clock) -> None:
    """Record ``target`` as an approved custodian (approved by ``by``), audited."""
    target.custodian_approved_at = clock.now()
    target.custodian_approved_by = by[:64]
    session.add(target)
    session.flush()
    audit.record(session, actor, action="custodian.approve", entity="user",
                 entity_id=target.name, before=before, after=user_snapshot(session, target),
                 reason=reason, clock=clock)


def _wrap_all_to(session: Session, actor: Actor, target: User, password: str | None) -> int:
    """Re-wrap every list key to ``target``; an approving custodian must hold every one of
    them. An investigator approving the first custodian holds none: should lists exist
    already (every custodian gone), the keys come from the recovery sheet."""
    lists = session.exec(select(AllocationList.id)).all()
    me = session.get(User, actor.user_id)
    if not lists or me is None or not is_approved(me):
        return 0
    if not password:
        raise InvalidInput("approving a custodian needs your password (it unlocks the list keys)")
    mine = session.exec(select(ListKeyGrant).where(ListKeyGrant.user_id == actor.user_id)).all()
    if len(mine) < len(lists):
        raise Refused(
            f"{actor.name} holds {len(mine)} of the {len(lists)} list keys: an approving "
            "custodian must hold them all"
        )
    private = custodian_private_key(session, actor, password)
    assert target.id is not None and target.public_key is not None
    theirs = set(
        session.exec(select(ListKeyGrant.list_id).where(ListKeyGrant.user_id == target.id)).all()
    )
    for grant in sorted(mine, key=lambda g: g.list_id):
        info = key_info(grant.list_id)
        data_key = unwrap_data_key(grant.wrapped_key, private, info)
        wrapped = wrap_data_key(data_key, target.public_key, info)
        if grant.list_id in theirs:  # left from before a new key pair: replace it
            old = session.get(ListKeyGrant, (grant.list_id, target.id))
            assert old is not None
            old.wrapped_key = wrapped
            session.add(old)
        else:
            session.add(ListKeyGrant(list_id=grant.list_id, user_id=target.id,
                                     wrapped_key=wrapped))
    session.flush()
    return len(mine)


@dataclass(frozen=True)
class Recovery:
    custodian: str
    lists: int
    fingerprint: str


@audits_refusals("custody.recover", entity="custody", entity_id="name")
def recover_custody(
    session: Session, actor: Actor, *, name: str, fingerprint: str, words: str, clock: Clock
) -> Recovery:
    """Restore custody from the recovery sheet: every list key, unwrapped with the sheet's
    key, is wrapped to the custodian ``name``, whose key fingerprint they read out. A
    custodian nobody approved yet is approved by the sheet (when no approved custodian is
    left, the sponsor is the second person). Run by an investigator or an approved custodian
    with the sponsor who brings the sheet; audited (the words never are)."""
    read_out = normal_fingerprint(fingerprint)
    me = session.get(User, actor.user_id)
    if actor.role is not Role.INVESTIGATOR and (me is None or not is_approved(me)):
        raise Refused(
            f"{actor.name} ({actor.role.value}) cannot restore custody: an investigator or an "
            "approved custodian does, with the sponsor who brings the recovery sheet"
        )
    private = recovery_private_key(words)  # malformed words: invalid input, nothing recorded
    trial = session.get(Trial, 1)
    if trial is None or trial.recovery_public_key is None:
        raise Refused("this trial was created without a recovery key")
    sheet = fingerprint_of_trial(trial)
    if private.public_key().public_bytes_raw() != trial.recovery_public_key:
        raise Refused(f"this is not the recovery sheet of this trial (its key is {sheet})")
    target = find_user(session, name)
    if not target.custodian or target.disabled or target.public_key is None:
        raise Refused(f"{name} is not an active unblinding custodian with a key")
    if target.id == actor.user_id and not is_approved(target):
        raise Refused("nobody approves themselves: another person restores custody to you")
    if key_fingerprint(target.public_key) != read_out:
        raise Refused(
            f"the fingerprint you were given ({read_out}) is not that of the key {name}'s "
            "account holds: do not restore custody to it; ask who activated this account"
        )
    assert target.id is not None
    before = user_snapshot(session, target)
    if not is_approved(target):
        _mark_approved(session, actor, target, before, by=f"{actor.name} with the recovery sheet",
                       reason=f"custodian key {read_out} checked with them; approved with the "
                       f"recovery sheet {fingerprint_of_trial(trial)}", clock=clock)
    lists = session.exec(select(AllocationList).order_by(col(AllocationList.id))).all()
    for lst in lists:
        if lst.recovery_key is None:
            raise IntegrityFailure(
                f"list {lst.id} ({lst.stratum_code}) has no recovery wrapping",
                next_step=NextStep("verify-audit", "")
            )
        info = key_info(lst.id)
        wrapped = wrap_data_key(unwrap_data_key(lst.recovery_key, private, info),
                                target.public_key, info)
        grant = session.get(ListKeyGrant, (lst.id, target.id))
        if grant is None:
            grant = ListKeyGrant(list_id=lst.id, user_id=target.id, wrapped_key=wrapped)
        grant.wrapped_key = wrapped
        session.add(grant)
    session.flush()
    audit.record(
        session,
        actor,
        action="custody.recover",
        entity="custody",
        entity_id=name,
        after={"lists_wrapped": len(lists), "recovery_key": sheet},
        reason=f"recovery sheet {sheet}: {len(lists)} list keys wrapped to {name}",
        clock=clock,
    )
    return Recovery(name, len(lists), sheet)


def fingerprint_of_trial(trial: Trial) -> str:
    """The fingerprint of the trial's recovery key (printed on its sheet)."""
    assert trial.recovery_public_key is not None
    return key_fingerprint(trial.recovery_public_key)


@dataclass(frozen=True)
class CustodianView:
    """A custodian as anyone signed in may see them: no key, only its fingerprint."""

    name: str
    role: str
    activated: bool
    disabled: bool
    fingerprint: str | None
    approved_by: str | None
    approved_at: datetime | None
    lists_held: int

    @property
    def pending(self) -> bool:
        """Activated, active and waiting for a second person's approval."""
        return self.activated and not self.disabled and self.approved_by is None

    @property
    def state(self) -> str:
        if self.disabled:
            return "disabled"
        if not self.activated:
            return "awaiting activation"
        return f"approved by {self.approved_by}" if self.approved_by else "pending approval"


@audits_refusals("custodian.list", entity="user")
def list_custodians(session: Session, actor: Actor) -> list[CustodianView]:
    """Every custodian with whether they are approved, by whom, and how many list keys
    they hold."""
    require(actor, Permission.READ_STATUS)
    users = session.exec(select(User).where(col(User.custodian)).order_by(col(User.name))).all()
    rows = []
    for u in users:
        held = session.exec(select(ListKeyGrant.list_id).where(ListKeyGrant.user_id == u.id))
        rows.append(
            CustodianView(
                name=u.name,
                role=u.role,
                activated=u.activated_at is not None,
                disabled=u.disabled,
                fingerprint=key_fingerprint(u.public_key) if u.public_key else None,
                approved_by=u.custodian_approved_by if u.custodian_approved_at else None,
                approved_at=u.custodian_approved_at,
                lists_held=len(held.all()),
            )
        )
    return rows


@dataclass(frozen=True)
class GrantResult:
    grantee: str
    lists: int


@audits_refusals("custody.grant", entity="user", entity_id="grantee")
def grant_custodian(
    session: Session, actor: Actor, *, password: str, grantee: str, clock: Clock
) -> GrantResult:
    """Wrap every list key the actor holds that an approved custodian lacks (one who was
    disabled when a list was sealed, say). Unapproved custodians get nothing: approve them."""
    if not actor.custodian:
        audit.record(
            session,
            actor,
            action="custody.refused",
            entity="custody",
            entity_id=grantee,
            reason="not a custodian",
            clock=clock,
        )
        raise CustodyRefused(
            f"{actor.name} ({actor.role.value}) lacks the permission to grant "
            "list keys: only an unblinding custodian can"
        )
    private = custodian_private_key(session, actor, password)
    target = find_user(session, grantee)
    if not target.custodian or target.public_key is None or target.disabled:
        raise Refused(f"{grantee} is not an active unblinding custodian")
    if not is_approved(target):
        raise Refused(
            f"{grantee} is not approved yet: a second person approves them first, which "
            "gives them the list keys", next_step=NextStep("approve-custodian", grantee),
        )
    assert target.id is not None
    mine = session.exec(select(ListKeyGrant).where(ListKeyGrant.user_id == actor.user_id)).all()
    theirs = set(
        session.exec(select(ListKeyGrant.list_id).where(ListKeyGrant.user_id == target.id)).all()
    )
    added = 0
    for grant in sorted(mine, key=lambda g: g.list_id):
        if grant.list_id in theirs:
            continue
        data_key = unwrap_data_key(grant.wrapped_key, private, key_info(grant.list_id))
        session.add(
            ListKeyGrant(
                list_id=grant.list_id,
                user_id=target.id,
                wrapped_key=wrap_data_key(data_key, target.public_key, key_info(grant.list_id)),
            )
        )
        added += 1
    session.flush()
    audit.record(
        session,
        actor,
        action="custody.grant",
        entity="custody",
        entity_id=grantee,
        after={"lists_granted": added},
        clock=clock,
    )
    return GrantResult(grantee, added)


def lists_held(session: Session, user_name: str) -> int:
    user = find_user(session, user_name)
    return len(
        session.exec(select(col(ListKeyGrant.list_id)).where(ListKeyGrant.user_id == user.id)).all()
    )


WRAPPED_DATA_KEY_LEN = 32 + 32 + 16  # HPKE: X25519 encapsulated key, AES-256 key, GCM tag


def custody_problems(session: Session) -> list[str]:
    """What ``audit verify`` finds wrong with custody: a list without its recovery wrapping,
    an approved custodian without a list's key (a deleted grant), a list key wrapped to
    someone nobody approved, a stored private key whose KDF parameters are not trialkit's."""
    trial = session.get(Trial, 1)
    users = {u.id: u for u in session.exec(select(User).order_by(col(User.name)))}
    approved = [u for u in users.values() if is_approved(u)]
    held = set(session.exec(select(ListKeyGrant.list_id, ListKeyGrant.user_id)).all())
    problems: list[str] = []
    lists = session.exec(
        select(AllocationList).order_by(col(AllocationList.stratum_code),
                                        col(AllocationList.segment))
    ).all()
    for lst in lists:
        where = f"list {lst.id} ({lst.stratum_code})"
        if trial is not None and trial.recovery_public_key is not None and (
            lst.recovery_key is None or len(lst.recovery_key) != WRAPPED_DATA_KEY_LEN
        ):
            problems.append(f"{where}: its recovery wrapping is missing or damaged")
        if not any(lid == lst.id for lid, _uid in held):
            problems.append(f"{where}: no custodian holds its key")
        for u in approved:
            if (lst.id, u.id) not in held:
                problems.append(
                    f"{where}: the approved custodian {u.name} holds no key to it "
                    "(a key grant was deleted; or, approved when no custodian was left, "
                    "they await trialkit custodian recover)"
                )
    for list_id, user_id in sorted(held):
        owner = users.get(user_id)
        if owner is None or not owner.custodian or owner.custodian_approved_at is None:
            who = owner.name if owner is not None else f"user #{user_id}"
            problems.append(
                f"list {list_id}: its key is wrapped to {who}, whom nobody approved as a "
                "custodian"
            )
    for u in users.values():
        keys = [("signing key", u.signing_kdf, u.wrapped_signing_key, WRAPPED_LEN)]
        if u.custodian or u.public_key is not None:
            keys.append(("custodian key", u.key_kdf, u.wrapped_private_key, WRAPPED_LEN))
        keys.append(("second factor", u.totp_kdf, u.totp_wrapped, totp.WRAPPED_LEN))
        for label, kdf, wrapped, length in keys:
            if kdf is None and wrapped is None:
                continue  # not made yet (awaiting activation; no second factor enrolled)
            problem = stored_key_problem(kdf, wrapped, length=length)
            if problem is not None:
                problems.append(f"{u.name}'s {label}: {problem}")
    return problems
