"""Users and sign-in: who may be added with what, enrolment codes and activation by the
account's owner, throttling (never a lockout) after wrong passwords, keys that their owner
makes and replaces, and an audit event for every step."""

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
from trialkit.services.actor import Actor
from trialkit.services.administration.sign_in import FREE_FAILURES, delay_after, unlock_signing_key
from trialkit.services.administration.users import (
    activate_user,
    change_password,
    create_user,
    list_users,
    reissue_enrolment,
    set_disabled,
)
from trialkit.services.integrity import audit
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
    # (approval of the two custodians is a second person's step: tests/db/test_custody.py)
    add_user(engine, admin, clock, "pat", Role.PHARMACIST, sites=["TWH"], approve=False)
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR, custodian=True, approve=False)
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
    # The first admin ran init: that account's own event is theirs.
    assert added == [("alice", ADMIN), ("bob", ADMIN), ("carol", ADMIN), ("pat", ADMIN),
                     ("ivan", ADMIN), ("mark", ADMIN)]
    # Each account was activated by its owner (the event is theirs, not the admin's).
    activated = [(e.entity_id, e.user) for e in _log(engine, admin, action="user.activate")]
    assert activated == [(n, n) for n in ("bob", "carol", "pat", "ivan", "mark")]
    assert _user(engine, "bob").password_hash.startswith("$argon2id$")
    _assert_trail_verifies(engine)


