"""User management: add (with a one-time enrolment code), activate, list, disable, enable,
change password, re-issue a code. Every change is audited; nobody ever learns another
person's password or private key."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session, col, select

from trialkit.domain import second_factor as totp
from trialkit.domain.clock import Clock
from trialkit.domain.credentials import (
    ENROLMENT_VALID,
    enrolment_code_hash,
    enrolment_code_matches,
    key_fingerprint,
    new_enrolment_code,
    new_signing_keys,
)
from trialkit.domain.errors import AuthenticationFailed, InvalidInput, NextStep, NotFound, Refused
from trialkit.domain.passwords import UNUSABLE, check_new_password, hash_password, verify_password
from trialkit.domain.roles import SITE_BOUND_ROLES, Permission, Role
from trialkit.domain.sealing import (
    CustodianKeys,
    key_info,
    new_custodian_keys,
    unwrap_data_key,
    unwrap_private_key,
    wrap_data_key,
)
from trialkit.domain.text import REASON_MAX, optional_text
from trialkit.services.actor import Actor, require
from trialkit.services.integrity import audit
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.store.models import ListKeyGrant, Site, Trial, User, UserSite

NAME_PATTERN = re.compile(r"[a-z][a-z0-9._-]{1,31}")


@dataclass(frozen=True)
class UserView:
    """A user as listed to an admin: never a password hash or a key."""

    name: str
    role: str
    sites: tuple[str, ...]
    custodian: bool
    disabled: bool
    locked: bool  # waiting after wrong passwords (throttled, never locked out)
    activated: bool
    custodian_approved: bool

    @property
    def state(self) -> str:
        """How the user list describes the account."""
        state = "active" if self.activated else "awaiting activation"
        if self.custodian:
            state += ", custodian" if self.custodian_approved else ", custodian (not approved)"
        return state


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
        # Public keys in full: the trail is where a signature's key is looked up.
        "public_key": user.public_key.hex() if user.public_key else None,
        "signing_key": user.signing_public_key.hex() if user.signing_public_key else None,
        "activated": user.activated_at.astimezone(UTC).isoformat() if user.activated_at else None,
        "enrolment_code": _fingerprint(user.enrolment_code_hash),
        "custodian_approved_by": user.custodian_approved_by,
        # Only once enrolled (older trails recorded no such key): a fingerprint of the wrapped
        # secret, so a factor removed or swapped in the database no longer matches the trail.
        **({"second_factor": _fingerprint(user.totp_wrapped)} if user.totp_wrapped else {}),
        # With it, the time step its last accepted code belonged to (a number, never the code
        # or the secret): each sign-in's signed event records a later one, so a step set back
        # in the database to let a spent code in again shows in ``audit verify``.
        **({"totp_step": user.totp_last_step} if user.totp_wrapped else {}),
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
        raise InvalidInput("a coordinator needs at least one site", needs=("sites",))
    if codes and role not in SITE_BOUND_ROLES:
        article = "an" if role.value[0] in "aeiou" else "a"
        raise InvalidInput(f"{article} {role.value} is not bound to sites: give no site")
    known = set(session.exec(select(Site.code)).all())
    for code in codes:
        if code not in known:
            raise InvalidInput(f"unknown site {code!r}: this trial has {', '.join(sorted(known))}")
    return codes


@dataclass(frozen=True)
class NewAccount:
    """An account just added: its one-time enrolment code is shown once, here, and never
    again (only its hash is stored)."""

    name: str
    role: str
    sites: tuple[str, ...]
    custodian: bool
    enrolment_code: str
    expires_at: datetime


def _issue_code(user: User, now: datetime) -> str:
    code = new_enrolment_code()
    user.enrolment_code_hash = enrolment_code_hash(code)
    user.enrolment_expires_at = now + ENROLMENT_VALID
    return code


@audits_refusals("user.add", entity="user", entity_id="name")
def create_user(
    session: Session,
    actor: Actor,
    *,
    name: str,
    role: Role,
    sites: list[str],
    custodian: bool,
    clock: Clock,
) -> NewAccount:
    """Add a user, who is given a one-time enrolment code to set their own password with
    (:func:`activate_user`); nobody else ever knows it. Pharmacists are always custodians,
    investigators only on request."""
    require(actor, Permission.MANAGE_USERS)
    validate_name(name)
    if custodian and role not in (Role.INVESTIGATOR, Role.PHARMACIST):
        raise InvalidInput("only an investigator can be made a custodian")
    codes = _check_sites(session, role, sites)
    if session.exec(select(User.id).where(User.name == name)).first() is not None:
        raise Refused(f"a user named {name!r} already exists")
    now = clock.now()
    is_custodian = role is Role.PHARMACIST or custodian
    user = User(
        name=name,
        role=role.value,
        password_hash=UNUSABLE,
        custodian=is_custodian,
        created_at=now,
        password_changed_at=now,
    )
    code = _issue_code(user, now)
    session.add(user)
    session.flush()
    assert user.id is not None
    for site in codes:
        session.add(UserSite(user_id=user.id, site_code=site))
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
    assert user.enrolment_expires_at is not None
    return NewAccount(
        name, role.value, tuple(codes), is_custodian, code, user.enrolment_expires_at
    )


def create_first_admin(session: Session, *, name: str, password: str, clock: Clock) -> Actor:
    """The admin who creates the trial types their own password at ``init``: their account
    is active at once, with their own signing key, which signs this first event (it records
    the key) and the trial's creation. Returns them signed in."""
    validate_name(name)
    check_new_password(password, context=[name])
    now = clock.now()
    user = User(
        name=name,
        role=Role.ADMIN.value,
        password_hash=UNUSABLE,
        created_at=now,
        password_changed_at=now,
        activated_at=now,
    )
    signing_key = _set_credentials(user, password, now)
    session.add(user)
    session.flush()
    actor = _actor_of(session, user).signing_with(signing_key)
    audit.record(
        session, actor, action="user.add", entity="user", entity_id=name,
        after=user_snapshot(session, user), clock=clock,
    )
    return actor


