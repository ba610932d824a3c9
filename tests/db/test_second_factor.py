"""A custodian's second factor (TOTP) where the protocol asks for one: enrolment by the
custodian only, the code at sign-in (missing, wrong and reused codes refused, counted and
audited like a wrong password), a secret a database copy does not give away, a password
change that keeps the phone working, and the lost phone: a second custodian, never the
admin. Expected codes come from pyotp (the maintained library an authenticator app
agrees with) for the secret shown to the user, at the test's clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import Engine, update
from sqlalchemy import text as sql
from sqlmodel import select

from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock, add_user
from tests.db.tampering import audit_actions, verify
from tests.db.test_store_types import migrate
from trialkit.domain import key_wrap
from trialkit.domain.errors import AuthenticationFailed, PermissionDenied, Refused
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.second_factor import (
    enrol_second_factor,
    offer_second_factor,
    reset_second_factor,
)
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.sign_in import WRONG_WITH_CODE, login
from trialkit.services.administration.users import change_password
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.store.models import AuditEvent, User

NEW_PASSWORD = "staple-battery-horse-correct"


@pytest.fixture
def engine(db_url: str, clock: SteppingClock, tmp_path: Path) -> Iterator[Engine]:
    """KetHead with ``[security] custodian_totp = true``, its admin alice."""
    text = KETHEAD.read_text().replace("custodian_totp = false", "custodian_totp = true")
    assert "custodian_totp = true" in text
    protocol = tmp_path / "kethead-totp.toml"
    protocol.write_text(text)
    eng = make_engine(db_url, must_exist=False)
    initialize(eng, load_protocol(protocol), admin=ADMIN, admin_password=PASSWORD,
               training=False, clock=clock)
    yield eng
    eng.dispose()


def sign_in(engine: Engine, name: str, clock: SteppingClock, code: str | None = None,
            password: str = PASSWORD) -> Actor:
    with transaction(engine) as s:
        return login(s, name, password, clock=clock, code=code)


@pytest.fixture
def admin(engine: Engine, clock: SteppingClock) -> Actor:
    return sign_in(engine, ADMIN, clock)


def enrolled(engine: Engine, admin: Actor, clock: SteppingClock, name: str) -> pyotp.TOTP:
    """Add pharmacist ``name`` (approved), who enrols a factor as the CLI does: the secret
    shown once, the app's current code typed back. Returns the app's view of it."""
    add_user(engine, admin, clock, name, Role.PHARMACIST, sites=["TWH"])
    actor = sign_in(engine, name, clock)
    with read_only(engine) as s:
        offer = offer_second_factor(s, actor)
    app = pyotp.TOTP(offer.secret)  # what the phone computes from the scanned secret
    with transaction(engine) as s:
        enrol_second_factor(s, actor, password=PASSWORD, secret=offer.secret,
                            code=app.at(clock.now()), clock=clock)
    clock.advance(seconds=30)  # the enrolment spent this step's code
    return app


def _user(engine: Engine, name: str) -> User:
    with read_only(engine) as s:
        user = s.exec(select(User).where(User.name == name)).one()
        s.expunge(user)
    return user


def _refused(engine: Engine, name: str, clock: SteppingClock, code: str | None,
             password: str = PASSWORD) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        sign_in(engine, name, clock, code, password)
    return caught.value.message


def _events(engine: Engine, action: str) -> list[AuditEvent]:
    with read_only(engine) as s:
        rows = s.exec(select(AuditEvent).where(AuditEvent.action == action)).all()
        for r in rows:
            s.expunge(r)
    return list(rows)


def test_a_custodian_with_a_factor_needs_a_current_code_and_each_code_works_once(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    app = enrolled(engine, admin, clock, "pia")
    assert _refused(engine, "pia", clock, None) == WRONG_WITH_CODE
    assert _refused(engine, "pia", clock, "") == WRONG_WITH_CODE
    wrong = f"{(int(app.at(clock.now())) + 1) % 1_000_000:06d}"
    assert _refused(engine, "pia", clock, wrong) == WRONG_WITH_CODE
    code = app.at(clock.now())
    assert sign_in(engine, "pia", clock, code).name == "pia"
    assert _refused(engine, "pia", clock, code) == WRONG_WITH_CODE  # replayed in its window
    clock.advance(seconds=10)
    assert _refused(engine, "pia", clock, code) == WRONG_WITH_CODE
    clock.advance(seconds=30)
    assert sign_in(engine, "pia", clock, app.at(clock.now())).name == "pia"
    # a code from two steps ago, never used, is too old
    clock.advance(seconds=90)
    assert _refused(engine, "pia", clock, app.at(clock.now(), counter_offset=-2)) \
        == WRONG_WITH_CODE
    fails = _events(engine, "login.fail")
    assert len(fails) == 6
    assert all("second factor" in (e.reason or "") for e in fails)
    assert verify(engine).ok


def test_second_factor_failures_slow_further_attempts_like_wrong_passwords(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    app = enrolled(engine, admin, clock, "pia")
    for n in range(1, 5):
        _refused(engine, "pia", clock, None)
        assert _user(engine, "pia").failed_logins == n
    with pytest.raises(Refused, match="wait 1 s"):
        sign_in(engine, "pia", clock, app.at(clock.now()))
    clock.advance(seconds=1)
    assert sign_in(engine, "pia", clock, app.at(clock.now())).name == "pia"
    assert _user(engine, "pia").failed_logins == 0


def test_wording_and_work_do_not_tell_who_has_a_factor(
    engine: Engine, clock: SteppingClock, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown name, a coordinator, a custodian without a factor and one with a factor
    are refused in the same words after a wrong password, and none of those attempts opens
    a wrapped secret (the costly key derivation happens only after a right password)."""
    enrolled(engine, admin, clock, "pia")
    add_user(engine, admin, clock, "phil", Role.PHARMACIST, sites=["SHS"])
    add_user(engine, admin, clock, "cora", Role.COORDINATOR, sites=["TWH"])
    derivations: list[str] = []
    real = key_wrap.derive_wrapping_key
    monkeypatch.setattr(key_wrap, "derive_wrapping_key",
                        lambda pw, kdf: derivations.append(kdf) or real(pw, kdf))
    said = {name: _refused(engine, name, clock, None, password="not-the-password")
            for name in ("nobody", "cora", "phil", "pia")}
    assert set(said.values()) == {WRONG_WITH_CODE}
    assert derivations == []
    # The code is checked only after the right password: a wrong password with a right
    # code says the same.
    assert _refused(engine, "pia", clock, "123456", password="not-the-password") \
        == WRONG_WITH_CODE
    # Without a factor, no code is asked for and none is looked at.
    assert sign_in(engine, "cora", clock, "whatever").name == "cora"
    assert sign_in(engine, "phil", clock, None).name == "phil"


