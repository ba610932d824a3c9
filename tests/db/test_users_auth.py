"""Users and sign-in: who may be added with what, lockout after five wrong passwords,
custodian keys that follow their owner's password, and an audit event for every step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from tests.conftest import ADMIN, PASSWORD, SteppingClock, add_user, sign_in
from tests.db.tampering import audit_actions, verify
from trialkit.domain import passwords
from trialkit.domain.errors import (
    AccountLocked,
    AuthenticationFailed,
    InvalidInput,
    PermissionDenied,
    Refused,
)
from trialkit.domain.roles import Role
from trialkit.domain.sealing import CustodianKeys, unwrap_private_key
from trialkit.services import audit
from trialkit.services.actor import Actor
from trialkit.services.auth import LOCKOUT, MAX_FAILURES
from trialkit.services.users import change_password, list_users, set_disabled
from trialkit.store.db import read_only, transaction
from trialkit.store.models import User

WRONG = "not-the-password"
NEW_PASSWORD = "staple-battery-horse-correct"


def _user(engine: Engine, name: str) -> User:
    with read_only(engine) as s:
        user = s.exec(select(User).where(User.name == name)).one()
        s.expunge(user)  # keep its loaded values past the read's rollback
    return user


def _keys(user: User) -> CustodianKeys:
    assert user.public_key and user.wrapped_private_key and user.key_kdf
    return CustodianKeys(user.public_key, user.wrapped_private_key, user.key_kdf)


def _users(engine: Engine, actor: Actor, clock: SteppingClock) -> dict[str, Any]:
    with read_only(engine) as s:
        return {u.name: u for u in list_users(s, actor, clock=clock)}


def _assert_trail_verifies(engine: Engine) -> None:
    report = verify(engine)
    assert report.ok, report.problem


def _log(engine: Engine, admin: Actor, **filters: Any) -> list[audit.LogEntry]:
    with read_only(engine) as s:
        return audit.log(s, admin, **filters)


# --- adding users ------------------------------------------------------------------------


def test_admin_adds_a_user_of_every_role(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "bob", Role.ADMIN)
    add_user(engine, admin, clock, "carol", Role.COORDINATOR, sites=["twh", " SHS "])
    add_user(engine, admin, clock, "pat", Role.PHARMACIST, sites=["TWH"])
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR, custodian=True)
    add_user(engine, admin, clock, "mark", Role.MONITOR)

    users = _users(engine, admin, clock)
    assert {name: (u.role, u.sites, u.custodian) for name, u in users.items()} == {
        "alice": ("admin", (), False),
        "bob": ("admin", (), False),
        "carol": ("coordinator", ("SHS", "TWH"), False),
        "pat": ("pharmacist", ("TWH",), True),
        "ivan": ("investigator", (), True),
        "mark": ("monitor", (), False),
    }
    added = [(e.entity_id, e.user) for e in _log(engine, admin, action="user.add")]
    assert added == [("alice", "system"), ("bob", ADMIN), ("carol", ADMIN), ("pat", ADMIN),
                     ("ivan", ADMIN), ("mark", ADMIN)]
    assert _user(engine, "bob").password_hash.startswith("$argon2id$")
    _assert_trail_verifies(engine)


WRONG_SITES_OR_CUSTODIAN = [
    (Role.COORDINATOR, [], False, "a coordinator needs at least one --site"),
    (Role.COORDINATOR, ["XYZ"], False, "unknown site 'XYZ': this trial has SHS, TWH"),
    (Role.MONITOR, ["TWH"], False, "a monitor is not bound to sites"),
    (Role.INVESTIGATOR, ["TWH"], False, "an investigator is not bound to sites"),
    (Role.ADMIN, ["SHS"], False, "an admin is not bound to sites"),
    (Role.COORDINATOR, ["TWH"], True, "only an investigator can be made a custodian"),
    (Role.MONITOR, [], True, "only an investigator can be made a custodian"),
]


def test_a_user_with_the_wrong_sites_or_custodian_flag_is_refused(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    before = audit_actions(engine)
    unclear = []
    for role, sites, custodian, message in WRONG_SITES_OR_CUSTODIAN:
        with pytest.raises(InvalidInput) as caught:
            add_user(engine, admin, clock, "newbie", role, sites=sites, custodian=custodian)
        if message not in caught.value.message:
            unclear.append((message, caught.value.message))
    assert set(_users(engine, admin, clock)) == {ADMIN}
    assert audit_actions(engine) == before
    assert unclear == []


def test_a_duplicate_user_name_is_refused(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "mark", Role.MONITOR)
    before = audit_actions(engine)
    with pytest.raises(Refused, match="a user named 'mark' already exists") as caught:
        add_user(engine, admin, clock, "mark", Role.ADMIN)
    assert not isinstance(caught.value, InvalidInput)
    assert _users(engine, admin, clock)["mark"].role == "monitor"
    assert audit_actions(engine) == [*before, "user.add.refused"]  # the refusal, nothing else


def test_a_password_shorter_than_twelve_characters_is_refused(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    with pytest.raises(InvalidInput, match="at least 12 characters"):
        add_user(engine, admin, clock, "mark", Role.MONITOR, password="x" * 11)
    assert "mark" not in _users(engine, admin, clock)
    add_user(engine, admin, clock, "mark", Role.MONITOR, password="x" * 12)
    assert sign_in(engine, "mark", clock, password="x" * 12).name == "mark"


def test_an_invalid_user_name_is_refused(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    for name in ["Bob", "1bob", "b", "bob smith", "b" * 33, "", "bob@site", "-bob", "élise"]:
        with pytest.raises(InvalidInput, match="user name"):
            add_user(engine, admin, clock, name, Role.MONITOR)
    assert set(_users(engine, admin, clock)) == {ADMIN}
    add_user(engine, admin, clock, "b.o_b-2", Role.MONITOR)
    assert "b.o_b-2" in _users(engine, admin, clock)


def test_only_an_admin_may_add_users(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    for role in (Role.COORDINATOR, Role.PHARMACIST, Role.INVESTIGATOR, Role.MONITOR):
        name = f"a-{role.value}"
        add_user(engine, admin, clock, name, role,
                 sites=["TWH"] if role is Role.COORDINATOR else [])
        someone = sign_in(engine, name, clock)
        before = audit_actions(engine)
        with pytest.raises(PermissionDenied) as caught:
            add_user(engine, someone, clock, "friend", Role.ADMIN)
        assert caught.value.message == f"{name} ({role.value}) lacks the permission to manage users"
        assert audit_actions(engine) == [*before, "user.add.refused"]  # rule 3
    assert "friend" not in _users(engine, admin, clock)


def test_a_pharmacist_is_always_a_custodian_with_a_key_sealed_under_their_password(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "pat", Role.PHARMACIST, custodian=False)
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR)
    pat, ivan = _user(engine, "pat"), _user(engine, "ivan")
    assert pat.custodian and pat.public_key is not None and len(pat.public_key) == 32
    private = unwrap_private_key(_keys(pat), PASSWORD)
    assert private.public_key().public_bytes_raw() == pat.public_key
    assert PASSWORD.encode() not in pat.wrapped_private_key  # type: ignore[operator]
    assert not ivan.custodian and ivan.public_key is None and ivan.wrapped_private_key is None


# --- signing in ----------------------------------------------------------------------------


class _Argon2Spy:
    """Stands in for ``Argon2id`` inside trialkit.domain.passwords and notes every hash that
    a password is checked against."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.checked: list[str] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.real(*args, **kwargs)

    def verify_phc_encoded(self, key: bytes, phc: str) -> None:
        self.checked.append(phc)
        self.real.verify_phc_encoded(key, phc)


