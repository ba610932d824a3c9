"""A custodian's second factor at the command line, where the protocol asks for one: the
QR code and otpauth:// URI shown once at activation and confirmed with the app's code,
TRIALKIT_TOTP at every sign-in (each code once), and the admin unable to remove it.
The secret shown is pinned to RFC 6238's test seed so the test can play the phone: the
expected codes are RFC 6238 Appendix B's (SHA1), the time is the training clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock
from trialkit.cli.app import app
from trialkit.cli.wording import error_line
from trialkit.domain.errors import TrialkitError
from trialkit.domain.protocol import load_protocol
from trialkit.services.administration.setup import initialize
from trialkit.store.db import make_engine

RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of b"12345678901234567890"
# RFC 6238 Appendix B, SHA1: T = 1111111109 s -> 07081804, T = 1234567890 s -> 89005924
# (a 6-digit code is the last six digits).
ENROL_AT, ENROL_CODE = "2005-03-18T01:58:29Z", "081804"
LATER_AT, LATER_CODE = "2009-02-13T23:31:30Z", "005924"
NEW_PASSWORD = "staple-battery-horse-correct"


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    text = KETHEAD.read_text().replace("custodian_totp = false", "custodian_totp = true")
    (tmp_path / "p.toml").write_text(text)
    db = f"sqlite:///{tmp_path / 'trial.db'}"
    engine = make_engine(db, must_exist=False)
    initialize(engine, load_protocol(tmp_path / "p.toml"), admin=ADMIN, admin_password=PASSWORD,
               training=True, clock=SteppingClock(at=SteppingClock().at.replace(year=2005)))
    engine.dispose()
    monkeypatch.setattr("trialkit.domain.second_factor.new_secret", lambda: RFC_SECRET)
    return db


def run(url: str, who: str | None, at: str, *args: str, **env: str | None) -> tuple[int, str]:
    """``trialkit --db URL [--user WHO] ARGS`` in process; output and error line together."""
    options = ["--db", url] + (["--user", who] if who else [])
    environment: dict[str, Any] = {"TRIALKIT_CLOCK": at, "TRIALKIT_PASSWORD": PASSWORD,
                                   "TRIALKIT_DB": None, "TRIALKIT_USER": None,
                                   "TRIALKIT_TOTP": None} | env
    engines: list[Engine] = []

    def recorded(*a: Any, **k: Any) -> Engine:
        engines.append(make_engine(*a, **k))
        return engines[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("trialkit.store.db.make_engine", recorded)
        result = CliRunner().invoke(app, [*options, *args], env=environment)
    for engine in engines:
        engine.dispose()
    out, code = result.stdout + result.stderr, result.exit_code
    if isinstance(result.exception, TrialkitError):
        out += error_line(result.exception) + "\n"
        code = result.exception.exit_code
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return code, out


def test_a_custodian_enrols_at_activation_and_signs_in_with_each_code_once(url: str) -> None:
    code, out = run(url, ADMIN, ENROL_AT, "--json", "user", "add", "pia", "--role",
                    "pharmacist", "--site", "TWH")
    assert code == 0, out
    enrolment = json.loads(out)["enrolment_code"]
    code, out = run(url, None, ENROL_AT, "user", "activate", "pia",
                    TRIALKIT_ENROLMENT_CODE=enrolment, TRIALKIT_NEW_PASSWORD=NEW_PASSWORD,
                    TRIALKIT_TOTP_CONFIRM=ENROL_CODE)
    assert code == 0, out
    assert f"otpauth://totp/trialkit%20KETHEAD:pia?secret={RFC_SECRET}" in out
    assert "▄" in out or "█" in out  # the QR code, drawn in the terminal
    assert "Second factor enrolled for pia" in out
    signed_in = {"TRIALKIT_PASSWORD": NEW_PASSWORD}
    # password alone, a wrong code, the enrolment's code again: the same words each time
    for given in (None, "123456", ENROL_CODE):
        code, out = run(url, "pia", LATER_AT, "custodian", "list", TRIALKIT_TOTP=given,
                        **signed_in)
        assert code == 1 and "wrong user name, password or code" in out, out
    code, out = run(url, "pia", LATER_AT, "custodian", "list", TRIALKIT_TOTP=LATER_CODE,
                    **signed_in)
    assert code == 0 and "pia" in out, out
    code, out = run(url, "pia", LATER_AT, "custodian", "list", TRIALKIT_TOTP=LATER_CODE,
                    **signed_in)
    assert code == 1 and "wrong user name, password or code" in out, out
    # a wrong password for a name with no factor reads the same
    code, out = run(url, ADMIN, LATER_AT, "user", "list", TRIALKIT_PASSWORD="nope-nope-nope")
    assert code == 1 and "wrong user name, password or code" in out, out
    # the admin cannot remove the factor
    code, out = run(url, ADMIN, LATER_AT, "custodian", "reset-factor", "pia", "--reason",
                    "phone lost")
    assert code == 1 and "only a second custodian" in out, out
    code, out = run(url, ADMIN, LATER_AT, "audit", "log", "--action", "user.totp_enrol")
    assert code == 0 and "pia" in out and RFC_SECRET not in out, out
    code, out = run(url, None, LATER_AT, "audit", "verify")
    assert code == 0, out


def test_totp_enrol_refuses_a_second_factor_twice_and_a_wrong_code(url: str) -> None:
    code, out = run(url, ADMIN, ENROL_AT, "--json", "user", "add", "pia", "--role",
                    "pharmacist", "--site", "TWH")
    enrolment = json.loads(out)["enrolment_code"]
    code, out = run(url, None, ENROL_AT, "--json", "user", "activate", "pia",
                    TRIALKIT_ENROLMENT_CODE=enrolment, TRIALKIT_NEW_PASSWORD=NEW_PASSWORD)
    assert code == 0 and "otpauth" not in out, out  # JSON: enrol separately
    pia = {"TRIALKIT_PASSWORD": NEW_PASSWORD}
    code, out = run(url, "pia", ENROL_AT, "user", "totp-enrol", TRIALKIT_TOTP_CONFIRM="000000",
                    **pia)
    assert code == 1 and "does not match" in out, out
    code, out = run(url, "pia", ENROL_AT, "user", "totp-enrol",
                    TRIALKIT_TOTP_CONFIRM=ENROL_CODE, **pia)
    assert code == 0 and "Second factor enrolled" in out, out
    code, out = run(url, "pia", LATER_AT, "user", "totp-enrol",
                    TRIALKIT_TOTP=LATER_CODE, TRIALKIT_TOTP_CONFIRM=LATER_CODE, **pia)
    assert code == 1 and "has a second factor already" in out, out
