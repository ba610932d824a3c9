"""The checks made before a pharmacy action: the permission (a refusal is audited), the lot
numbers, that the participant is randomized and not yet dispensed, and the second pharmacist
who checks a preparation and signs the check with their own password. Nothing here opens an
envelope or reads an arm."""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlmodel import Session

from trialkit.domain.clock import Clock
from trialkit.domain.errors import (
    AccountLocked,
    AuthenticationFailed,
    InvalidInput,
    NextStep,
    NotFound,
    PermissionDenied,
    Refused,
)
from trialkit.domain.infusion_time import has_expired
from trialkit.domain.participant_status import Status, can_dispense, can_reprepare
from trialkit.domain.protocol import Protocol
from trialkit.domain.roles import Permission, Role, works_at
from trialkit.services.actor import Actor
from trialkit.services.administration.second_factor import second_factor_used
from trialkit.services.administration.sign_in import login
from trialkit.services.administration.trial import site_time
from trialkit.services.administration.users import find_user, user_sites
from trialkit.services.enrolment.participants import current_status, not_allowed
from trialkit.services.integrity import audit
from trialkit.services.pharmacy.preparations import current_preparation
from trialkit.store.models import Participant, Preparation, User

# Lot numbers as printed on vials and bags: 3-20 capitals, digits or '-', starting and
# ending with a capital or digit (e.g. KT2403-17). Typed lower case, they are upper-cased.
LOT_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9-]{1,18}[A-Z0-9]")
LOT_RULE = "3-20 capital letters, digits or '-', starting and ending with a letter or digit"
LOT_MAX = 20


class PharmacyRefused(PermissionDenied):
    """A role without the permission tried a pharmacy action; the refusal is audited."""

    keep_record = True


class CheckNotSigned(AuthenticationFailed):
    """The checker's password was wrong (or their account is locked): the check is not
    signed. Their failed attempt is recorded as a sign-in's is, so the record is kept."""

    keep_record = True


# --- checks ----------------------------------------------------------------------------------


def _key(pid: str) -> str:
    return pid.strip().upper()[:128]


def require_permission(
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
        raise InvalidInput(f"no lot number for {', '.join(missing)} (one lot for each of "
                           f"{', '.join(wanted)})", needs=("lots",))
    checked: dict[str, str] = {}
    for prep in wanted:
        lot = lots[prep].strip().upper()
        if not LOT_PATTERN.fullmatch(lot):
            raise InvalidInput(f"lot number {lots[prep]!r} for {prep}: use {LOT_RULE}")
        checked[prep] = lot
    return checked


def randomized_numbers(p: Participant) -> tuple[str, str]:
    """The randomization number and label code of a randomized participant."""
    if p.randomization_number is None or p.label_code is None:
        raise Refused(f"{p.id} has not been randomized: there is no envelope to open")
    return p.randomization_number, p.label_code


def dispensable(session: Session, p: Participant, clock: Clock) -> tuple[str, str]:
    """Randomized, not withdrawn, and not dispensed yet (``can_dispense``)."""
    numbers = randomized_numbers(p)
    status = current_status(session, p)
    if can_dispense(status):
        return numbers
    if status is Status.WITHDRAWN:
        raise Refused(f"{p.id} has withdrawn: nothing is prepared for them")
    prep = current_preparation(session, p.id)
    if prep is None:
        raise not_allowed(p, status, "dispense")
    local = site_time(session, p.site_code)
    done = (f"{p.id} was already dispensed on {local.show(prep.prepared_at)} by "
            f"{prep.prepared_by}")
    if can_reprepare(status) and has_expired(prep.expires_at, clock.now()):
        raise Refused(
            f"{done}, and that preparation expired at {local.show(prep.expires_at)}",
            next_step=NextStep("prepare-again", p.id),
        )
    raise Refused(done, next_step=NextStep("print-labels-again", p.id))


def to_prepare_again(session: Session, p: Participant) -> tuple[str, str, Preparation]:
    """Dispensed, not withdrawn, not yet infused (``can_reprepare``): its current
    preparation."""
    rand_no, code = randomized_numbers(p)
    status = current_status(session, p)
    prep = current_preparation(session, p.id)
    if can_reprepare(status) and prep is not None:
        return rand_no, code, prep
    if status is Status.WITHDRAWN:
        raise Refused(f"{p.id} has withdrawn: nothing is prepared for them")
    if status is Status.INFUSED:
        raise Refused(
            f"{p.id} was infused on {p.infusion_date}: there is nothing to prepare again"
        )
    raise Refused(
        f"{p.id} has not been dispensed yet, so there is nothing to prepare again",
        next_step=NextStep("dispense", p.id),
    )


def checking_pharmacist(session: Session, actor: Actor, name: str, p: Participant) -> User:
    """The second pharmacist who checks the preparation: another active pharmacist."""
    try:
        user = find_user(session, name.strip())
    except NotFound:
        raise NotFound(f"checked by {name!r}: no user of that name") from None
    if user.id == actor.user_id:
        raise Refused(
            f"{actor.name} prepared it, so cannot also check it: a second pharmacist must "
            "check the preparation", needs=("checker",)
        )
    if user.role != Role.PHARMACIST.value:
        raise Refused(f"{user.name} is a {user.role}, not a pharmacist: a second pharmacist "
                      "must check the preparation")
    if user.disabled:
        raise Refused(f"{user.name}'s account is disabled: another pharmacist must check it")
    sites = user_sites(session, user)
    if not works_at(Role(user.role), sites, p.site_code):
        raise Refused(f"{user.name} works at {', '.join(sites)}, not at {p.site_code}")
    return user


def sign_check(
    session: Session, checker: User, password: str, *, clock: Clock, code: str | None = None
) -> None:
    """The checker signs the check: their password (and their second-factor ``code``, if
    they have one) is verified exactly as a sign-in is (the sign-in service: a wrong
    password counts towards their sign-in delay and is audited). Call it before anything
    else is written: a refusal keeps what the sign-in service recorded, and only that."""
    if not password:
        raise InvalidInput(
            f"{checker.name} signs the check with their own password "
            "(TRIALKIT_CHECKER_PASSWORD in scripts)"
        )
    try:
        login(session, checker.name, password, clock=clock, code=code)
    except (AuthenticationFailed, AccountLocked) as err:
        wrong = "wrong password or code" if second_factor_used(session) else "wrong password"
        detail = wrong if isinstance(err, AuthenticationFailed) else err.message
        raise CheckNotSigned(
            f"the check by {checker.name} is not signed: {detail}; the preparation is not recorded"
        ) from None
