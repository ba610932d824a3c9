"""Custody of the list keys: a new custodian receives them from an existing one, who must
unlock their own key with their password to do it. Audited; no arm is ever read here."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlmodel import Session, col, select

from trialkit.domain.clock import Clock
from trialkit.domain.errors import PermissionDenied, Refused
from trialkit.domain.sealing import (
    CustodianKeys,
    key_info,
    unwrap_data_key,
    unwrap_private_key,
    wrap_data_key,
)
from trialkit.services import audit
from trialkit.services.actor import Actor
from trialkit.services.refusals import audits_refusals
from trialkit.services.users import find_user
from trialkit.store.models import ListKeyGrant, User


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


@dataclass(frozen=True)
class GrantResult:
    grantee: str
    lists: int


@audits_refusals("custody.grant", entity="user", entity_id="grantee")
def grant_custodian(
    session: Session, actor: Actor, *, password: str, grantee: str, clock: Clock
) -> GrantResult:
    """Wrap every list key the actor holds to the grantee's public key."""
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
