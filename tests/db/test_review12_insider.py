"""Review of issues 12 and 13's landings as a hostile insider would try them: two sign-ins
racing with one code on two real connections, a code typed at a refused sign-in kept out of
the trail, the admin's ways around a custodian's factor (re-issuing the account, disabling
and enabling it), and the browser's activation refusing alike for every kind of name.
Expected codes come from pyotp for the secret shown to the user, at the test's clock."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import Engine

from tests.conftest import PASSWORD, SteppingClock, add_user
from tests.db.tampering import audit_actions, verify
from tests.db.test_second_factor import (  # noqa: F401 (fixtures)
    _events,
    _refused,
    _user,
    admin,
    engine,
    enrolled,
    sign_in,
)
from trialkit.domain.errors import AuthenticationFailed, InvalidInput, Refused
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.second_factor import reset_second_factor
from trialkit.services.administration.sign_in import WRONG_WITH_CODE
from trialkit.services.administration.users import (
    activate_user,
    create_user,
    reissue_enrolment,
    set_disabled,
)
from trialkit.store.db import read_only, transaction


def test_two_sign_ins_racing_on_two_connections_with_one_code_let_one_in(
    engine: Engine, clock: SteppingClock, admin: Actor  # noqa: F811
) -> None:
    """A code seen over a shoulder, typed at the same moment as its owner types it: two
    threads, two connections, released together. Exactly one signs in; the other is
    refused with the usual words and recorded as a second-factor failure."""
    phone = enrolled(engine, admin, clock, "pia")
    code = phone.at(clock.now())
    fails_before = len(_events(engine, "login.fail"))
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt() -> None:
        start.wait()
        try:
            sign_in(engine, "pia", clock, code)
            outcomes.append("in")
        except AuthenticationFailed as exc:
            outcomes.append(exc.message)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcomes) == ["in", WRONG_WITH_CODE]
    fails = _events(engine, "login.fail")[fails_before:]
    assert len(fails) == 1 and "second factor" in (fails[0].reason or "")
    assert verify(engine).ok


def test_a_refused_code_is_recorded_without_the_code(
    engine: Engine, clock: SteppingClock, admin: Actor  # noqa: F811
) -> None:
    """Wrong, reused and missing codes each leave a login.fail naming the second factor,
    and none of the digits typed (the next one may be a neighbour of the real code)."""
    phone = enrolled(engine, admin, clock, "pia")
    good = phone.at(clock.now())
    wrong = "000000" if good != "000000" else "111111"
    sign_in(engine, "pia", clock, good)
    before = len(_events(engine, "login.fail"))
    for typed in (wrong, good, None):  # wrong, the spent one again, none
        assert _refused(engine, "pia", clock, typed) == WRONG_WITH_CODE
    fails = _events(engine, "login.fail")[before:]
    assert len(fails) == 3
    for event in fails:
        assert "second factor" in (event.reason or "")
        recorded = f"{event.before_json} {event.after_json} {event.reason} {event.entity_id}"
        assert good not in recorded and wrong not in recorded


def test_the_admin_cannot_clear_a_custodians_factor_by_reissuing_or_re_enabling(
    engine: Engine, clock: SteppingClock, admin: Actor  # noqa: F811
) -> None:
    """The admin's tools on someone else's account: re-issuing an enrolment code (which
    clears a factor) is refused for an activated custodian and recorded; disabling and
    enabling the account leaves the factor in place, so her password alone still fails."""
    phone = enrolled(engine, admin, clock, "pia")
    assert _user(engine, "pia").custodian
    with pytest.raises(Refused, match="custodian"), transaction(engine) as s:
        reissue_enrolment(s, admin, name="pia", clock=clock)
    assert "user.reissue.refused" in audit_actions(engine)
    with transaction(engine) as s:
        set_disabled(s, admin, name="pia", disabled=True, reason="leave", clock=clock)
    with transaction(engine) as s:
        set_disabled(s, admin, name="pia", disabled=False, reason="back", clock=clock)
    assert _user(engine, "pia").totp_wrapped is not None
    assert _refused(engine, "pia", clock, None) == WRONG_WITH_CODE
    sign_in(engine, "pia", clock, phone.at(clock.now()))
    assert verify(engine).ok


def test_activation_refuses_every_kind_of_name_in_the_same_words_and_records_it(
    engine: Engine, clock: SteppingClock, admin: Actor  # noqa: F811
) -> None:
    """What the browser's activation form hands the service: an unknown name, an account
    already active, a disabled one, a pending one with a wrong code, and a name with a
    terminal escape in it are all refused with one sentence (only the name typed differs)
    and each refusal is on the record."""
    add_user(engine, admin, clock, "cora", Role.COORDINATOR, sites=["TWH"])
    with transaction(engine) as s:
        dora = create_user(s, admin, name="dora", role=Role.COORDINATOR, sites=["TWH"],
                           custodian=False, clock=clock)
        create_user(s, admin, name="nell", role=Role.COORDINATOR, sites=["TWH"],
                    custodian=False, clock=clock)
    with transaction(engine) as s:
        set_disabled(s, admin, name="dora", disabled=True, reason="left", clock=clock)
    before = audit_actions(engine).count("user.activate_refused")
    said = {}
    for name, code in [("mallory", dora.enrolment_code), ("cora", dora.enrolment_code),
                       ("dora", dora.enrolment_code), ("nell", dora.enrolment_code),
                       ("nell\x1b[2J", dora.enrolment_code)]:
        with pytest.raises(AuthenticationFailed) as caught, transaction(engine) as s:
            activate_user(s, name=name, code=code, new_password="quartz-meadow-lantern-81",
                          clock=clock)
        said[name] = caught.value.message.replace(repr(name), "NAME").replace(name, "NAME")
    assert len(set(said.values())) == 1, said
    assert audit_actions(engine).count("user.activate_refused") == before + 5
    assert _user(engine, "dora").activated_at is None
    assert _user(engine, "nell").activated_at is None
    assert verify(engine).ok


def test_a_weak_password_at_activation_spends_nothing(
    engine: Engine, clock: SteppingClock, admin: Actor  # noqa: F811
) -> None:
    """The right code with a password the estimator refuses: the code stays valid."""
    with transaction(engine) as s:
        nell = create_user(s, admin, name="nell", role=Role.COORDINATOR, sites=["TWH"],
                           custodian=False, clock=clock)
    with pytest.raises(InvalidInput), transaction(engine) as s:
        activate_user(s, name="nell", code=nell.enrolment_code, new_password="password1234",
                      clock=clock)
    with transaction(engine) as s:
        activate_user(s, name="nell", code=nell.enrolment_code, new_password=PASSWORD + "x",
                      clock=clock)
    assert _user(engine, "nell").activated_at is not None


def test_a_spent_step_rolled_back_in_the_database_is_refused_or_found(
    engine: Engine, clock: SteppingClock, admin: Actor  # noqa: F811
) -> None:
    """A DBA with write access and a code seen over the custodian's shoulder (within the
    code's drift window): the spent step is set back to NULL, and the same code typed
    again. Either the sign-in is refused, or verify reports the row changed outside the
    application."""
    from sqlalchemy import update

    from trialkit.store.models import User

    phone = enrolled(engine, admin, clock, "pia")
    code = phone.at(clock.now())
    sign_in(engine, "pia", clock, code)
    with engine.begin() as c:
        c.execute(update(User).where(User.name == "pia")  # type: ignore[arg-type]
                  .values(totp_last_step=None))
    try:
        sign_in(engine, "pia", clock, code)
    except AuthenticationFailed:
        return
    report = verify(engine)
    assert not report.ok
    first, second = [e.seq for e in _events(engine, "login") if e.entity_id == "pia"
                     and e.after_json is not None][-2:]
    # one line naming the user and both sign-ins that recorded the same step
    assert report.bad_seq == second
    assert report.problem is not None and "\n" not in report.problem
    assert "'pia'" in report.problem
    assert f"event {second}" in report.problem and f"event {first}" in report.problem


def _steps(engine: Engine, name: str) -> list[int | None]:  # noqa: F811
    """The time steps the signed ``login`` events recorded for ``name``, in order."""
    return [json.loads(e.after_json).get("totp_step") for e in _events(engine, "login")
            if e.entity_id == name and e.after_json is not None]


def _rfc6238_step(at: datetime) -> int:
    """RFC 6238's T for the default T0 = 0 and X = 30 s: floor(Unix time / 30)."""
    return int(at.timestamp()) // 30


