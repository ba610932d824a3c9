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

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlmodel import Session, col, select

from trialkit.domain.clock import Clock
from trialkit.domain.credentials import key_fingerprint
from trialkit.domain.errors import InvalidInput, PermissionDenied, Refused
from trialkit.domain.roles import Permission, Role
from trialkit.domain.sealing import (
    CustodianKeys,
    key_info,
    unwrap_data_key,
    unwrap_private_key,
    wrap_data_key,
)
from trialkit.services import audit
from trialkit.services.actor import Actor, require
from trialkit.services.refusals import audits_refusals
from trialkit.services.users import find_user, user_snapshot
from trialkit.store.models import AllocationList, ListKeyGrant, User


class CustodyRefused(PermissionDenied):
    keep_record = True


def custodian_private_key(session: Session, actor: Actor, password: str) -> X25519PrivateKey:
    """Unlock the actor's own custodian key with their password."""
    user = session.get(User, actor.user_id)
    if (
        user is None
        or not user.custodian
        or user.public_key is None
        or user.wrapped_private_key is None
        or user.key_kdf is None
    ):
        raise PermissionDenied(f"{actor.name} is not an unblinding custodian")
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
    custodian always; an investigator only while no custodian is approved yet (the first)."""
    me = session.get(User, actor.user_id)
    if me is not None and is_approved(me):
        return None
    if actor.role is Role.INVESTIGATOR and not approved_custodians(session):
        return None
    if actor.role is Role.INVESTIGATOR:
        return (
            f"{actor.name} is not an approved custodian: once one custodian is approved, "
            "only an approved custodian approves the next (they hold the list keys)"
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
    target.custodian_approved_at = clock.now()
    target.custodian_approved_by = actor.name
    session.add(target)
    session.flush()
    audit.record(
        session,
        actor,
        action="custodian.approve",
        entity="user",
        entity_id=name,
        before=before,
        after=user_snapshot(session, target),
        reason=f"custodian key {made} checked with them; {wrapped} list keys wrapped to it",
        clock=clock,
    )
    return Approval(name, actor.name, made, wrapped)


def _wrap_all_to(session: Session, actor: Actor, target: User, password: str | None) -> int:
    """Re-wrap every list key to ``target``; the approver must hold every one of them."""
    lists = session.exec(select(AllocationList.id)).all()
    if not lists:
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
            f"{grantee} is not approved yet: a second person approves them first "
            f"(trialkit custodian approve {grantee}), which gives them the list keys"
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