WRONG_SITES_OR_CUSTODIAN = [
    (Role.COORDINATOR, [], False, "a coordinator needs at least one site"),
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
        add_user(engine, admin, clock, "mark", Role.MONITOR, password="Tq7#vLm2$pW")
    assert "mark" not in _users(engine, admin, clock)
    add_user(engine, admin, clock, "mark", Role.MONITOR, password="Tq7#vLm2$pWz")
    assert sign_in(engine, "mark", clock, password="Tq7#vLm2$pWz").name == "mark"


# Guessable passwords of twelve characters or more: repeats, the most common passwords with
# digits, keyboard walks, the person's own name, a dictionary word with a year.
WEAK = ["aaaaaaaaaaaa", "password1234", "qwertyuiop12", "mark-mark-mark-mark", "123456789012",
        "iloveyou2026", "Password1234!"]


@pytest.mark.parametrize("weak", WEAK)
def test_a_guessable_password_is_refused_however_long(
    engine: Engine, clock: SteppingClock, admin: Actor, weak: str
) -> None:
    assert len(weak) >= 12
    with pytest.raises(InvalidInput, match="too easy to guess"):
        add_user(engine, admin, clock, "mark", Role.MONITOR, password=weak)
    assert "mark" not in _users(engine, admin, clock)


def test_a_password_is_the_same_however_its_characters_are_composed(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    """NFKC at activation, at sign-in and in the key derivation: an accent typed as one
    character or as a letter plus a combining mark, full-width digits, a ligature."""
    composed = "caf\u00e9-\ufb01ddle-\uff17\uff13-horse"       # é, ﬁ, full-width 7 and 3
    decomposed = "cafe\u0301-fiddle-73-horse"
    add_user(engine, admin, clock, "pat", Role.PHARMACIST, password=composed)
    assert sign_in(engine, "pat", clock, password=decomposed).name == "pat"
    assert unwrap_private_key(_keys(_user(engine, "pat")), decomposed)
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
    # Everyone has their own signing key, also sealed under their password.
    for user in (pat, ivan):
        assert user.signing_public_key is not None and len(user.signing_public_key) == 32
        assert user.signing_public_key != user.public_key


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


def _fail(engine: Engine, name: str, clock: SteppingClock) -> Refused:
    with pytest.raises(Refused) as caught:
        sign_in(engine, name, clock, password=WRONG)
    return caught.value


def _delays(failures: int) -> list[float]:
    """The waits the rule states, computed from its words: none for the first three wrong
    passwords, then one second doubling with each further one, never more than a minute."""
    return [0.0 if n <= 3 else float(min(60, 2 ** (n - 4))) for n in range(1, failures + 1)]


def test_wrong_passwords_slow_further_attempts_but_never_lock_the_account(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "carol", Role.COORDINATOR, sites=["TWH"])
    expected = _delays(12)
    assert [delay_after(n).total_seconds() for n in range(1, 13)] == expected
    assert delay_after(1000) == timedelta(seconds=60)
    for n, wait in enumerate(expected, start=1):
        err = _fail(engine, "carol", clock)
        assert err.message == "wrong user name or password", n
        if wait:
            # Before the wait is over even the right password is not checked...
            clock.advance(seconds=wait - 1)
            with pytest.raises(AccountLocked, match="too many wrong passwords") as caught:
                sign_in(engine, "carol", clock)
            assert f"wait {1 if wait > 1 else 1} s" in caught.value.message or wait > 1
            assert _users(engine, admin, clock)["carol"].locked
            clock.advance(seconds=1)
        assert not _users(engine, admin, clock)["carol"].locked
    # ...and after it the right password works at once, however many wrong ones came before.
    assert sign_in(engine, "carol", clock).name == "carol"
    carol = _user(engine, "carol")
    assert carol.failed_logins == 0 and carol.locked_until is None
    _assert_trail_verifies(engine)


def test_the_lockout_denial_attack_on_every_custodian_fails(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    """Finding 4: five wrong passwords each for phil, pia and ivan locked every custodian out
    of emergency unblinding for 15 minutes. Now each waits a few seconds, then signs in."""
    custodians = ["phil", "pia", "ivan"]
    add_user(engine, admin, clock, "phil", Role.PHARMACIST)
    add_user(engine, admin, clock, "pia", Role.PHARMACIST)
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR, custodian=True)
    for _round in range(3):  # the attacker keeps at it
        for name in custodians:
            for _ in range(5):
                with pytest.raises(Refused):
                    sign_in(engine, name, clock, password=WRONG)
        longest = max(_delays(5 * (_round + 1)))
        clock.advance(seconds=longest)
        for name in custodians:
            assert sign_in(engine, name, clock).name == name
    assert longest <= 60


def test_an_unknown_name_is_throttled_exactly_like_a_known_one(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "carol", Role.COORDINATOR, sites=["TWH"])
    messages: dict[str, list[str]] = {"carol": [], "nobody": []}
    for _ in range(6):
        for name in messages:
            try:
                sign_in(engine, name, clock, password=WRONG)
            except Refused as err:
                messages[name].append(err.message.replace(name, "NAME"))
    assert messages["carol"] == messages["nobody"]
    assert any("too many wrong passwords" in m for m in messages["nobody"])
    failures = [e.reason for e in _log(engine, admin, action="login.fail")]
    assert "unknown user name (4 in a row)" in failures
    _assert_trail_verifies(engine)


def test_a_successful_sign_in_resets_the_failure_count(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "carol", Role.COORDINATOR, sites=["TWH"])
    for _ in range(FREE_FAILURES):
        with pytest.raises(AuthenticationFailed):
            sign_in(engine, "carol", clock, password=WRONG)
    assert _user(engine, "carol").failed_logins == FREE_FAILURES
    sign_in(engine, "carol", clock)
    assert _user(engine, "carol").failed_logins == 0
    for _ in range(FREE_FAILURES):
        with pytest.raises(AuthenticationFailed) as caught:
            sign_in(engine, "carol", clock, password=WRONG)
        assert not isinstance(caught.value, AccountLocked)
    assert sign_in(engine, "carol", clock).name == "carol"
    reasons = [e.reason for e in _log(engine, admin, action="login.fail", entity_id="carol")]
    assert reasons[-1] == f"wrong password ({FREE_FAILURES} in a row)"
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
    assert actions == ["user.add", "user.activate", "user.disable", "login.refused",
                       "user.disable.refused",
                       "user.enable", "login"]
    _assert_trail_verifies(engine)


def test_a_disabled_account_is_not_disclosed_to_a_wrong_password(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "mark", Role.MONITOR)
    with transaction(engine) as s:
        set_disabled(s, admin, name="mark", disabled=True, reason="left", clock=clock)
    with pytest.raises(AuthenticationFailed) as caught:
        sign_in(engine, "mark", clock, password=WRONG)
    assert caught.value.message == "wrong user name or password"
    assert "disabled" not in caught.value.message


def test_an_admin_cannot_disable_their_own_account(engine: Engine, clock: SteppingClock,
                                                    admin: Actor) -> None:
    before = audit_actions(engine)
    with pytest.raises(Refused, match="your own account"), transaction(engine) as s:
        set_disabled(s, admin, name=ADMIN, disabled=True, reason=None, clock=clock)
    assert audit_actions(engine) == [*before, "user.disable.refused"]
    assert not _user(engine, ADMIN).disabled


def test_enabling_a_waiting_user_lifts_the_delay(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "mark", Role.MONITOR)
    for _ in range(8):
        with pytest.raises(Refused):
            sign_in(engine, "mark", clock, password=WRONG)
    with pytest.raises(AccountLocked):
        sign_in(engine, "mark", clock)
    with transaction(engine) as s:
        set_disabled(s, admin, name="mark", disabled=False, reason="phoned the helpdesk",
                     clock=clock)
    assert sign_in(engine, "mark", clock).name == "mark"
    _assert_trail_verifies(engine)


# --- enrolment codes -----------------------------------------------------------------------


def _add(engine: Engine, admin: Actor, clock: SteppingClock, name: str, role: Role,
         **kw: Any) -> str:
    with transaction(engine) as s:
        return create_user(s, admin, name=name, role=role, sites=kw.get("sites", []),
                           custodian=kw.get("custodian", False), clock=clock).enrolment_code


def _activate(engine: Engine, clock: SteppingClock, name: str, code: str,
              password: str = PASSWORD) -> None:
    with transaction(engine) as s:
        activate_user(s, name=name, code=code, new_password=password, clock=clock)


def test_a_new_account_waits_for_its_owner_with_a_one_time_code_stored_only_as_a_hash(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    code = _add(engine, admin, clock, "pat", Role.PHARMACIST)
    pat = _user(engine, "pat")
    plain = code.replace("-", "")
    assert len(plain) == 24 and plain.isalnum()
    assert pat.activated_at is None and pat.public_key is None and pat.signing_public_key is None
    stored = [str(v) for v in pat.__dict__.values()]
    assert not any(plain in v or code in v for v in stored)
    # Nothing signs in before activation, not even with the code as the password.
    for guess in (code, PASSWORD, ""):
        with pytest.raises(AuthenticationFailed):
            sign_in(engine, "pat", clock, password=guess or WRONG)
    # The code works once, typed in lower case with spaces too.
    _activate(engine, clock, "pat", code.lower().replace("-", " "))
    assert sign_in(engine, "pat", clock).name == "pat"
    with pytest.raises(AuthenticationFailed, match="not valid for pat"):
        _activate(engine, clock, "pat", code, password=NEW_PASSWORD)
    assert sign_in(engine, "pat", clock).name == "pat"
    _assert_trail_verifies(engine)


def test_a_wrong_expired_or_unknown_code_is_refused_alike_and_audited(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    code = _add(engine, admin, clock, "pat", Role.PHARMACIST)
    other = _add(engine, admin, clock, "mark", Role.MONITOR)
    messages = []
    for name, typed in (("pat", other), ("nobody", code), ("pat", code[:-1] + "A")):
        with pytest.raises(AuthenticationFailed) as caught:
            _activate(engine, clock, name, typed)
        messages.append(caught.value.message.replace(name, "NAME"))
    clock.advance(days=7)  # a code is valid for seven days
    with pytest.raises(AuthenticationFailed) as caught:
        _activate(engine, clock, "pat", code)
    messages.append(caught.value.message.replace("pat", "NAME"))
    assert len(set(messages)) == 1, messages
    refused = [e.reason for e in _log(engine, admin, action="user.activate_refused")]
    assert refused == ["wrong code", "unknown user name", "wrong code", "expired code"]
    assert _user(engine, "pat").activated_at is None
    _assert_trail_verifies(engine)


def test_activation_records_the_owners_public_keys(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "pat", Role.PHARMACIST, approve=False)
    pat = _user(engine, "pat")
    (event,) = _log(engine, admin, action="user.activate")
    after = event.after or ""
    assert pat.signing_public_key is not None and pat.public_key is not None
    assert pat.signing_public_key.hex() in after and pat.public_key.hex() in after
    actor = sign_in(engine, "pat", clock)
    with read_only(engine) as s:
        key = unlock_signing_key(s, actor, PASSWORD)
        assert key.public_key().public_bytes_raw() == pat.signing_public_key
        with pytest.raises(AuthenticationFailed):
            unlock_signing_key(s, actor, NEW_PASSWORD)


# --- changing passwords --------------------------------------------------------------------


def test_changing_your_own_password_makes_new_key_pairs(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "pat", Role.PHARMACIST, approve=False)
    before = _user(engine, "pat")
    pat = sign_in(engine, "pat", clock)
    with transaction(engine) as s:
        change_password(s, pat, current_password=PASSWORD, new_password=NEW_PASSWORD,
                        clock=clock)
    after = _user(engine, "pat")
    assert after.public_key != before.public_key
    assert after.signing_public_key != before.signing_public_key
    with pytest.raises(AuthenticationFailed):
        unwrap_private_key(_keys(after), PASSWORD)
    key = unwrap_private_key(_keys(after), NEW_PASSWORD)
    assert key.public_key().public_bytes_raw() == after.public_key
    with pytest.raises(AuthenticationFailed):
        sign_in(engine, "pat", clock)
    assert sign_in(engine, "pat", clock, password=NEW_PASSWORD).name == "pat"
    assert [e.action for e in _log(engine, admin, entity_id="pat")] == [
        "user.add", "user.activate", "login", "user.passwd", "login.fail", "login"]
    _assert_trail_verifies(engine)


def test_changing_a_password_needs_the_current_one(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR, custodian=True)
    ivan = sign_in(engine, "ivan", clock)
    before = audit_actions(engine)
    with pytest.raises(AuthenticationFailed, match="current password"), \
            transaction(engine) as s:
        change_password(s, ivan, current_password=WRONG, new_password=NEW_PASSWORD,
                        clock=clock)
    assert audit_actions(engine) == [*before, "user.passwd.refused"]  # the wrong password
    assert sign_in(engine, "ivan", clock).name == "ivan"


def test_an_admin_cannot_reset_a_custodians_password(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "pat", Role.PHARMACIST)
    before_user, before_trail = _user(engine, "pat"), audit_actions(engine)
    with pytest.raises(Refused, match="custodian"), transaction(engine) as s:
        reissue_enrolment(s, admin, name="pat", clock=clock)
    after_user = _user(engine, "pat")
    assert after_user.password_hash == before_user.password_hash
    assert after_user.wrapped_private_key == before_user.wrapped_private_key
    assert audit_actions(engine) == [*before_trail, "user.reissue.refused"]


def test_a_forgotten_password_gets_a_new_code_never_an_admin_chosen_password(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "carol", Role.COORDINATOR, sites=["TWH"])
    old_key = _user(engine, "carol").signing_public_key
    with transaction(engine) as s:
        code = reissue_enrolment(s, admin, name="carol", clock=clock).enrolment_code
    with pytest.raises(AuthenticationFailed):
        sign_in(engine, "carol", clock)  # the old password no longer works
    _activate(engine, clock, "carol", code, password=NEW_PASSWORD)
    assert sign_in(engine, "carol", clock, password=NEW_PASSWORD).name == "carol"
    assert _user(engine, "carol").signing_public_key != old_key
    reset = _log(engine, admin, action="user.reissue")
    assert [(e.user, e.entity_id) for e in reset] == [(ADMIN, "carol")]
    assert code not in (reset[0].after or "")


def test_a_coordinator_cannot_reset_someone_elses_password(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "carol", Role.COORDINATOR, sites=["TWH"])
    carol = sign_in(engine, "carol", clock)
    with pytest.raises(PermissionDenied, match="manage users"), transaction(engine) as s:
        reissue_enrolment(s, carol, name=ADMIN, clock=clock)
    assert sign_in(engine, ADMIN, clock).name == ADMIN


# --- the whole story ---------------------------------------------------------------------


def test_a_long_history_of_user_work_is_fully_audited_and_verifies(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "carol", Role.COORDINATOR, sites=["TWH"])
    add_user(engine, admin, clock, "mark", Role.MONITOR)
    for _ in range(5):  # the fifth comes too soon after the fourth: refused unchecked
        with pytest.raises(Refused):
            sign_in(engine, "carol", clock, password=WRONG)
    with pytest.raises(AccountLocked):
        sign_in(engine, "carol", clock)
    clock.advance(minutes=1)
    carol = sign_in(engine, "carol", clock)
    with transaction(engine) as s:
        change_password(s, carol, current_password=PASSWORD, new_password=NEW_PASSWORD,
                        clock=clock)
    with transaction(engine) as s:
        code = reissue_enrolment(s, admin, name="mark", clock=clock).enrolment_code
    _activate(engine, clock, "mark", code, password=NEW_PASSWORD)
    with transaction(engine) as s:
        set_disabled(s, admin, name="mark", disabled=True, reason="left", clock=clock)
    with pytest.raises(AccountLocked):
        sign_in(engine, "mark", clock, password=NEW_PASSWORD)
    with transaction(engine) as s:
        set_disabled(s, admin, name="mark", disabled=False, reason="back", clock=clock)
    with pytest.raises(AuthenticationFailed):
        sign_in(engine, "ghost", clock)

    assert audit_actions(engine) == [
        "user.add", "trial.create", "login", "user.add", "user.activate", "user.add",
        "user.activate", "login.fail", "login.fail", "login.fail", "login.fail",
        "login.refused", "login.refused", "login", "user.passwd", "user.reissue", "user.activate",
        "user.disable", "login.refused", "user.enable", "login.fail",
    ]
    report = verify(engine)
    assert report.ok, report.problem
    assert report.events == 21
