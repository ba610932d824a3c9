"""Custody no single person controls: a custodian holds list keys only after a second person
approved them (checking the key fingerprint the custodian read out), nobody approves
themselves, an admin neither approves nor resets a custodian's password, and a new password
leaves an old copy of the wrapped key useless for what is sealed afterwards. On both
backends; every step and every refusal is audited."""

from __future__ import annotations

import hashlib
import secrets

import pytest
from cryptography.hazmat.primitives import hpke
from sqlalchemy import Engine
from sqlmodel import func, select

from tests.db.tampering import verify
from trialkit.domain.errors import InvalidInput, Refused
from trialkit.domain.roles import Role
from trialkit.domain.sealing import CustodianKeys, unwrap_private_key
from trialkit.services.actor import Actor
from trialkit.services.administration.custody import approve_custodian, list_custodians
from trialkit.services.administration.users import change_password, reissue_enrolment
from trialkit.services.enrolment.allocation import extend_list
from trialkit.store.db import read_only, transaction
from trialkit.store.models import AllocationList, AuditEvent, ListKeyGrant, User

from ..builders import PROTOCOL, seal
from ..conftest import PASSWORD, SteppingClock, add_user, sign_in

# KetHead's strata: two sites times two headache types (kethead.md), one list each.
STRATA = len(PROTOCOL.sites) * 2
NEW_PASSWORD = "quiet-lantern-meadow-42"
HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def user(engine: Engine, name: str) -> User:
    with read_only(engine) as s:
        row = s.exec(select(User).where(User.name == name)).one()
        s.expunge(row)
        return row


def read_out(engine: Engine, name: str) -> str:
    """The fingerprint a custodian reads out: the first 16 hex digits of SHA-256 of their
    public key (as the activation shows it), computed here from the stored key."""
    public_key = user(engine, name).public_key
    assert public_key is not None
    digits = hashlib.sha256(public_key).hexdigest()[:16]
    return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


def approve(engine: Engine, clock: SteppingClock, approver: str, name: str,
            fingerprint: str | None = None, password: str = PASSWORD) -> None:
    actor = sign_in(engine, approver, clock)
    with transaction(engine) as s:
        approve_custodian(s, actor, name=name, fingerprint=fingerprint or read_out(engine, name),
                          password=password, clock=clock)


def grants(engine: Engine, name: str) -> int:
    with read_only(engine) as s:
        uid = s.exec(select(User.id).where(User.name == name)).one()
        return s.exec(select(func.count()).select_from(ListKeyGrant)
                      .where(ListKeyGrant.user_id == uid)).one()


def events(engine: Engine, action: str) -> list[AuditEvent]:
    with read_only(engine) as s:
        rows = list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                           .order_by(AuditEvent.seq)))
        s.expunge_all()
        return rows


def lists(engine: Engine) -> int:
    with read_only(engine) as s:
        return s.exec(select(func.count()).select_from(AllocationList)).one()


@pytest.fixture
def team(engine: Engine, admin: Actor, clock: SteppingClock) -> Engine:
    """iris (investigator), two pharmacists not yet approved, a coordinator."""
    add_user(engine, admin, clock, "iris", Role.INVESTIGATOR)
    add_user(engine, admin, clock, "phil", Role.PHARMACIST, approve=False)
    add_user(engine, admin, clock, "pia", Role.PHARMACIST, approve=False)
    add_user(engine, admin, clock, "cora", Role.COORDINATOR, sites=["TWH"])
    return engine


def test_nothing_is_sealed_before_a_second_person_approved_a_pharmacist(
    team: Engine, admin: Actor, clock: SteppingClock
) -> None:
    with pytest.raises(Refused, match="no approved pharmacist") as err:
        seal(team, admin, clock, per_stratum=4)
    assert err.value.exit_code == 1 and lists(team) == 0
    approve(team, clock, "iris", "phil")  # the first custodian: an investigator approves
    seal(team, admin, clock, per_stratum=4)
    assert (grants(team, "phil"), grants(team, "pia")) == (STRATA, 0)
    [event] = events(team, "custodian.approve")
    assert (event.user_name, event.entity_id) == ("iris", "phil")
    assert read_out(team, "phil") in (event.reason or "")
    assert verify(team).ok


def test_a_custodian_approved_after_sealing_receives_every_list_key_from_the_approver(
    team: Engine, admin: Actor, clock: SteppingClock
) -> None:
    approve(team, clock, "iris", "phil")
    seal(team, admin, clock, per_stratum=4)
    with transaction(team) as s:
        extend_list(s, admin, stratum="TWH-CM", count=3, block_sizes=None, clock=clock)
    assert grants(team, "pia") == 0  # extending wraps nothing to the unapproved either
    approve(team, clock, "phil", "pia")
    assert grants(team, "pia") == grants(team, "phil") == STRATA + 1
    with read_only(team) as s:
        shown = {c.name: (c.state, c.lists_held)
                 for c in list_custodians(s, sign_in(team, "cora", clock))}
    assert shown == {"phil": ("approved by iris", STRATA + 1),
                     "pia": ("approved by phil", STRATA + 1)}
    assert verify(team).ok