def _set_credentials(user: User, password: str, now: datetime) -> Ed25519PrivateKey:
    """A password and fresh key pairs made under it: a signing key for everyone (returned
    unlocked), an X25519 custodian key for a custodian. Old keys are gone: what was wrapped
    to them must be re-wrapped by the caller."""
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    signing_key, signing = new_signing_keys(password)
    user.signing_public_key, user.wrapped_signing_key, user.signing_kdf = (
        signing.public_key,
        signing.wrapped_private_key,
        signing.kdf,
    )
    if user.custodian:
        keys = new_custodian_keys(password)
        user.public_key, user.wrapped_private_key, user.key_kdf = (
            keys.public_key,
            keys.wrapped_private_key,
            keys.kdf,
        )
    user.failed_logins, user.locked_until = 0, None
    return signing_key


class ActivationRefused(AuthenticationFailed):
    keep_record = True


@dataclass(frozen=True)
class Activation:
    """What a newly activated person reads out to whoever approves them."""

    name: str
    signing_key: str
    custodian_key: str | None


INVALID_CODE = (
    "this enrolment code is not valid for {name} (mistyped, already used or expired): "
    "ask your trial admin for a new one"
)


def activate_user(
    session: Session, *, name: str, code: str, new_password: str, clock: Clock
) -> Activation:
    """First sign-in: the owner of a new account proves the enrolment code, sets their own
    password and makes their own key pairs. The code is then spent. Every refusal is
    audited and says the same for an unknown name, a wrong, used or expired code."""
    now = clock.now()
    user = session.exec(select(User).where(User.name == name)).first()
    pending = user is not None and user.activated_at is None and not user.disabled
    valid = (
        pending
        and user is not None
        and enrolment_code_matches(code, user.enrolment_code_hash)
        and user.enrolment_expires_at is not None
        and now < user.enrolment_expires_at
    )
    if not valid or user is None:
        why = (
            "unknown user name" if user is None
            else "disabled" if user.disabled
            else "already activated" if user.activated_at is not None
            else "expired code" if user.enrolment_expires_at is not None
            and enrolment_code_matches(code, user.enrolment_code_hash)
            else "wrong code"
        )
        audit.record(
            session,
            None,
            action="user.activate_refused",
            entity="user",
            entity_id=name[:128],
            user_name=name[:64] or "(blank)",
            reason=why,
            clock=clock,
        )
        raise ActivationRefused(INVALID_CODE.format(name=name))
    trial_code = session.exec(select(Trial.trial_code)).first() or ""
    check_new_password(new_password, context=[name, trial_code, "trialkit"])
    before = user_snapshot(session, user)
    user.enrolment_code_hash, user.enrolment_expires_at = None, None
    user.activated_at = now
    signing_key = _set_credentials(user, new_password, now)
    session.add(user)
    session.flush()
    # Their first event records their new public key and is the first that key signs.
    actor = _actor_of(session, user).signing_with(signing_key)
    audit.record(
        session,
        actor,
        action="user.activate",
        entity="user",
        entity_id=name,
        before=before,
        after=user_snapshot(session, user),
        clock=clock,
    )
    assert user.signing_public_key is not None
    return Activation(
        name,
        key_fingerprint(user.signing_public_key),
        key_fingerprint(user.public_key) if user.public_key else None,
    )