def test_an_unknown_user_name_costs_the_same_hash_check_as_a_wrong_password(
    engine: Engine, clock: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Argon2Spy(passwords.Argon2id)
    monkeypatch.setattr(passwords, "Argon2id", spy)

    with pytest.raises(AuthenticationFailed) as unknown:
        sign_in(engine, "nobody", clock, password=WRONG)
    dummy = passwords._dummy_hash()
    assert spy.checked == [dummy]
    with pytest.raises(AuthenticationFailed) as wrong:
        sign_in(engine, ADMIN, clock, password=WRONG)
    assert spy.checked == [dummy, _user(engine, ADMIN).password_hash]
    assert unknown.value.message == wrong.value.message == "wrong user name or password"
    # Same algorithm and cost for the dummy as for a real stored hash.
    assert dummy.split("$")[1:4] == spy.checked[1].split("$")[1:4]
    assert audit_actions(engine)[-2:] == ["login.fail", "login.fail"]
    _assert_trail_verifies(engine)


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "carol", Role.COORDINATOR, sites=["TWH"])
    assert MAX_FAILURES == 5 and timedelta(minutes=15) == LOCKOUT
    for _ in range(4):
        clock.advance(seconds=10)
        with pytest.raises(AuthenticationFailed) as caught:
            sign_in(engine, "carol", clock, password=WRONG)
        assert not isinstance(caught.value, AccountLocked)
    clock.advance(seconds=10)
    locked_at = clock.now()
    with pytest.raises(AccountLocked, match="locked for 15 minutes"):
        sign_in(engine, "carol", clock, password=WRONG)
    assert _user(engine, "carol").locked_until == locked_at + timedelta(minutes=15)
    assert _users(engine, admin, clock)["carol"].locked

    # The right password does not open a locked account, up to the last second.
    with pytest.raises(AccountLocked):
        sign_in(engine, "carol", clock)
    clock.at = locked_at + timedelta(minutes=15) - timedelta(seconds=1)
    with pytest.raises(AccountLocked):
        sign_in(engine, "carol", clock)
    clock.at = locked_at + timedelta(minutes=15)
    assert not _users(engine, admin, clock)["carol"].locked
    assert sign_in(engine, "carol", clock).name == "carol"

    carol = _user(engine, "carol")
    assert carol.failed_logins == 0 and carol.locked_until is None
    assert [e.action for e in _log(engine, admin, entity_id="carol")] == [
        "user.add", "login.fail", "login.fail", "login.fail", "login.fail", "login.lock",
        "login.refused", "login.refused", "login",
    ]
    _assert_trail_verifies(engine)