def test_each_sign_in_records_its_time_step_and_never_the_code(
    engine: Engine, clock: SteppingClock, admin: Actor  # noqa: F811
) -> None:
    """Two sign-ins a minute apart: each signed login event records the step of the code
    accepted (RFC 6238's T), strictly rising, and neither the code nor the secret."""
    phone = enrolled(engine, admin, clock, "pia")
    expected, typed = [], []
    for _ in range(2):
        typed.append(phone.at(clock.now()))
        expected.append(_rfc6238_step(clock.now()))
        sign_in(engine, "pia", clock, typed[-1])
        clock.advance(seconds=60)
    assert _steps(engine, "pia") == expected
    assert expected[1] == expected[0] + 2
    for event in _events(engine, "login"):
        recorded = f"{event.before_json} {event.after_json} {event.reason}"
        assert phone.secret not in recorded
        assert not any(f'"{code}"' in recorded or f" {code}" in recorded for code in typed)
    assert verify(engine).ok


@pytest.mark.parametrize("set_to", [None, -1])
def test_a_step_set_back_with_no_sign_in_after_is_found(
    engine: Engine, clock: SteppingClock, admin: Actor, set_to: int | None  # noqa: F811
) -> None:
    """The DBA sets the step back (to nothing, or one step earlier) and nobody signs in yet:
    the row no longer matches what pia's last signed event recorded."""
    from sqlalchemy import update

    from trialkit.store.models import User

    phone = enrolled(engine, admin, clock, "pia")
    sign_in(engine, "pia", clock, phone.at(clock.now()))
    spent = _rfc6238_step(clock.now())
    with engine.begin() as c:
        c.execute(update(User).where(User.name == "pia")  # type: ignore[arg-type]
                  .values(totp_last_step=None if set_to is None else spent + set_to))
    report = verify(engine)
    assert not report.ok
    assert report.problem is not None and "user 'pia'" in report.problem


