"""A custodian's second factor (TOTP), when the protocol asks for one
(``[security] custodian_totp``): enrolment by the custodian, the check at sign-in, and
the way back after a lost phone (a second custodian resets it; the owner enrols again).

Nobody but the custodian can enrol their factor (it is wrapped under their password), and
no admin can reset or remove it. Every step is audited; the secret never is."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, update
from sqlmodel import Session

from trialkit.domain import second_factor as totp
from trialkit.domain.clock import Clock
from trialkit.domain.errors import AuthenticationFailed, InvalidInput, PermissionDenied, Refused
from trialkit.domain.passwords import verify_password
from trialkit.domain.text import REASON_MAX, optional_text
from trialkit.services.actor import Actor
from trialkit.services.administration.trial import get_trial, stored_protocol
from trialkit.services.administration.users import find_user, user_snapshot
from trialkit.services.integrity import audit
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.store.models import User

USERS = User.__table__  # type: ignore[attr-defined]
ENROL = "user.totp_enrol"
RESET = "user.totp_reset"


def second_factor_used(session: Session) -> bool:
    """Whether this trial's protocol gives custodians a second factor."""
    return stored_protocol(session).security.custodian_totp


def has_second_factor(user: User) -> bool:
    """Whether ``user`` has enrolled a second factor."""
    return user.totp_wrapped is not None and user.totp_kdf is not None


def second_factor_to_enrol(session: Session, actor: Actor) -> bool:
    """Whether the signed-in ``actor`` is a custodian who should enrol a second factor now
    (the protocol uses one and they have none): the TUI offers it after sign-in."""
    user = session.get(User, actor.user_id)
    return (user is not None and user.custodian and not has_second_factor(user)
            and second_factor_used(session))


@dataclass(frozen=True)
class SecondFactorOffer:
    """A fresh secret to enrol, shown once to its owner (URI and QR), never stored as is."""

    user: str
    secret: str
    uri: str

    @property
    def qr_text(self) -> str:
        """The URI as a terminal QR code."""
        return totp.terminal_qr(self.uri)


def _may_enrol(session: Session, actor: Actor) -> User:
    if not second_factor_used(session):
        raise Refused("this trial's protocol does not use a second factor "
                      "([security] custodian_totp = false)")
    user = session.get(User, actor.user_id)
    if user is None or not user.custodian:
        raise PermissionDenied(f"{actor.name} is not an unblinding custodian: only "
                               "custodians enrol a second factor")
    if has_second_factor(user):
        raise Refused(f"{actor.name} has a second factor already: if the phone is lost, a "
                      "second approved custodian resets it, then enrol a new one")
    return user


@audits_refusals(ENROL, entity="user")
def offer_second_factor(session: Session, actor: Actor) -> SecondFactorOffer:
    """A new secret for the signed-in custodian to scan; nothing is stored until
    :func:`enrol_second_factor` confirms it with a code."""
    _may_enrol(session, actor)
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, user=actor.name, trial=get_trial(session).trial_code)
    return SecondFactorOffer(actor.name, secret, uri)


@audits_refusals(ENROL, entity="user")
def enrol_second_factor(
    session: Session, actor: Actor, *, password: str, secret: str, code: str, clock: Clock
) -> None:
    """Store the offered secret once a code from the app proves it was scanned, wrapped
    under the custodian's password (checked again here). The code is spent: it cannot
    also sign in."""
    user = _may_enrol(session, actor)
    if not verify_password(password, user.password_hash):
        raise AuthenticationFailed("your password is wrong; no second factor was enrolled")
    if not code.strip():
        raise InvalidInput("give the 6-digit code your authenticator app shows")
    step = totp.accepted_step(secret, code, clock.now(), after=None)
    if step is None:
        raise Refused("that code does not match the secret just shown (check the phone's "
                      "time, or scan the code again); no second factor was enrolled")
    before = user_snapshot(session, user)
    wrapped = totp.wrap_secret(secret, password)
    user.totp_wrapped, user.totp_kdf, user.totp_last_step = (
        wrapped.wrapped_private_key, wrapped.kdf, step)
    session.add(user)
    session.flush()
    audit.record(session, actor, action=ENROL, entity="user", entity_id=user.name,
                 before=before, after=user_snapshot(session, user),
                 reason="second factor enrolled (TOTP)", clock=clock)


def second_factor_holds(
    session: Session, user: User, password: str, code: str | None, clock: Clock
) -> bool:
    """Sign-in's check, after the password was right: a user without a factor passes; one
    with a factor passes only with a code of a step later than the last accepted, which
    becomes the last accepted. The caller records a failure."""
    if not has_second_factor(user):
        return True
    assert user.totp_wrapped is not None and user.totp_kdf is not None
    secret = totp.unwrap_secret(user.totp_wrapped, user.totp_kdf, password)
    step = totp.accepted_step(secret, code or "", clock.now(), after=user.totp_last_step)
    if step is None:
        return False
    # Spend the step in one conditional write: of two sign-ins racing with one code (on
    # PostgreSQL both may have read the old step), the second updates nothing and fails.
    spent = session.connection().execute(
        update(USERS)
        .where(USERS.c.id == user.id,
               or_(USERS.c.totp_last_step.is_(None), USERS.c.totp_last_step < step))
        .values(totp_last_step=step)
    )
    if spent.rowcount != 1:
        return False
    session.expire(user, ["totp_last_step"])
    return True


@audits_refusals(RESET, entity="user", entity_id="name")
def reset_second_factor(
    session: Session, actor: Actor, *, name: str, reason: str, clock: Clock
) -> None:
    """A lost phone: a second approved custodian removes ``name``'s factor (never an admin,
    never its owner alone), and ``name`` enrols a new one at their next sign-in. Audited
    with the reason."""
    why = optional_text(reason, "the reason", max_len=REASON_MAX)
    if not why:
        raise InvalidInput("say why the factor is reset, e.g. 'phone lost'")
    me = session.get(User, actor.user_id)
    if me is None or not me.custodian or me.custodian_approved_at is None:
        raise PermissionDenied(f"{actor.name} is not an approved custodian: only a second "
                               "custodian may reset a custodian's second factor")
    user = find_user(session, name)
    if user.id == actor.user_id:
        raise Refused("a second custodian resets your factor, not you alone")
    if not has_second_factor(user):
        raise Refused(f"{name} has no second factor to reset")
    before = user_snapshot(session, user)
    user.totp_wrapped = user.totp_kdf = None
    user.totp_last_step = None
    session.add(user)
    session.flush()
    audit.record(session, actor, action=RESET, entity="user", entity_id=user.name,
                 before=before, after=user_snapshot(session, user), reason=why, clock=clock)