def test_a_successful_sign_in_resets_the_failure_count(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "carol", Role.COORDINATOR, sites=["TWH"])
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(AuthenticationFailed):
            sign_in(engine, "carol", clock, password=WRONG)
    assert _user(engine, "carol").failed_logins == MAX_FAILURES - 1
    sign_in(engine, "carol", clock)
    assert _user(engine, "carol").failed_logins == 0
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(AuthenticationFailed) as caught:
            sign_in(engine, "carol", clock, password=WRONG)
        assert not isinstance(caught.value, AccountLocked)
    assert sign_in(engine, "carol", clock).name == "carol"
    reasons = [e.reason for e in _log(engine, admin, action="login.fail", entity_id="carol")]
    assert reasons[-1] == f"wrong password ({MAX_FAILURES - 1} in a row)"
    _assert_trail_verifies(engine)


def test_a_disabled_user_cannot_sign_in_until_enabled(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "mark", Role.MONITOR)
    with transaction(engine) as s:
        set_disabled(s, admin, name="mark", disabled=True, reason="left", clock=clock)
    with pytest.raises(AccountLocked, match="disabled"):
        sign_in(engine, "mark", clock)
    assert _users(engine, admin, clock)["mark"].disabled
    with pytest.raises(Refused, match="already disabled"), transaction(engine) as s:
        set_disabled(s, admin, name="mark", disabled=True, reason=None, clock=clock)
    with transaction(engine) as s:
        set_disabled(s, admin, name="mark", disabled=False, reason="back", clock=clock)
    assert sign_in(engine, "mark", clock).name == "mark"
    actions = [e.action for e in _log(engine, admin, entity_id="mark")]
    assert actions == ["user.add", "user.disable", "login.refused", "user.disable.refused",
                       "user.enable", "login"]
    _assert_trail_verifies(engine)


def test_an_admin_cannot_disable_their_own_account(engine: Engine, clock: SteppingClock,
                                                    admin: Actor) -> None:
    before = audit_actions(engine)
    with pytest.raises(Refused, match="your own account"), transaction(engine) as s:
        set_disabled(s, admin, name=ADMIN, disabled=True, reason=None, clock=clock)
    assert audit_actions(engine) == [*before, "user.disable.refused"]
    assert not _user(engine, ADMIN).disabled


def test_enabling_a_locked_out_user_lifts_the_lockout(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "mark", Role.MONITOR)
    for _ in range(MAX_FAILURES):
        with pytest.raises(Refused):
            sign_in(engine, "mark", clock, password=WRONG)
    with pytest.raises(AccountLocked):
        sign_in(engine, "mark", clock)
    with transaction(engine) as s:
        set_disabled(s, admin, name="mark", disabled=False, reason="phoned the helpdesk",
                     clock=clock)
    assert sign_in(engine, "mark", clock).name == "mark"
    _assert_trail_verifies(engine)


# --- changing passwords --------------------------------------------------------------------


def test_changing_your_own_password_reseals_your_custodian_key(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "pat", Role.PHARMACIST)
    before = _user(engine, "pat")
    pat = sign_in(engine, "pat", clock)
    with transaction(engine) as s:
        change_password(s, pat, name="pat", new_password=NEW_PASSWORD,
                        current_password=PASSWORD, clock=clock)
    after = _user(engine, "pat")
    assert after.public_key == before.public_key
    with pytest.raises(AuthenticationFailed):
        unwrap_private_key(_keys(after), PASSWORD)
    key = unwrap_private_key(_keys(after), NEW_PASSWORD)
    assert key.public_key().public_bytes_raw() == before.public_key
    with pytest.raises(AuthenticationFailed):
        sign_in(engine, "pat", clock)
    assert sign_in(engine, "pat", clock, password=NEW_PASSWORD).name == "pat"
    assert [e.action for e in _log(engine, admin, entity_id="pat")] == [
        "user.add", "login", "user.passwd", "login.fail", "login"]
    _assert_trail_verifies(engine)