@pytest.mark.parametrize(("approver", "why"), [
    ("pia", "nobody approves themselves"),
    ("alice", "cannot approve custodians"),
    ("cora", "cannot approve custodians"),
])
def test_nobody_but_a_second_custodian_or_investigator_approves(
    team: Engine, clock: SteppingClock, approver: str, why: str
) -> None:
    with pytest.raises(Refused, match=why) as err:
        approve(team, clock, approver, "pia")
    assert err.value.exit_code == 1
    assert user(team, "pia").custodian_approved_at is None
    [refusal] = events(team, "custodian.approve.refused")
    assert (refusal.user_name, refusal.entity_id) == (approver, "pia")
    assert why in (refusal.reason or "")


def test_an_investigator_approves_only_the_first_custodian(
    team: Engine, clock: SteppingClock
) -> None:
    approve(team, clock, "iris", "phil")
    with pytest.raises(Refused, match="an investigator approves only the first custodian"):
        approve(team, clock, "iris", "pia")
    assert user(team, "pia").custodian_approved_at is None
    approve(team, clock, "phil", "pia")
    assert user(team, "pia").custodian_approved_by == "phil"


def test_a_fingerprint_that_is_not_the_accounts_key_is_refused(
    team: Engine, clock: SteppingClock
) -> None:
    # Whoever activated phil's account (an admin who kept the code, say) made another key
    # than the one the real phil reads out on the phone.
    theirs = secrets.token_hex(8)
    assert theirs != read_out(team, "phil").replace(" ", "")
    with pytest.raises(Refused, match="is not that of the key"):
        approve(team, clock, "iris", "phil", fingerprint=theirs)
    assert user(team, "phil").custodian_approved_at is None
    [refusal] = events(team, "custodian.approve.refused")
    assert refusal.user_name == "iris"


@pytest.mark.parametrize("typed", ["12345", "zzzz zzzz zzzz zzzz", ""])
def test_a_malformed_fingerprint_is_invalid_input(
    team: Engine, clock: SteppingClock, typed: str
) -> None:
    with pytest.raises(InvalidInput, match="16 hex digits"):
        approve(team, clock, "iris", "phil", fingerprint=typed or " ")
    assert events(team, "custodian.approve.refused") == []


def test_an_admin_cannot_reset_a_custodians_password(
    team: Engine, admin: Actor, clock: SteppingClock
) -> None:
    approve(team, clock, "iris", "phil")
    before = user(team, "phil")
    with pytest.raises(Refused, match="only they can change it") as err, \
            transaction(team) as s:
        reissue_enrolment(s, admin, name="phil", clock=clock)
    assert err.value.exit_code == 1
    after = user(team, "phil")
    assert (after.password_hash, after.public_key) == (before.password_hash, before.public_key)
    [refusal] = events(team, "user.reissue.refused")
    assert (refusal.user_name, refusal.entity_id) == ("alice", "phil")
    assert sign_in(team, "phil", clock).name == "phil"


def test_an_old_copy_of_the_wrapped_key_opens_nothing_sealed_after_a_password_change(
    team: Engine, admin: Actor, clock: SteppingClock
) -> None:
    approve(team, clock, "iris", "phil")
    seal(team, admin, clock, per_stratum=4)
    old = user(team, "phil")  # what a copy of the database taken now holds
    assert old.public_key and old.wrapped_private_key and old.key_kdf
    old_key = unwrap_private_key(
        CustodianKeys(old.public_key, old.wrapped_private_key, old.key_kdf), PASSWORD)
    phil = sign_in(team, "phil", clock)
    with transaction(team) as s:
        rewrapped = change_password(s, phil, current_password=PASSWORD,
                                    new_password=NEW_PASSWORD, clock=clock)
    assert rewrapped == STRATA
    with transaction(team) as s:
        extend_list(s, admin, stratum="TWH-CM", count=2, block_sizes=None, clock=clock)
    with read_only(team) as s:
        uid = s.exec(select(User.id).where(User.name == "phil")).one()
        rows = s.exec(select(ListKeyGrant, AllocationList.segment)
                      .join(AllocationList, AllocationList.id == ListKeyGrant.list_id)
                      .where(ListKeyGrant.user_id == uid)).all()
        s.expunge_all()
    assert len(rows) == STRATA + 1
    for grant, _segment in rows:  # the new segment and the re-wrapped old ones alike
        info = f"trialkit list data key {grant.list_id}".encode()
        with pytest.raises(Exception):  # noqa: B017 - HPKE refuses the wrong key
            HPKE.decrypt(grant.wrapped_key, old_key, info=info)
    new = user(team, "phil")
    assert new.public_key and new.wrapped_private_key and new.key_kdf
    new_key = unwrap_private_key(
        CustodianKeys(new.public_key, new.wrapped_private_key, new.key_kdf), NEW_PASSWORD)
    for grant, _segment in rows:
        info = f"trialkit list data key {grant.list_id}".encode()
        assert len(HPKE.decrypt(grant.wrapped_key, new_key, info=info)) == 32
    assert verify(team).ok
