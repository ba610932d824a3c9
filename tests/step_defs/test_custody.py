"""Steps for ``features/custody.feature``: custodians hold list keys only after a second
person approved them; nobody approves themselves; the admin neither approves nor resets a
custodian's password; an old key copy opens nothing after a password change. Each scenario
on SQLite and, with TRIALKIT_TEST_PG_URL, on PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pytest_bdd import given, parsers, scenarios, then, when
from sqlalchemy import Engine
from sqlmodel import select

from tests.conftest import ADMIN, PASSWORD, SteppingClock, add_user, sign_in
from tests.db.test_custody import (
    HPKE,
    NEW_PASSWORD,
    STRATA,
    events,
    grants,
    lists,
    read_out,
    user,
)
from trialkit.domain.errors import TrialkitError
from trialkit.domain.roles import Role
from trialkit.domain.sealing import CustodianKeys, unwrap_private_key
from trialkit.services.administration.custody import approve_custodian
from trialkit.services.administration.users import change_password, reissue_enrolment
from trialkit.services.enrolment.allocation import extend_list, seal_lists
from trialkit.store.db import read_only, transaction
from trialkit.store.models import ListKeyGrant, User

scenarios("custody.feature")


@dataclass
class Custody:
    engine: Engine
    clock: SteppingClock
    error: TrialkitError | None = None
    copied_key: X25519PrivateKey | None = None
    before: dict[str, Any] = field(default_factory=dict)

    def attempt(self, action: Callable[[], object]) -> None:
        self.error = None
        try:
            action()
        except TrialkitError as exc:
            self.error = exc

    def approve(self, approver: str, name: str, fingerprint: str | None = None) -> None:
        actor = sign_in(self.engine, approver, self.clock)
        with transaction(self.engine) as s:
            approve_custodian(s, actor, name=name,
                              fingerprint=fingerprint or read_out(self.engine, name),
                              password=PASSWORD, clock=self.clock)

    def seal(self) -> None:
        admin = sign_in(self.engine, ADMIN, self.clock)
        with transaction(self.engine) as s:
            seal_lists(s, admin, per_stratum=4, block_sizes=None, clock=self.clock)


@pytest.fixture(autouse=True)
def custody(engine: Engine, clock: SteppingClock) -> Custody:
    """Autouse, so that every scenario is collected once per backend."""
    return Custody(engine, clock)


@given(parsers.parse('a trial whose admin "{admin}" added the investigator "{iris}" and the '
                     'pharmacists "{phil}" and "{pia}", who each activated their own account'))
def team(custody: Custody, admin: str, iris: str, phil: str, pia: str) -> None:
    alice = sign_in(custody.engine, admin, custody.clock)
    add_user(custody.engine, alice, custody.clock, iris, Role.INVESTIGATOR)
    for name in (phil, pia):
        add_user(custody.engine, alice, custody.clock, name, Role.PHARMACIST, approve=False)


@given(parsers.parse('"{approver}" approved "{name}" and the allocation lists are sealed'))
def approved_and_sealed(custody: Custody, approver: str, name: str) -> None:
    custody.approve(approver, name)
    custody.seal()


@given("someone kept a copy of the database")
def copied(custody: Custody) -> None:
    kept = user(custody.engine, "phil")
    assert kept.public_key and kept.wrapped_private_key and kept.key_kdf
    keys = CustodianKeys(kept.public_key, kept.wrapped_private_key, kept.key_kdf)
    custody.copied_key = unwrap_private_key(keys, PASSWORD)  # the copy, and the old password


@when("the admin tries to seal the allocation lists")
def admin_tries_to_seal(custody: Custody) -> None:
    custody.attempt(custody.seal)


@when("the admin seals the allocation lists")
def admin_seals(custody: Custody) -> None:
    custody.seal()


@when(parsers.re(r'(?:the investigator )?"(?P<approver>\w+)" approves "(?P<name>\w+)" after '
                 r"checking the key fingerprint (?:he|she) reads out to (?:him|her)"))
def approves(custody: Custody, approver: str, name: str) -> None:
    custody.approve(approver, name)


@when(parsers.parse('"{who}" tries to approve "{name}"'))
def tries_to_approve(custody: Custody, who: str, name: str) -> None:
    custody.attempt(lambda: custody.approve(who, name))


@when(parsers.parse('the investigator "{who}" tries to approve "{name}" with a fingerprint '
                    "that is not the one of his account's key"))
def approves_another_key(custody: Custody, who: str, name: str) -> None:
    theirs = secrets.token_hex(8)
    assert theirs != read_out(custody.engine, name).replace(" ", "")
    custody.attempt(lambda: custody.approve(who, name, fingerprint=theirs))


@when(parsers.parse('the admin tries to issue "{name}" a new enrolment code'))
def admin_reissues(custody: Custody, name: str) -> None:
    custody.before = {"key": user(custody.engine, name).public_key}
    admin = sign_in(custody.engine, ADMIN, custody.clock)

    def reissue() -> None:
        with transaction(custody.engine) as s:
            reissue_enrolment(s, admin, name=name, clock=custody.clock)

    custody.attempt(reissue)


@when(parsers.parse('"{name}" changes his password and the admin extends the "{stratum}" list'))
def new_password_then_extend(custody: Custody, name: str, stratum: str) -> None:
    me = sign_in(custody.engine, name, custody.clock)
    with transaction(custody.engine) as s:
        change_password(s, me, current_password=PASSWORD, new_password=NEW_PASSWORD,
                        clock=custody.clock)
    admin = sign_in(custody.engine, ADMIN, custody.clock)
    with transaction(custody.engine) as s:
        extend_list(s, admin, stratum=stratum, count=2, block_sizes=None, clock=custody.clock)


@then(parsers.re(r'(?:the admin is|they are) refused: "(?P<why>[^"]+)"'))
def refused(custody: Custody, why: str) -> None:
    assert custody.error is not None and custody.error.exit_code == 1
    assert why in custody.error.message, custody.error.message


@then(parsers.parse('"{phil}" holds the key of every list and "{pia}" holds none'))
def holds_every_and_none(custody: Custody, phil: str, pia: str) -> None:
    assert lists(custody.engine) == STRATA
    assert (grants(custody.engine, phil), grants(custody.engine, pia)) == (STRATA, 0)


@then(parsers.parse('"{name}" holds the key of every list'))
def holds_every(custody: Custody, name: str) -> None:
    assert grants(custody.engine, name) == lists(custody.engine) == STRATA


@then(parsers.parse('the audit trail shows that "{approver}" approved "{name}"'))
def approval_recorded(custody: Custody, approver: str, name: str) -> None:
    shown = [(e.user_name, e.entity_id) for e in events(custody.engine, "custodian.approve")]
    assert (approver, name) in shown
    assert user(custody.engine, name).custodian_approved_by == approver


@then(parsers.parse('"{name}" is not approved, and the audit trail shows that "{who}" was '
                    "refused"))
def not_approved(custody: Custody, name: str, who: str) -> None:
    assert user(custody.engine, name).custodian_approved_at is None
    [refusal] = events(custody.engine, "custodian.approve.refused")
    assert (refusal.user_name, refusal.entity_id) == (who, name)


@then(parsers.parse('"{name}" still signs in with his own password'))
def still_signs_in(custody: Custody, name: str) -> None:
    assert user(custody.engine, name).public_key == custody.before["key"]
    assert sign_in(custody.engine, name, custody.clock).name == name
    [refusal] = events(custody.engine, "user.reissue.refused")
    assert (refusal.user_name, refusal.entity_id) == (ADMIN, name)


@then(parsers.parse('the key in the copy, with the old password, opens none of the list keys '
                    '"{name}" now holds'))
def copy_opens_nothing(custody: Custody, name: str) -> None:
    assert custody.copied_key is not None
    with read_only(custody.engine) as s:
        uid = s.exec(select(User.id).where(User.name == name)).one()
        held = [(g.list_id, g.wrapped_key)
                for g in s.exec(select(ListKeyGrant).where(ListKeyGrant.user_id == uid))]
    assert len(held) == STRATA + 1  # the lists sealed before the change, and the extension
    for list_id, wrapped in held:
        with pytest.raises(Exception):  # noqa: B017 - HPKE refuses the wrong key
            HPKE.decrypt(wrapped, custody.copied_key,
                         info=f"trialkit list data key {list_id}".encode())
