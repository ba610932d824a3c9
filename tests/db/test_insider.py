"""Attacks by insiders on custody, end to end (issue 12, findings 1 and 4), on both backends.

An admin with every admin power (create accounts and activate them with the codes they
issue, disable and re-issue accounts, seal and extend lists, read a copy of the database
file) tries every route to a list key and an arm; each fails and is audited. Someone who
knows the custodians' names types wrong passwords to deny emergency unblinding; after the
capped delay the custodian still unblinds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import Engine, text
from sqlmodel import Session

from trialkit.domain.errors import AuthenticationFailed, Refused, TrialkitError
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.custody import approve_custodian, grant_custodian
from trialkit.services.administration.sign_in import MAX_DELAY
from trialkit.services.administration.users import (
    activate_user,
    create_user,
    reissue_enrolment,
    set_disabled,
)
from trialkit.services.enrolment.allocation import extend_list
from trialkit.services.enrolment.participants import randomize
from trialkit.services.exports.sealed_procedure import open_procedures
from trialkit.services.pharmacy.dispensing import dispense
from trialkit.services.pharmacy.unblinding import unblind
from trialkit.store.db import read_only, transaction

from ..builders import ready_to_randomize, seal
from ..conftest import PASSWORD, SteppingClock, add_user, sign_in
from .tampering import verify
from .test_custody import HPKE, events, grants, read_out
from .test_recovery import custodian_key

ADMINS_PASSWORD = "admin-chose-this-one-77"  # what the admin types for the account they made


def refused(action: Callable[[], object]) -> TrialkitError:
    with pytest.raises(TrialkitError) as err:
        action()
    assert err.value.exit_code == 1, err.value.message
    return err.value


def in_tx(engine: Engine, work: Callable[[Session], object]) -> Callable[[], object]:
    def run() -> object:
        with transaction(engine) as s:
            return work(s)

    return run


@pytest.fixture
def running(engine: Engine, admin: Actor, clock: SteppingClock) -> str:
    """A trial under way: iris (investigator) approved phil; ivan, an investigator custodian,
    approved by phil; lists sealed; TWH-001 randomized."""
    add_user(engine, admin, clock, "iris", Role.INVESTIGATOR)
    add_user(engine, admin, clock, "phil", Role.PHARMACIST, approve=False)
    approve_custodian_as(engine, clock, "iris", "phil")
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR, custodian=True, approve=False)
    approve_custodian_as(engine, clock, "phil", "ivan")
    add_user(engine, admin, clock, "cora", Role.COORDINATOR, sites=["TWH"])
    seal(engine, admin, clock, per_stratum=4)
    cora = sign_in(engine, "cora", clock)
    pid = ready_to_randomize(engine, cora, clock).id
    with transaction(engine) as s:
        randomize(s, cora, pid, clock=clock)
    return pid


def approve_custodian_as(engine: Engine, clock: SteppingClock, approver: str, name: str) -> None:
    actor = sign_in(engine, approver, clock)
    with transaction(engine) as s:
        approve_custodian(s, actor, name=name, fingerprint=read_out(engine, name),
                          password=PASSWORD, clock=clock)


def admin_enrols_and_activates(engine: Engine, admin: Actor, clock: SteppingClock, name: str,
                               role: Role) -> None:
    """The admin adds an account and, holding its enrolment code, activates it themselves."""
    with transaction(engine) as s:
        account = create_user(s, admin, name=name, role=role, sites=[], custodian=False,
                              clock=clock)
        activate_user(s, name=name, code=account.enrolment_code, new_password=ADMINS_PASSWORD,
                      clock=clock)


def opens_nothing(engine: Engine, key: X25519PrivateKey) -> None:
    """With a copy of the database, try ``key`` on every wrapped list key in it."""
    with read_only(engine) as s:
        rows = s.connection().execute(text(
            "SELECT list_id, wrapped_key FROM list_key_grant "
            "UNION ALL SELECT id, recovery_key FROM allocation_list")).all()
    assert rows
    for list_id, wrapped in rows:
        with pytest.raises(Exception):  # noqa: B017 - HPKE refuses a key it was not wrapped to
            HPKE.decrypt(bytes(wrapped), key, info=f"trialkit list data key {list_id}".encode())


def test_an_admin_with_every_admin_power_reads_no_arm(
    engine: Engine, admin: Actor, clock: SteppingClock, running: str
) -> None:
    pid = running
    # 1. A pharmacist of the admin's own: the admin keeps the code and activates the account.
    admin_enrols_and_activates(engine, admin, clock, "eve", Role.PHARMACIST)
    eve = sign_in(engine, "eve", clock, ADMINS_PASSWORD)
    assert grants(engine, "eve") == 0  # nobody approved eve: nothing was wrapped to her key
    err = refused(in_tx(engine, lambda s: dispense(s, eve, pid, password=ADMINS_PASSWORD,
                                                     clock=clock)))
    assert "eve holds no key" in err.message
    refused(in_tx(engine, lambda s: unblind(s, eve, pid, reason="curious",
                                              password=ADMINS_PASSWORD, clock=clock)))
    # 2. Approving her: herself, the admin, an investigator of the admin's own.
    fingerprint = read_out(engine, "eve")
    admin_enrols_and_activates(engine, admin, clock, "ivy", Role.INVESTIGATOR)
    ivy = sign_in(engine, "ivy", clock, ADMINS_PASSWORD)
    for who in (eve, admin, ivy):
        refused(in_tx(engine, lambda s, who=who: approve_custodian(
            s, who, name="eve", fingerprint=fingerprint, password=ADMINS_PASSWORD,
            clock=clock)))
    # 3. Disable every real custodian first: the investigator's word still approves nobody,
    #    and no list can be extended without an approved pharmacist.
    for name in ("phil", "ivan"):
        with transaction(engine) as s:
            set_disabled(s, admin, name=name, disabled=True, reason="audit", clock=clock)
    refused(in_tx(engine, lambda s: approve_custodian(
        s, ivy, name="eve", fingerprint=fingerprint, password=ADMINS_PASSWORD, clock=clock)))
    err = refused(in_tx(engine, lambda s: extend_list(
        s, admin, stratum="TWH-CM", count=4, block_sizes=None, clock=clock)))
    assert "no approved pharmacist" in err.message
    for name in ("phil", "ivan"):
        with transaction(engine) as s:
            set_disabled(s, admin, name=name, disabled=False, reason="audit over", clock=clock)
    # 4. Reset a custodian's password (a new code for phil), or hand keys over as the admin.
    for name in ("phil", "ivan"):
        err = refused(in_tx(engine, lambda s, name=name: reissue_enrolment(
            s, admin, name=name, clock=clock)))
        assert "only they can change it" in err.message
    refused(in_tx(engine, lambda s: grant_custodian(s, admin, password=PASSWORD,
                                                      grantee="eve", clock=clock)))
    refused(in_tx(engine, lambda s: dispense(s, admin, pid, password=PASSWORD, clock=clock)))
    refused(in_tx(engine, lambda s: open_procedures(s, admin, password=PASSWORD,
                                                      clock=clock)))
    # 5. Future lists: an extension is wrapped to the approved custodians only.
    with transaction(engine) as s:
        extend_list(s, admin, stratum="TWH-CM", count=4, block_sizes=None, clock=clock)
    assert grants(engine, "eve") == 0
    # 6. Offline, with a copy of the file: the keys the admin holds (eve's and ivy's custodian
    #    key, if any) open no wrapped list key, old or new.
    opens_nothing(engine, custodian_key(engine, "eve", ADMINS_PASSWORD))
    # Every attempt is on record, and the trail still verifies.
    assert len(events(engine, "custodian.approve.refused")) == 4
    assert len(events(engine, "user.reissue.refused")) == 2
    assert len(events(engine, "list.extend.refused")) == 1
    report = verify(engine)
    assert report.ok, report.problem
    # The real custodian is unaffected.
    phil = sign_in(engine, "phil", clock)
    with transaction(engine) as s:
        assert dispense(s, phil, pid, password=PASSWORD, clock=clock).arm_code


def test_wrong_passwords_for_every_custodian_do_not_deny_emergency_unblinding(
    engine: Engine, admin: Actor, clock: SteppingClock, running: str
) -> None:
    attempts = 0
    for _round in range(12):  # well past any lockout threshold, for each custodian
        for name in ("phil", "ivan", "nobody-here"):
            try:
                sign_in(engine, name, clock, "wrong-password-guess")
            except (AuthenticationFailed, Refused):
                attempts += 1
        clock.advance(seconds=1)
    assert attempts == 36
    # The wait never exceeds the cap: after it, the right password works, and ivan unblinds.
    clock.advance(seconds=MAX_DELAY.total_seconds() + 1)
    ivan = sign_in(engine, "ivan", clock)
    with transaction(engine) as s:
        done = unblind(s, ivan, running, reason="suspected serious adverse reaction",
                       password=PASSWORD, clock=clock)
    assert done.arm_code
    assert MAX_DELAY <= timedelta(minutes=1)
