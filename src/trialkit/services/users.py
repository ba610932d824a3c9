"""User management: add, list, disable, enable, change password. Every change is audited."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlmodel import Session, col, select

from trialkit.domain.clock import Clock
from trialkit.domain.errors import InvalidInput, NotFound, Refused
from trialkit.domain.passwords import check_new_password, hash_password
from trialkit.domain.roles import SITE_BOUND_ROLES, Permission, Role
from trialkit.domain.sealing import CustodianKeys, new_custodian_keys, rewrap_private_key
from trialkit.domain.text import REASON_MAX, optional_text
from trialkit.services import audit
from trialkit.services.actor import Actor, require
from trialkit.services.refusals import audits_refusals
from trialkit.store.models import Site, User, UserSite

NAME_PATTERN = re.compile(r"[a-z][a-z0-9._-]{1,31}")


@dataclass(frozen=True)
class UserView:
    """A user as listed to an admin: never a password hash or a key."""

    name: str
    role: str
    sites: tuple[str, ...]
    custodian: bool
    disabled: bool
    locked: bool


def _fingerprint(data: bytes | str | None) -> str | None:
    if data is None:
        return None
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:16]


def user_sites(session: Session, user: User) -> tuple[str, ...]:
    rows = session.exec(select(UserSite.site_code).where(UserSite.user_id == user.id)).all()
    return tuple(sorted(rows))


def user_snapshot(session: Session, user: User) -> dict[str, Any]:
    """The user's state as the audit trail records it (fingerprints, never secrets)."""
    return {
        "name": user.name,
        "role": user.role,
        "sites": list(user_sites(session, user)),
        "custodian": user.custodian,
        "disabled": user.disabled,
        "failed_logins": user.failed_logins,
        "locked_until": user.locked_until.astimezone(UTC).isoformat()
        if user.locked_until
        else None,
        "credential": _fingerprint(user.password_hash),
        "public_key": _fingerprint(user.public_key),
    }


def find_user(session: Session, name: str) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def validate_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"user name {name!r}: use 2-32 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter"
        )
    return name


def _check_sites(session: Session, role: Role, sites: list[str]) -> list[str]:
    codes = sorted({s.strip().upper() for s in sites})
    if role is Role.COORDINATOR and not codes:
        raise InvalidInput("a coordinator needs at least one --site")
    if codes and role not in SITE_BOUND_ROLES:
        article = "an" if role.value[0] in "aeiou" else "a"
        raise InvalidInput(f"{article} {role.value} is not bound to sites; leave out --site")
    known = set(session.exec(select(Site.code)).all())
    for code in codes:
        if code not in known:
            raise InvalidInput(f"unknown site {code!r}: this trial has {', '.join(sorted(known))}")
    return codes


@audits_refusals("user.add", entity="user", entity_id="name")
def create_user(
    session: Session,
    actor: Actor,
    *,
    name: str,
    role: Role,
    password: str,
    sites: list[str],
    custodian: bool,
    clock: Clock,
) -> User:
    """Add a user. Pharmacists are always custodians; investigators only on request."""
    require(actor, Permission.MANAGE_USERS)
    validate_name(name)
    check_new_password(password)
    if custodian and role not in (Role.INVESTIGATOR, Role.PHARMACIST):
        raise InvalidInput("only an investigator can be made a custodian (--custodian)")
    codes = _check_sites(session, role, sites)
    if session.exec(select(User.id).where(User.name == name)).first() is not None:
        raise Refused(f"a user named {name!r} already exists")
    now = clock.now()
    is_custodian = role is Role.PHARMACIST or custodian
    user = User(
        name=name,
        role=role.value,
        password_hash=hash_password(password),
        custodian=is_custodian,
        created_at=now,
        password_changed_at=now,
    )
    if is_custodian:
        keys = new_custodian_keys(password)
        user.public_key, user.wrapped_private_key, user.key_kdf = (
            keys.public_key,
            keys.wrapped_private_key,
            keys.kdf,
        )
    session.add(user)
    session.flush()
    assert user.id is not None
    for code in codes:
        session.add(UserSite(user_id=user.id, site_code=code))
    session.flush()
    audit.record(
        session,
        actor,
        action="user.add",
        entity="user",
        entity_id=name,
        after=user_snapshot(session, user),
        clock=clock,
    )
    return user


@audits_refusals("user.list", entity="user")
def list_users(session: Session, actor: Actor, *, clock: Clock) -> list[UserView]:
    """Every user with role, sites and whether they can sign in now."""
    require(actor, Permission.MANAGE_USERS)
    now = clock.now()
    users = session.exec(select(User).order_by(col(User.name))).all()
    return [
        UserView(
            name=u.name,
            role=u.role,
            sites=user_sites(session, u),
            custodian=u.custodian,
            disabled=u.disabled,
            locked=u.locked_until is not None and now < u.locked_until,
        )
        for u in users
    ]


def _audit_change(
    session: Session,
    actor: Actor,
    user: User,
    action: str,
    before: dict[str, Any],
    clock: Clock,
    reason: str | None = None,
) -> None:
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor,
        action=action,
        entity="user",
        entity_id=user.name,
        before=before,
        after=user_snapshot(session, user),
        reason=reason,
        clock=clock,
    )


@audits_refusals("user.disable", entity="user", entity_id="name")
def set_disabled(
    session: Session, actor: Actor, *, name: str, disabled: bool, reason: str | None, clock: Clock
) -> None:
    """Disable a user (they can no longer sign in) or enable them again (clears a lockout)."""
    require(actor, Permission.MANAGE_USERS)
    reason = optional_text(reason, "the reason", max_len=REASON_MAX)
    user = find_user(session, name)
    if disabled and user.id == actor.user_id:
        raise Refused("you cannot disable your own account")
    if disabled and user.disabled:
        raise Refused(f"{name} is already disabled")
    before = user_snapshot(session, user)
    user.disabled = disabled
    if not disabled:
        user.failed_logins, user.locked_until = 0, None
    _audit_change(
        session, actor, user, "user.disable" if disabled else "user.enable", before, clock, reason
    )


@audits_refusals("user.passwd", entity="user", entity_id="name")
def change_password(
    session: Session,
    actor: Actor,
    *,
    name: str,
    new_password: str,
    current_password: str | None,
    clock: Clock,
) -> None:
    """Change a password. Your own needs your current one (the caller has verified it at
    sign-in); an admin may reset someone else's, except a custodian's, whose key is wrapped
    under it."""
    check_new_password(new_password)
    user = find_user(session, name)
    own = user.id == actor.user_id
    if not own:
        require(actor, Permission.MANAGE_USERS)
        if user.custodian:
            raise Refused(
                f"{name} is an unblinding custodian: their key is sealed under their own "
                "password, so only they can change it"
            )
    before = user_snapshot(session, user)
    if user.custodian and user.public_key and user.wrapped_private_key and user.key_kdf:
        if current_password is None:
            raise InvalidInput("the current password is needed to re-seal your custodian key")
        keys = rewrap_private_key(
            CustodianKeys(user.public_key, user.wrapped_private_key, user.key_kdf),
            current_password,
            new_password,
        )
        user.wrapped_private_key, user.key_kdf = keys.wrapped_private_key, keys.kdf
    user.password_hash = hash_password(new_password)
    user.password_changed_at = clock.now()
    user.failed_logins, user.locked_until = 0, None
    _audit_change(
        session, actor, user, "user.passwd" if own else "user.reset_password", before, clock
    )