def _actor_of(session: Session, user: User) -> Actor:
    assert user.id is not None
    return Actor(
        user_id=user.id,
        name=user.name,
        role=Role(user.role),
        sites=frozenset(user_sites(session, user)),
        custodian=user.custodian,
    )


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
            activated=u.activated_at is not None,
            custodian_approved=u.custodian_approved_at is not None,
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
    current_password: str,
    new_password: str,
    clock: Clock,
) -> int:
    """Change your own password (the current one is checked again here). New key pairs are
    made under the new password, and every list key a custodian holds is re-wrapped to the new
    custodian key: an old copy of a wrapped key and an old password open nothing sealed
    after the change. Returns how many list keys were re-wrapped."""
    user = session.get(User, actor.user_id)
    if user is None or not verify_password(current_password, user.password_hash):
        raise AuthenticationFailed("your current password is wrong; nothing was changed")
    trial_code = session.exec(select(Trial.trial_code)).first() or ""
    check_new_password(new_password, context=[user.name, trial_code, "trialkit"])
    before = user_snapshot(session, user)
    old_private = None
    if user.public_key and user.wrapped_private_key and user.key_kdf:
        old_private = unwrap_private_key(
            CustodianKeys(user.public_key, user.wrapped_private_key, user.key_kdf),
            current_password,
        )
    _set_credentials(user, new_password, clock.now())
    if user.totp_wrapped is not None and user.totp_kdf is not None:
        # the same secret under the new password: the phone keeps working
        secret = totp.unwrap_secret(user.totp_wrapped, user.totp_kdf, current_password)
        wrapped = totp.wrap_secret(secret, new_password)
        user.totp_wrapped, user.totp_kdf = wrapped.wrapped_private_key, wrapped.kdf
    rewrapped = 0
    if old_private is not None and user.public_key is not None:
        grants = session.exec(select(ListKeyGrant).where(ListKeyGrant.user_id == user.id)).all()
        for grant in grants:
            info = key_info(grant.list_id)
            data_key = unwrap_data_key(grant.wrapped_key, old_private, info)
            grant.wrapped_key = wrap_data_key(data_key, user.public_key, info)
            session.add(grant)
            rewrapped += 1
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor,
        action="user.passwd",
        entity="user",
        entity_id=user.name,
        before=before,
        after=user_snapshot(session, user),
        reason=f"new key pairs; {rewrapped} list keys re-wrapped" if user.custodian else None,
        clock=clock,
    )
    return rewrapped


@audits_refusals("user.reissue", entity="user", entity_id="name")
def reissue_enrolment(session: Session, actor: Actor, *, name: str, clock: Clock) -> NewAccount:
    """An admin's answer to a forgotten password or an expired code: the account goes back to
    waiting for activation with a new one-time code (the old password and signing key stop
    working). Refused for an activated custodian, whose key only they can replace."""
    require(actor, Permission.MANAGE_USERS)
    user = find_user(session, name)
    if user.id == actor.user_id:
        raise Refused("you change your own password yourself, not as an admin",
                      next_step=NextStep("change-own-password", ""))
    if user.custodian and user.activated_at is not None:
        raise Refused(
            f"{name} is an unblinding custodian: their key is sealed under their own "
            "password, so only they can change it"
        )
    before = user_snapshot(session, user)
    now = clock.now()
    code = _issue_code(user, now)
    user.activated_at = None
    user.password_hash = UNUSABLE
    user.signing_public_key = user.wrapped_signing_key = user.signing_kdf = None
    user.totp_wrapped = user.totp_kdf = None
    user.totp_last_step = None
    user.failed_logins, user.locked_until = 0, None
    _audit_change(session, actor, user, "user.reissue", before, clock)
    assert user.enrolment_expires_at is not None
    return NewAccount(
        name, user.role, user_sites(session, user), user.custodian, code,
        user.enrolment_expires_at,
    )