def test_a_reset_and_new_enrolment_in_the_same_half_minute_is_not_taken_for_a_replay(
    engine: Engine, clock: SteppingClock, admin: Actor  # noqa: F811
) -> None:
    """A lost phone: phil resets pia's factor and she enrols a new one within the same 30 s
    as her last sign-in, then signs in again. Her steps start again from the enrolment; the
    trail is sound."""
    from trialkit.services.administration.second_factor import (
        enrol_second_factor,
        offer_second_factor,
    )

    phone = enrolled(engine, admin, clock, "pia")
    phil_app = enrolled(engine, admin, clock, "phil")
    sign_in(engine, "pia", clock, phone.at(clock.now()))
    phil = sign_in(engine, "phil", clock, phil_app.at(clock.now()))
    with transaction(engine) as s:
        reset_second_factor(s, phil, name="pia", reason="phone lost", clock=clock)
    pia = sign_in(engine, "pia", clock)
    with read_only(engine) as s:
        offer = offer_second_factor(s, pia)
    new_phone = pyotp.TOTP(offer.secret)
    with transaction(engine) as s:  # the same step as her last sign-in, on a new secret
        enrol_second_factor(s, pia, password=PASSWORD, secret=offer.secret,
                            code=new_phone.at(clock.now()), clock=clock)
    clock.advance(seconds=30)
    sign_in(engine, "pia", clock, new_phone.at(clock.now()))
    assert verify(engine).ok


def test_wrong_codes_sent_in_parallel_are_each_counted(
    engine: Engine, clock: SteppingClock, admin: Actor  # noqa: F811
) -> None:
    """Someone holding pia's password but not her phone sends six guesses at once, hoping
    parallel requests slip past the failure count (which sets the delay): each is refused,
    counted and recorded."""
    phone = enrolled(engine, admin, clock, "pia")
    good = phone.at(clock.now())
    guesses = [f"{(int(good) + k) % 1_000_000:06d}" for k in range(1, 7)]
    start = threading.Barrier(len(guesses))
    said: list[str] = []

    def attempt(code: str) -> None:
        start.wait()
        try:
            sign_in(engine, "pia", clock, code)
            said.append("in")
        except Exception as exc:  # noqa: BLE001 (what reaches the face is the point)
            said.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=attempt, args=(g,)) for g in guesses]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(said) == len(guesses)
    assert all(s == f"SignInRefused: {WRONG_WITH_CODE}" or
               s.startswith("SignInLocked: too many wrong passwords for 'pia': wait")
               for s in said), said
    user = _user(engine, "pia")
    fails = [e for e in _events(engine, "login.fail") if e.entity_id == "pia"]
    refused = [e for e in _events(engine, "login.refused") if e.entity_id == "pia"]
    # every guess is either counted as a failure or refused while waiting, on the record
    assert len(fails) + len(refused) == len(guesses)
    assert user.failed_logins == len(fails) >= 4  # a delay set after the fourth
    assert user.locked_until is not None


def test_a_custodian_without_a_factor_cannot_unlock_the_custodian_key_with_the_password(
    engine: Engine, clock: SteppingClock, admin: Actor  # noqa: F811
) -> None:
    """The protocol asks custodians for a second factor; pia, an approved custodian, has
    not enrolled one yet and signs in with her password alone. Her custodian key (which
    opens envelopes and list keys) is refused with the words telling her to enrol first,
    and the refusal is recorded; once enrolled, the same password unlocks it."""
    from trialkit.services.administration.custody import custodian_private_key
    from trialkit.services.administration.second_factor import (
        enrol_second_factor,
        offer_second_factor,
    )

    add_user(engine, admin, clock, "pia", Role.PHARMACIST, sites=["TWH"])
    assert _user(engine, "pia").custodian and _user(engine, "pia").totp_wrapped is None
    pia = sign_in(engine, "pia", clock)
    before = audit_actions(engine).count("custodian.key.refused")
    with pytest.raises(Refused, match=r"enrol it first") as caught, transaction(engine) as s:
        custodian_private_key(s, pia, PASSWORD)
    assert "second factor" in caught.value.message
    assert audit_actions(engine).count("custodian.key.refused") == before + 1
    # the key's refusal is recorded at the system's time (it takes no clock): go on after it
    clock.at = datetime.now(UTC) + timedelta(minutes=1)
    with read_only(engine) as s:
        offer = offer_second_factor(s, pia)
    with transaction(engine) as s:
        enrol_second_factor(s, pia, password=PASSWORD, secret=offer.secret,
                            code=pyotp.TOTP(offer.secret).at(clock.now()), clock=clock)
    with read_only(engine) as s:
        assert custodian_private_key(s, pia, PASSWORD) is not None
    assert verify(engine).ok
