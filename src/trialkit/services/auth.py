"""Signing in: constant-time password checks, lockout after repeated failures.

A refused sign-in is still recorded (failure count, audit event): those errors carry
``keep_record`` so the transaction keeps them."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from trialkit.domain.clock import Clock
from trialkit.domain.errors import AccountLocked, AuthenticationFailed
from trialkit.domain.passwords import verify_password
from trialkit.domain.roles import Role
from trialkit.services import audit
from trialkit.services.actor import Actor
from trialkit.services.trial import trial_time
from trialkit.services.users import user_sites, user_snapshot
from trialkit.store.models import User

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)


class SignInRefused(AuthenticationFailed):
    keep_record = True


class SignInLocked(AccountLocked):
    keep_record = True


def actor_for(session: Session, user: User) -> Actor:
    assert user.id is not None
    return Actor(
        user_id=user.id,
        name=user.name,
        role=Role(user.role),
        sites=frozenset(user_sites(session, user)),
        custodian=user.custodian,
    )


def login(session: Session, name: str, password: str, *, clock: Clock) -> Actor:
    """Check a user name and password; after 5 failures in a row the account is locked for
    15 minutes. The message never says whether the name or the password was wrong."""
    now = clock.now()
    user = session.exec(select(User).where(User.name == name)).first()
    password_ok = verify_password(password, user.password_hash if user else None)
    if user is None:
        audit.record(
            session,
            None,
            action="login.fail",
            entity="user",
            entity_id=name[:128],
            user_name=name[:64] or "(blank)",
            reason="unknown user name",
            clock=clock,
        )
        raise SignInRefused("wrong user name or password")
    actor = actor_for(session, user)
    if user.disabled:
        raise _refused(
            session,
            actor,
            "account disabled",
            clock,
            f"the account {user.name!r} is disabled; ask your trial admin",
        )
    before = user_snapshot(session, user)
    if user.locked_until is not None:
        if now < user.locked_until:
            raise _refused(session, actor, "account locked", clock, _locked_message(session, user))
        user.locked_until, user.failed_logins = None, 0  # the lockout has run out
    if not password_ok:
        user.failed_logins += 1
        locks = user.failed_logins >= MAX_FAILURES
        if locks:
            user.locked_until = now + LOCKOUT
        session.add(user)
        session.flush()
        audit.record(
            session,
            actor,
            action="login.lock" if locks else "login.fail",
            entity="user",
            entity_id=user.name,
            before=before,
            after=user_snapshot(session, user),
            reason=f"wrong password ({user.failed_logins} in a row)",
            clock=clock,
        )
        if locks:
            raise SignInLocked(_locked_message(session, user))
        raise SignInRefused("wrong user name or password")
    user.failed_logins = 0
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
    return actor


def _refused(session: Session, actor: Actor, why: str, clock: Clock, message: str) -> SignInLocked:
    """Record a sign-in refused for the account's state; the caller raises what it returns."""
    audit.record(
        session,
        actor,
        action="login.refused",
        entity="user",
        entity_id=actor.name,
        reason=why,
        clock=clock,
    )
    return SignInLocked(message)


def _locked_message(session: Session, user: User) -> str:
    assert user.locked_until is not None
    until = trial_time(session).show_time(user.locked_until)
    minutes = int(LOCKOUT.total_seconds() // 60)
    return (
        f"the account {user.name!r} is locked for {minutes} minutes after {MAX_FAILURES} "
        f"wrong passwords; try again after {until} or ask your trial admin"
    )
