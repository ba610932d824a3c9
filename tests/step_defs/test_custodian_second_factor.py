"""Steps for ``features/custodian_second_factor.feature``: a custodian's second factor
(TOTP) where the protocol asks for one. Each scenario on SQLite and, with
TRIALKIT_TEST_PG_URL, on PostgreSQL. The phone is played by pyotp from the secret shown."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
import pytest
from pytest_bdd import given, parsers, scenarios, then, when
from sqlalchemy import Engine
from sqlmodel import select

from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock, add_user, sign_in
from tests.db.tampering import verify
from trialkit.domain.errors import PermissionDenied, TrialkitError
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.administration.second_factor import (
    enrol_second_factor,
    offer_second_factor,
    reset_second_factor,
)
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.sign_in import login
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.store.models import AuditEvent, User

scenarios("custodian_second_factor.feature")


@pytest.fixture
def engine(db_url: str, clock: SteppingClock, tmp_path: Path) -> Iterator[Engine]:
    """KetHead with ``[security] custodian_totp = true``."""
    text = KETHEAD.read_text().replace("custodian_totp = false", "custodian_totp = true")
    (tmp_path / "p.toml").write_text(text)
    eng = make_engine(db_url, must_exist=False)
    initialize(eng, load_protocol(tmp_path / "p.toml"), admin=ADMIN, admin_password=PASSWORD,
               training=False, clock=clock)
    yield eng
    eng.dispose()


@dataclass
class Visit:
    engine: Engine
    clock: SteppingClock
    phones: dict[str, pyotp.TOTP] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    code: str = ""
    refusals: list[str] = field(default_factory=list)


@pytest.fixture(autouse=True)
def visit(engine: Engine, clock: SteppingClock) -> Visit:
    """Autouse, so that every scenario is collected once per backend."""
    return Visit(engine, clock)


def _enrol(visit: Visit, name: str) -> None:
    actor = sign_in(visit.engine, name, visit.clock)
    with read_only(visit.engine) as s:
        offer = offer_second_factor(s, actor)
    phone = pyotp.TOTP(offer.secret)
    with transaction(visit.engine) as s:
        enrol_second_factor(s, actor, password=PASSWORD, secret=offer.secret,
                            code=phone.at(visit.clock.now()), clock=visit.clock)
    visit.phones[name], visit.secrets[name] = phone, offer.secret
    visit.clock.advance(seconds=30)


def _try(visit: Visit, name: str, password: str, code: str | None) -> None:
    try:
        with transaction(visit.engine) as s:
            login(s, name, password, clock=visit.clock, code=code)
    except TrialkitError as exc:
        visit.refusals.append(exc.message)


@given("a trial whose protocol asks custodians for a second factor")
def trial(visit: Visit) -> None:
    alice = sign_in(visit.engine, ADMIN, visit.clock)
    add_user(visit.engine, alice, visit.clock, "cora", Role.COORDINATOR, sites=["TWH"])
    add_user(visit.engine, alice, visit.clock, "phil", Role.PHARMACIST, sites=["SHS"])
    add_user(visit.engine, alice, visit.clock, "pia", Role.PHARMACIST, sites=["TWH"])


@given(parsers.parse('pharmacist "{name}" has enrolled her phone'))
def enrolled(visit: Visit, name: str) -> None:
    _enrol(visit, name)


@when(parsers.parse('someone signs in as "{name}" with her password and no code'))
def no_code(visit: Visit, name: str) -> None:
    _try(visit, name, PASSWORD, None)


@when(parsers.parse('"{name}" signs in with her password and the code her phone shows'))
def right_code(visit: Visit, name: str) -> None:
    visit.code = visit.phones[name].at(visit.clock.now())
    _try(visit, name, PASSWORD, visit.code)
    assert visit.refusals == []


@when(parsers.parse('someone signs in as "{name}" with her password and that same code'))
def same_code(visit: Visit, name: str) -> None:
    visit.clock.advance(seconds=5)
    _try(visit, name, PASSWORD, visit.code)


@then(parsers.parse('the sign-in is refused with "{words}"'))
def refused(visit: Visit, words: str) -> None:
    assert visit.refusals == [words]


@then(parsers.parse('the audit trail records a failed sign-in for "{name}" naming the '
                    '"{what}"'))
def recorded(visit: Visit, name: str, what: str) -> None:
    with read_only(visit.engine) as s:
        last = s.exec(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()  # type: ignore[attr-defined]
        assert last is not None
        assert (last.action, last.user_name, last.entity_id) == ("login.fail", name, name)
        assert what in (last.reason or "")


@when(parsers.parse('someone tries a wrong password for "{a}", for coordinator "{b}" and for '
                    'the unknown name "{c}"'))
def wrong_passwords(visit: Visit, a: str, b: str, c: str) -> None:
    for name in (a, b, c):
        _try(visit, name, "not-the-password", None)


@then(parsers.parse('each is refused with the same words, "{words}"'))
def same_words(visit: Visit, words: str) -> None:
    assert visit.refusals == [words] * 3


@then("neither her account's row nor any audit event holds the secret her phone holds")
def secret_kept(visit: Visit) -> None:
    secret = visit.secrets["pia"]
    raw = visit.phones["pia"].byte_secret()
    with read_only(visit.engine) as s:
        user = s.exec(select(User).where(User.name == "pia")).one()
        row = b"".join(v if isinstance(v, bytes) else str(v).encode()
                       for v in user.model_dump().values())
        trail = " ".join(f"{e.before_json} {e.after_json} {e.reason}"
                         for e in s.exec(select(AuditEvent)).all())
        assert user.totp_wrapped is not None
    assert raw not in row and secret.encode() not in row and secret.lower().encode() not in row
    assert secret not in trail and "otpauth" not in trail


@when(parsers.parse('the admin tries to reset the second factor of "{name}"'))
def admin_resets(visit: Visit, name: str) -> None:
    alice = sign_in(visit.engine, ADMIN, visit.clock)
    with pytest.raises(PermissionDenied) as caught, transaction(visit.engine) as s:
        reset_second_factor(s, alice, name=name, reason="phone lost", clock=visit.clock)
    visit.refusals.append(caught.value.message)


@then("it is refused, and the refusal is on the record")
def refusal_recorded(visit: Visit) -> None:
    assert visit.refusals and "only a second custodian" in visit.refusals[0]
    with read_only(visit.engine) as s:
        rows = s.exec(select(AuditEvent).where(
            AuditEvent.action == "user.totp_reset.refused")).all()
        assert [(r.user_name, r.entity_id) for r in rows] == [(ADMIN, "pia")]
    with read_only(visit.engine) as s:
        assert s.exec(select(User).where(User.name == "pia")).one().totp_wrapped is not None


@when(parsers.parse('a second custodian "{who}" resets it, saying "{why}"'))
def second_custodian(visit: Visit, who: str, why: str) -> None:
    actor = sign_in(visit.engine, who, visit.clock)  # phil has enrolled no phone
    with transaction(visit.engine) as s:
        reset_second_factor(s, actor, name="pia", reason=why, clock=visit.clock)


@then(parsers.parse('the record names "{who}" and "{why}"'))
def reset_recorded(visit: Visit, who: str, why: str) -> None:
    with read_only(visit.engine) as s:
        rows = s.exec(select(AuditEvent).where(AuditEvent.action == "user.totp_reset")).all()
        assert s.exec(select(User).where(User.name == "pia")).one().totp_wrapped is None
        assert [(r.user_name, r.entity_id, r.reason) for r in rows] == [(who, "pia", why)]


@then("the audit trail still verifies")
def verifies(visit: Visit) -> None:
    report = verify(visit.engine)
    assert report.ok, report.problem