def test_the_secret_is_in_no_column_and_no_event_and_the_code_proves_the_scan(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    add_user(engine, admin, clock, "pia", Role.PHARMACIST, sites=["TWH"])
    pia = sign_in(engine, "pia", clock)
    with read_only(engine) as s:
        offer = offer_second_factor(s, pia)
    app = pyotp.TOTP(offer.secret)
    with pytest.raises(Refused, match="does not match"), transaction(engine) as s:
        enrol_second_factor(s, pia, password=PASSWORD, secret=offer.secret,
                            code=app.at(clock.now(), counter_offset=5), clock=clock)
    with pytest.raises(AuthenticationFailed), transaction(engine) as s:
        enrol_second_factor(s, pia, password="not-the-password", secret=offer.secret,
                            code=app.at(clock.now()), clock=clock)
    assert _user(engine, "pia").totp_wrapped is None
    with transaction(engine) as s:
        enrol_second_factor(s, pia, password=PASSWORD, secret=offer.secret,
                            code=app.at(clock.now()), clock=clock)
    user = _user(engine, "pia")
    raw = pyotp.TOTP(offer.secret).byte_secret()
    stored = b"".join(v if isinstance(v, bytes) else str(v).encode()
                      for v in user.model_dump().values())
    assert raw not in stored and offer.secret.encode() not in stored
    with read_only(engine) as s:
        trail = " ".join(f"{e.before_json} {e.after_json} {e.reason}"
                         for e in s.exec(select(AuditEvent)).all())
    assert offer.secret not in trail and "otpauth" not in trail
    assert audit_actions(engine).count("user.totp_enrol") == 1
    assert audit_actions(engine).count("user.totp_enrol.refused") == 2
    # the enrolment's code is spent: it does not also sign in
    assert _refused(engine, "pia", clock, app.at(clock.now())) == WRONG_WITH_CODE
    with pytest.raises(Refused, match="has a second factor already"), \
            read_only(engine) as s:
        offer_second_factor(s, pia)
    assert verify(engine).ok


def test_only_a_custodian_enrols_and_only_where_the_protocol_says(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    with pytest.raises(PermissionDenied, match="not an unblinding custodian"), \
            read_only(engine) as s:
        offer_second_factor(s, admin)


def test_off_by_default_the_protocol_refuses_enrolment(
    clock: SteppingClock, tmp_path: Path, db_url: str
) -> None:
    eng = make_engine(db_url, must_exist=False)
    initialize(eng, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
               training=False, clock=clock)
    try:
        admin = sign_in(eng, ADMIN, clock)
        add_user(eng, admin, clock, "pia", Role.PHARMACIST, sites=["TWH"])
        pia = sign_in(eng, "pia", clock)
        with pytest.raises(Refused, match="does not use a second factor"), \
                read_only(eng) as s:
            offer_second_factor(s, pia)
    finally:
        eng.dispose()


def test_a_password_change_rewraps_the_secret_and_the_phone_keeps_working(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    app = enrolled(engine, admin, clock, "pia")
    old = _user(engine, "pia")
    pia = sign_in(engine, "pia", clock, app.at(clock.now()))
    with transaction(engine) as s:
        change_password(s, pia, current_password=PASSWORD, new_password=NEW_PASSWORD,
                        clock=clock)
    new = _user(engine, "pia")
    assert new.totp_wrapped != old.totp_wrapped and new.totp_kdf != old.totp_kdf
    clock.advance(seconds=30)
    assert sign_in(engine, "pia", clock, app.at(clock.now()), NEW_PASSWORD).name == "pia"
    # The old wrapping and the old password no longer open what is stored.
    from trialkit.domain.second_factor import unwrap_secret
    assert new.totp_wrapped and new.totp_kdf
    with pytest.raises(AuthenticationFailed):
        unwrap_secret(new.totp_wrapped, new.totp_kdf, PASSWORD)
    assert verify(engine).ok


def test_a_lost_phone_needs_a_second_custodian_never_the_admin_or_its_owner(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    enrolled(engine, admin, clock, "pia")
    phil_app = enrolled(engine, admin, clock, "phil")
    with pytest.raises(PermissionDenied), transaction(engine) as s:
        reset_second_factor(s, admin, name="pia", reason="phone lost", clock=clock)
    pia_user = _user(engine, "pia")
    assert pia_user.totp_wrapped is not None
    phil = sign_in(engine, "phil", clock, phil_app.at(clock.now()))
    with pytest.raises(Refused, match="not you alone"), transaction(engine) as s:
        reset_second_factor(s, phil, name="phil", reason="phone lost", clock=clock)
    with transaction(engine) as s:
        reset_second_factor(s, phil, name="pia", reason="phone lost", clock=clock)
    assert audit_actions(engine).count("user.totp_reset.refused") == 2
    resets = _events(engine, "user.totp_reset")
    assert [(e.user_name, e.entity_id, e.reason) for e in resets] == [
        ("phil", "pia", "phone lost")]
    # pia signs in with her password alone and enrols a new factor
    pia = sign_in(engine, "pia", clock)
    with read_only(engine) as s:
        assert offer_second_factor(s, pia).user == "pia"
    assert verify(engine).ok


def test_a_factor_removed_in_the_database_is_found_by_verify(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    """A DBA who clears a custodian's factor (to sign in as them with a stolen password
    alone) leaves the user row unlike the state its last event recorded."""
    enrolled(engine, admin, clock, "pia")
    assert verify(engine).ok
    with engine.begin() as conn:
        conn.execute(update(User).where(User.name == "pia")  # type: ignore[arg-type]
                     .values(totp_wrapped=None, totp_kdf=None))
    report = verify(engine)
    assert not report.ok and "pia" in (report.problem or "")



def test_a_second_factor_rewrapped_under_a_weak_kdf_is_found_by_verify(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    """Cheaper KDF parameters written into the row would make the password, and so the
    secret, cheap to guess from a copy: verify checks them like the private keys'."""
    enrolled(engine, admin, clock, "pia")
    weak = '{"alg":"argon2id","m":8,"p":1,"salt":"AAAAAAAAAAAAAAAAAAAAAA==","t":1}'
    with engine.begin() as conn:
        conn.execute(update(User).where(User.name == "pia")  # type: ignore[arg-type]
                     .values(totp_kdf=weak))
    report = verify(engine)
    assert not report.ok
    assert "pia's second factor: its KDF parameters are not trialkit's" in (report.problem or "")


def test_a_checker_with_a_factor_signs_the_preparation_check_with_a_code_too(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    """A second pharmacist's check is signed as a sign-in is: their password alone is not
    enough once they have a factor (the check is refused and nothing is recorded)."""
    from tests.builders import PROTOCOL, ready_to_randomize, seal
    from trialkit.services.enrolment.participants import randomize
    from trialkit.services.pharmacy.dispensing import dispense

    pia_phone = enrolled(engine, admin, clock, "pia")
    add_user(engine, admin, clock, "phil", Role.PHARMACIST, sites=["TWH"])
    add_user(engine, admin, clock, "cora", Role.COORDINATOR, sites=["TWH"])
    seal(engine, admin, clock, per_stratum=4)
    cora = sign_in(engine, "cora", clock)
    v = ready_to_randomize(engine, cora, clock, site="TWH")
    with transaction(engine) as s:
        randomize(s, cora, v.id, clock=clock)
    phil = sign_in(engine, "phil", clock)
    lots = {p.id: "LOT-1" for p in PROTOCOL.dosing.preparations}
    # phil, a custodian without a factor yet, opens no envelope with his password alone
    with pytest.raises(Refused, match="phil has not enrolled the second factor.*enrol it "
                       "first"), transaction(engine) as s:
        dispense(s, phil, v.id, password=PASSWORD, clock=clock, lots=lots, checked_by="pia",
                 checker_password=PASSWORD, checker_code=pia_phone.at(clock.now()))
    with read_only(engine) as s:
        offer = offer_second_factor(s, phil)
    with transaction(engine) as s:
        enrol_second_factor(s, phil, password=PASSWORD, secret=offer.secret,
                            code=pyotp.TOTP(offer.secret).at(clock.now()), clock=clock)
    clock.advance(seconds=30)
    with pytest.raises(Refused, match="is not signed: wrong password or code"), \
            transaction(engine) as s:
        dispense(s, phil, v.id, password=PASSWORD, clock=clock, lots=lots, checked_by="pia",
                 checker_password=PASSWORD)
    with transaction(engine) as s:
        done = dispense(s, phil, v.id, password=PASSWORD, clock=clock, lots=lots,
                        checked_by="pia", checker_password=PASSWORD,
                        checker_code=pia_phone.at(clock.now()))
    assert done.record is not None and done.record.checked_by == "pia"
    assert verify(engine).ok


def test_a_code_spent_by_a_racing_sign_in_is_not_accepted_again(
    engine: Engine, clock: SteppingClock, admin: Actor
) -> None:
    """Two sign-ins with one code at the same moment (on PostgreSQL both may read the old
    last step): the step is spent by a conditional write, so the one that writes second
    fails even though the user it read still shows the old step."""
    from trialkit.services.administration.second_factor import second_factor_holds

    phone = enrolled(engine, admin, clock, "pia")
    code = phone.at(clock.now())
    with transaction(engine) as s:
        user = s.exec(select(User).where(User.name == "pia")).one()
        stale = user.totp_last_step
        # the other sign-in spends this step meanwhile, behind this session's back
        s.connection().execute(update(User).where(User.name == "pia")  # type: ignore[arg-type]
                               .values(totp_last_step=phone.timecode(clock.now())))
        assert user.totp_last_step == stale  # what this sign-in read
        assert not second_factor_holds(s, user, PASSWORD, code, clock)
    with transaction(engine) as s:
        user = s.exec(select(User).where(User.name == "pia")).one()
        assert user.totp_last_step == phone.timecode(clock.now())


def test_a_factor_enrolled_at_schema_0013_works_after_the_upgrade_to_0014(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    """0014 makes the KDF parameters of the wrapped secret JSON: the same document, and the
    password still unwraps the secret the phone shares."""
    app = enrolled(engine, admin, clock, "pia")
    migrate(engine, "0013")
    with engine.connect() as conn:
        stored = conn.execute(sql("SELECT totp_kdf FROM app_user WHERE name = 'pia'")).scalar_one()
    assert isinstance(stored, str) and set(json.loads(stored)) >= {"alg", "salt"}
    migrate(engine, "head")
    assert json.loads(_user(engine, "pia").totp_kdf or "") == json.loads(stored)
    sign_in(engine, "pia", clock, code=app.at(clock.now()))
    assert verify(engine).ok