def test_a_custodian_needs_the_current_password_to_change_it(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR, custodian=True)
    ivan = sign_in(engine, "ivan", clock)
    before = audit_actions(engine)
    with pytest.raises(InvalidInput, match="current password"), transaction(engine) as s:
        change_password(s, ivan, name="ivan", new_password=NEW_PASSWORD,
                        current_password=None, clock=clock)
    with pytest.raises(AuthenticationFailed), transaction(engine) as s:
        change_password(s, ivan, name="ivan", new_password=NEW_PASSWORD,
                        current_password=WRONG, clock=clock)
    assert audit_actions(engine) == [*before, "user.passwd.refused"]  # the wrong password
    assert sign_in(engine, "ivan", clock).name == "ivan"


def test_an_admin_cannot_reset_a_custodians_password(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "pat", Role.PHARMACIST)
    before_user, before_trail = _user(engine, "pat"), audit_actions(engine)
    with pytest.raises(Refused, match="custodian"), transaction(engine) as s:
        change_password(s, admin, name="pat", new_password=NEW_PASSWORD,
                        current_password=None, clock=clock)
    after_user = _user(engine, "pat")
    assert after_user.password_hash == before_user.password_hash
    assert after_user.wrapped_private_key == before_user.wrapped_private_key
    assert audit_actions(engine) == [*before_trail, "user.passwd.refused"]


def test_an_admin_resets_a_forgotten_password_and_it_is_audited(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "carol", Role.COORDINATOR, sites=["TWH"])
    with transaction(engine) as s:
        change_password(s, admin, name="carol", new_password=NEW_PASSWORD,
                        current_password=None, clock=clock)
    assert sign_in(engine, "carol", clock, password=NEW_PASSWORD).name == "carol"
    reset = _log(engine, admin, action="user.reset_password")
    assert [(e.user, e.entity_id) for e in reset] == [(ADMIN, "carol")]
    assert reset[0].before != reset[0].after
    assert PASSWORD not in (reset[0].after or "") and NEW_PASSWORD not in (reset[0].after or "")


def test_a_coordinator_cannot_reset_someone_elses_password(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "carol", Role.COORDINATOR, sites=["TWH"])
    carol = sign_in(engine, "carol", clock)
    with pytest.raises(PermissionDenied, match="manage users"), transaction(engine) as s:
        change_password(s, carol, name=ADMIN, new_password=NEW_PASSWORD,
                        current_password=None, clock=clock)
    assert sign_in(engine, ADMIN, clock).name == ADMIN


# --- the whole story ---------------------------------------------------------------------


def test_a_long_history_of_user_work_is_fully_audited_and_verifies(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "carol", Role.COORDINATOR, sites=["TWH"])
    add_user(engine, admin, clock, "mark", Role.MONITOR)
    for _ in range(MAX_FAILURES):
        clock.advance(minutes=1)
        with pytest.raises(Refused):
            sign_in(engine, "carol", clock, password=WRONG)
    with pytest.raises(AccountLocked):
        sign_in(engine, "carol", clock)
    clock.advance(minutes=16)
    carol = sign_in(engine, "carol", clock)
    with transaction(engine) as s:
        change_password(s, carol, name="carol", new_password=NEW_PASSWORD,
                        current_password=PASSWORD, clock=clock)
    with transaction(engine) as s:
        change_password(s, admin, name="mark", new_password=NEW_PASSWORD,
                        current_password=None, clock=clock)
    with transaction(engine) as s:
        set_disabled(s, admin, name="mark", disabled=True, reason="left", clock=clock)
    with pytest.raises(AccountLocked):
        sign_in(engine, "mark", clock, password=NEW_PASSWORD)
    with transaction(engine) as s:
        set_disabled(s, admin, name="mark", disabled=False, reason="back", clock=clock)
    with pytest.raises(AuthenticationFailed):
        sign_in(engine, "ghost", clock)

    assert audit_actions(engine) == [
        "trial.create", "user.add", "login", "user.add", "user.add",
        "login.fail", "login.fail", "login.fail", "login.fail", "login.lock", "login.refused",
        "login", "user.passwd", "user.reset_password", "user.disable", "login.refused",
        "user.enable", "login.fail",
    ]
    report = verify(engine)
    assert report.ok, report.problem
    assert report.events == 18
