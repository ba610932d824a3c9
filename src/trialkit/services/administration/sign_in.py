"""Signing in: constant-time password checks, and throttling instead of a lockout.

Wrong passwords slow further attempts on the same name (a growing delay, capped at a
minute) but never lock an account: a lockout would let anyone who knows the custodians'
names deny emergency unblinding. A name that is no account is counted and delayed exactly
like one that is, and a disabled account says so only after its password was right.

A refused sign-in is still recorded (failure count, audit event): those errors carry
``keep_record`` so the transaction keeps them."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session, select

from trialkit.domain.clock import Clock
from trialkit.domain.credentials import new_signing_keys, unwrap_signing_key
from trialkit.domain.errors import AccountLocked, AuthenticationFailed, PermissionDenied
from trialkit.domain.key_wrap import WrappedKey
from trialkit.domain.passwords import verify_password
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.second_factor import (
    has_second_factor,
    second_factor_holds,
    second_factor_used,
)
from trialkit.services.administration.users import user_sites, user_snapshot
from trialkit.services.integrity import audit
from trialkit.store.models import SignInThrottle, User

FREE_FAILURES = 3  # mistypes before any delay
MAX_DELAY = timedelta(seconds=60)
WRONG = "wrong user name or password"
# Said of every refused sign-in (any name) where the protocol gives custodians a second
# factor: the words never tell who has one, nor which part was wrong.
WRONG_WITH_CODE = "wrong user name, password or code"


class SignInRefused(AuthenticationFailed):
    keep_record = True


class SignInLocked(AccountLocked):
    keep_record = True


def delay_after(failures: int) -> timedelta:
    """How long the next attempt waits after ``failures`` wrong passwords in a row: nothing
    for the first few, then 1 s doubling each time, at most a minute."""
    if failures <= FREE_FAILURES:
        return timedelta(0)
    return min(MAX_DELAY, timedelta(seconds=2 ** min(failures - FREE_FAILURES - 1, 16)))


def actor_for(session: Session, user: User) -> Actor:
    assert user.id is not None
    return Actor(
        user_id=user.id,
        name=user.name,
        role=Role(user.role),
        sites=frozenset(user_sites(session, user)),
        custodian=user.custodian,
    )


def login(
    session: Session, name: str, password: str, *, clock: Clock, code: str | None = None
) -> Actor:
    """Check a user name and password, and for a custodian with a second factor the
    ``code`` from their app; the actor returned holds their unlocked signing key, which
    signs every event they cause. The message never says whether the name, the password
    or the code was wrong; the delay after failures is the same for any name."""
    now = clock.now()
    wrong = WRONG_WITH_CODE if second_factor_used(session) else WRONG
    user = session.exec(select(User).where(User.name == name)).first()
    counter: User | SignInThrottle
    if user is not None:
        counter = user
    else:
        key = name[:64]
        counter = session.get(SignInThrottle, key) or SignInThrottle(name=key, failed_logins=0)
    actor = actor_for(session, user) if user is not None else None
    if counter.locked_until is not None and now < counter.locked_until:
        wait = math.ceil((counter.locked_until - now).total_seconds())
        _record(session, actor, name, "login.refused", "waiting after wrong passwords", clock)
        raise SignInLocked(
            f"too many wrong passwords for {name!r}: wait {wait} s and try again"
        )
    password_ok = verify_password(password, user.password_hash if user else None)
    if not password_ok:
        why = "wrong password" if user is not None else "unknown user name"
        _count_failure(session, counter, user, actor, name, why, clock)
        raise SignInRefused(wrong)
    assert user is not None and actor is not None
    # before the code's step is spent: the login event records the step it moved to
    before = user_snapshot(session, user)
    if not second_factor_holds(session, user, password, code, clock):
        # counted and delayed exactly like a wrong password
        _count_failure(session, counter, user, actor, name,
                       "wrong, missing or reused second factor code", clock)
        raise SignInRefused(wrong)
    if user.disabled:
        _record(session, actor, name, "login.refused", "account disabled", clock)
        raise SignInLocked(f"the account {user.name!r} is disabled; ask your trial admin")
    if user.signing_public_key is None:
        actor = actor.signing_with(_make_signing_key(user, password))
    else:
        actor = actor.signing_with(unlock_signing_key(session, actor, password))
    _record_login(session, user, actor, before, clock)
    return actor


def _record_login(
    session: Session, user: User, actor: Actor, before: dict[str, Any], clock: Clock
) -> None:
    """The ``login`` event, signed by the key just unlocked; the failure count starts again."""
    user.failed_logins, user.locked_until = 0, None
    session.add(user)
    session.flush()
    after = user_snapshot(session, user)
    changed = after != before
    audit.record(
        session,
        actor,
        action="login",
        entity="user",
        entity_id=user.name,
        before=before if changed else None,
        after=after if changed else None,
        clock=clock,
    )


def check_sign_in(session: Session, name: str, password: str) -> Actor | None:
    """A sign-in checked without writing anything, for a command that only reads: the actor
    (holding their unlocked signing key) when the name and password are right and the sign-in
    would change nothing but the trail; None when :func:`login` must decide and record it (a
    wrong password, a disabled, throttled or unknown account, failures to forget, an account
    without a signing key yet, a second factor whose code sign-in spends). The caller records
    the sign-in with :func:`record_sign_in` before it shows anything. A name that is no
    account costs the same password check as one that is, and a throttled name none, as in
    :func:`login`."""
    user = session.exec(select(User).where(User.name == name)).first()
    counter = user if user is not None else session.get(SignInThrottle, name[:64])
    if counter is not None and counter.locked_until is not None:
        return None  # login refuses (or forgets an expired wait) before any password check
    if not verify_password(password, user.password_hash if user else None):
        return None
    if (user is None or user.disabled or user.failed_logins or user.signing_public_key is None
            or has_second_factor(user)):  # its code is spent by a write: login checks it
        return None
    actor = actor_for(session, user)
    return actor.signing_with(unlock_signing_key(session, actor, password))


def record_sign_in(session: Session, actor: Actor, *, clock: Clock) -> None:
    """Record a sign-in that :func:`check_sign_in` accepted, in a write transaction of its
    own after the command's read. Refused (and recorded) if the account was disabled or
    its key replaced in between; wrong passwords typed meanwhile are forgotten, as at any
    successful sign-in."""
    user = session.get(User, actor.user_id)
    key = actor.signing_key
    if user is None or user.disabled or key is None or (
        key.public_key().public_bytes_raw() != user.signing_public_key
    ):
        _record(session, actor, actor.name, "login.refused",
                "account disabled or its key replaced during the sign-in", clock)
        raise SignInLocked(f"the account {actor.name!r} may no longer sign in; ask your "
                           "trial admin")
    _record_login(session, user, actor, user_snapshot(session, user), clock)


def _count_failure(
    session: Session,
    counter: User | SignInThrottle,
    user: User | None,
    actor: Actor | None,
    name: str,
    why: str,
    clock: Clock,
) -> None:
    """One more failure in a row: the next attempt waits (:func:`delay_after`); audited."""
    before = user_snapshot(session, user) if user is not None else None
    counter.failed_logins += 1
    delay = delay_after(counter.failed_logins)
    counter.locked_until = clock.now() + delay if delay else None
    session.add(counter)
    session.flush()
    audit.record(
        session,
        actor,
        action="login.fail",
        entity="user",
        entity_id=name[:128],
        user_name=None if actor else name[:64] or "(blank)",
        before=before,
        after=user_snapshot(session, user) if user is not None else None,
        reason=f"{why} ({counter.failed_logins} in a row)",
        clock=clock,
    )


def _make_signing_key(user: User, password: str) -> Ed25519PrivateKey:
    """An account from before signing keys gets its own at its first sign-in (recorded by
    that sign-in's event, which the new key signs)."""
    private_key, keys = new_signing_keys(password)
    user.signing_public_key, user.wrapped_signing_key, user.signing_kdf = (
        keys.public_key,
        keys.wrapped_private_key,
        keys.kdf,
    )
    return private_key


def unlock_signing_key(session: Session, actor: Actor, password: str) -> Ed25519PrivateKey:
    """The actor's own Ed25519 signing key, unlocked with their password (which sign-in has
    just checked). Only its owner can sign as them."""
    user = session.get(User, actor.user_id)
    if (
        user is None
        or user.signing_public_key is None
        or user.wrapped_signing_key is None
        or user.signing_kdf is None
    ):
        raise PermissionDenied(f"{actor.name} has no signing key yet: activate the account")
    keys = WrappedKey(user.signing_public_key, user.wrapped_signing_key, user.signing_kdf)
    return unwrap_signing_key(keys, password)


def _record(
    session: Session, actor: Actor | None, name: str, action: str, why: str, clock: Clock
) -> None:
    """Record a sign-in refused before or after its password was checked."""
    audit.record(
        session,
        actor,
        action=action,
        entity="user",
        entity_id=name[:128],
        user_name=None if actor else name[:64] or "(blank)",
        reason=why,
        clock=clock,
    )


def open_browser_session(
    session: Session, name: str, *, signing_key: bytes | None, clock: Clock
) -> Actor:
    """The actor of a browser session whose user signed in at ``trialkit serve``'s sign-in
    page (through :func:`login`, moments ago): the app process it starts opens signed in,
    never seeing the password, holding the signing key that sign-in unlocked. Refused if
    the account was disabled meanwhile or its key is not the account's (the password was
    changed meanwhile); recorded as ``session.open``. Only the serve face calls this, after
    redeeming its single-use ticket."""
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None or user.disabled:
        raise PermissionDenied(f"the account {name!r} may no longer sign in")
    try:
        key = Ed25519PrivateKey.from_private_bytes(signing_key or b"")
    except ValueError:
        key = None
    if key is None or key.public_key().public_bytes_raw() != user.signing_public_key:
        raise PermissionDenied("this browser session holds no valid signing key: sign in again")
    actor = actor_for(session, user).signing_with(key)
    audit.record(session, actor, action="session.open", entity="user", entity_id=user.name,
                 reason="browser session after the web sign-in", clock=clock)
    return actor
