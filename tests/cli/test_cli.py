"""The ``trialkit`` command as a user runs it: the real entry point in a subprocess, with
secrets in environment variables and no terminal. Exit status 0 done, 1 refused, 2 invalid
input; one line on stderr and never a traceback; a refused command changes nothing.

What "nothing" means: a command that signs its user in records that sign-in (``login``, or
``login.fail`` for a wrong password) before the refusal, as the audit trail must. Commands
refused before sign-in (bad role, TRIALKIT_CLOCK on a live trial, a bad database) record
nothing at all."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock
from tests.db.tampering import attack, audit_actions, reader, set_event
from tests.enrolment import enrolment_code
from trialkit.domain.protocol import load_protocol
from trialkit.services.administration.setup import initialize
from trialkit.store.db import make_engine

NEW_PASSWORD = "a-fresh-long-password"
TRAINING_NOW = "2027-01-05T10:00:00Z"


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def trialkit(
    *args: str,
    db: str | Path,
    cwd: Path,
    user: str | None = ADMIN,
    password: str | None = PASSWORD,
    new_password: str | None = None,
    clock: str | None = None,
    code: str | None = None,
) -> Run:
    """Run ``python -m trialkit`` the way a script would: no terminal, secrets from the
    environment, nothing inherited from the caller's TRIALKIT_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    env["TRIALKIT_DB"] = str(db)
    for name, value in [("TRIALKIT_USER", user), ("TRIALKIT_PASSWORD", password),
                        ("TRIALKIT_NEW_PASSWORD", new_password), ("TRIALKIT_CLOCK", clock),
                        ("TRIALKIT_ENROLMENT_CODE", code)]:
        if value is not None:
            env[name] = value
    done = subprocess.run(
        [sys.executable, "-m", "trialkit", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Run(done.returncode, done.stdout, done.stderr)


def assert_done(run: Run) -> None:
    assert run.code == 0, run.err
    assert run.err == ""


def assert_refused(run: Run, code: int, *words: str) -> None:
    """Exit ``code`` and one line on stderr that carries ``words``."""
    assert run.code == code, (run.code, run.err)
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("Error: " if code == 2 else "Refused: ")
    for word in words:
        assert word in lines[0]


@dataclass(frozen=True)
class State:
    """What a refused command must leave as it was."""

    actions: list[str]
    users: list[dict[str, object]]
    trial: dict[str, object]


def state_of(engine: Engine) -> State:
    with reader(engine).connect() as conn:
        users = conn.execute(text(
            "SELECT name, role, custodian, disabled, failed_logins, password_hash "
            "FROM app_user ORDER BY name")).all()
        trial = conn.execute(text(
            "SELECT trial_code, protocol_sha256, training, created_at FROM trial")).one()
    return State(audit_actions(engine), [dict(u._mapping) for u in users], dict(trial._mapping))


@pytest.fixture
def live_db(tmp_path: Path) -> Iterator[Path]:
    """A SQLite file holding the live KetHead trial with admin alice (built in-process:
    faster than ``trialkit init``, which has its own tests)."""
    path = tmp_path / "trial.db"
    engine = make_engine(str(path), must_exist=False)
    initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
               training=False, clock=SteppingClock())
    engine.dispose()
    yield path


@pytest.fixture
def live(live_db: Path) -> Iterator[Engine]:
    engine = make_engine(str(live_db))
    yield engine
    engine.dispose()


# --- init and verify, on every backend ------------------------------------------------------


def test_init_creates_a_trial_whose_audit_trail_verifies(db_url: str, tmp_path: Path) -> None:
    init = trialkit("init", str(KETHEAD), "--admin", ADMIN, db=db_url, cwd=tmp_path,
                    user=None, password=None, new_password=PASSWORD)
    assert_done(init)
    assert init.out.startswith("Created trial KETHEAD (protocol 1.0")
    verify = trialkit("audit", "verify", db=db_url, cwd=tmp_path, user=None, password=None)
    assert_done(verify)
    assert verify.out.splitlines()[0].startswith("OK: 2 events, chain head ")


def test_init_on_a_database_that_holds_a_trial_is_refused_and_changes_nothing(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    other = tmp_path / "other.toml"
    other.write_text(KETHEAD.read_text().replace('id = "KETHEAD"', 'id = "OTHER"', 1))
    before = state_of(engine)
    run = trialkit("init", str(other), "--admin", "bob", "--training", db=db_url,
                   cwd=tmp_path, new_password=NEW_PASSWORD)
    assert_refused(run, 1, "already holds trial KETHEAD")
    assert state_of(engine) == before


def test_tampering_makes_audit_verify_fail_naming_the_event(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    with attack(engine) as conn:
        set_event(conn, 2, reason="approved by the sponsor")
    run = trialkit("audit", "verify", db=db_url, cwd=tmp_path)
    assert_refused(run, 1, "event 2", "changed after it was written")
    assert run.out == ""


# --- audit verify on SQLite -------------------------------------------------------------------


def test_audit_verify_json_is_one_json_document(live_db: Path, live: Engine) -> None:
    run = trialkit("--json", "audit", "verify", db=live_db, cwd=live_db.parent)
    assert_done(run)
    with reader(live).connect() as conn:
        head = conn.execute(text("SELECT hash FROM audit_event WHERE seq = 2")).scalar_one()
    assert json.loads(run.out) == {"ok": True, "events": 2, "head": head}


def test_an_audit_row_edited_with_sqlite3_fails_verify(live_db: Path) -> None:
    db = sqlite3.connect(live_db)
    with db:
        db.execute("DROP TRIGGER audit_event_no_update")
        db.execute("UPDATE audit_event SET user_name = 'bob' WHERE seq = 1")
    db.close()
    run = trialkit("--json", "audit", "verify", db=live_db, cwd=live_db.parent)
    assert_refused(run, 1, "event 1")
    doc = json.loads(run.out)
    assert (doc["ok"], doc["events"], doc["first_bad_event"]) == (False, 2, 1)
    assert doc["problem"] == "event 1: its content was changed after it was written"


def test_verifying_a_missing_database_file_is_invalid_and_creates_nothing(tmp_path: Path) -> None:
    run = trialkit("audit", "verify", db=tmp_path / "typo.db", cwd=tmp_path)
    assert_refused(run, 2, "no trialkit database", "typo.db")
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    run = trialkit("audit", "verify", db="postgresql://nobody@127.0.0.1:1/x", cwd=tmp_path)
    assert_refused(run, 2, "cannot reach database", "127.0.0.1:1")


def test_a_database_from_a_newer_trialkit_is_refused(live_db: Path, live: Engine) -> None:
    db = sqlite3.connect(live_db)
    with db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
    db.close()
    before = state_of(live)
    run = trialkit("user", "list", db=live_db, cwd=live_db.parent)
    assert_refused(run, 2, "newer", "0099")
    assert state_of(live) == before


# --- init refusals ----------------------------------------------------------------------------


def test_a_bad_protocol_file_is_named_and_no_database_is_created(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(KETHEAD.read_text().replace('id = "KETHEAD"\n', ""))
    run = trialkit("init", str(bad), "--admin", ADMIN, db=tmp_path / "trial.db", cwd=tmp_path,
                   new_password=PASSWORD)
    assert_refused(run, 2, str(bad), "trial.id")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_init_of_a_live_trial_refuses_trialkit_clock_and_creates_nothing(tmp_path: Path) -> None:
    run = trialkit("init", str(KETHEAD), "--admin", ADMIN, db=tmp_path / "trial.db",
                   cwd=tmp_path, new_password=PASSWORD, clock=TRAINING_NOW)
    assert_refused(run, 1, "TRIALKIT_CLOCK", "live trial")
    assert list(tmp_path.iterdir()) == []


# --- users --------------------------------------------------------------------------------------


def test_admin_adds_a_coordinator_who_activates_the_account_and_signs_in(
    live_db: Path, live: Engine
) -> None:
    add = trialkit("user", "add", "carol", "--role", "coordinator", "--site", "twh",
                   db=live_db, cwd=live_db.parent)
    assert_done(add)
    lines = add.out.strip().splitlines()
    assert lines[0] == "Added coordinator carol at TWH"
    name, code = enrolment_code(add.out)
    assert name == "carol" and "not shown again" in add.out
    # Only its owner's first sign-in needs the code; the admin never chose a password.
    activate = trialkit("user", "activate", "carol", db=live_db, cwd=live_db.parent, user=None,
                        password=None, new_password=NEW_PASSWORD, code=code)
    assert_done(activate)
    assert activate.out.startswith("Activated carol")
    again = trialkit("user", "activate", "carol", db=live_db, cwd=live_db.parent, user=None,
                     password=None, new_password=PASSWORD, code=code)
    assert_refused(again, 1, "not valid for carol")
    listed = trialkit("--json", "user", "list", db=live_db, cwd=live_db.parent)
    assert_done(listed)
    assert [(u["name"], u["role"], u["sites"], u["state"]) for u in json.loads(listed.out)] == [
        ("alice", "admin", [], "active"), ("carol", "coordinator", ["TWH"], "active")]
    assert audit_actions(live)[-5:] == [
        "login", "user.add", "user.activate", "user.activate_refused", "login"]
    signed_in = trialkit("user", "list", db=live_db, cwd=live_db.parent, user="carol",
                         password=NEW_PASSWORD)
    assert_refused(signed_in, 1, "carol (coordinator) lacks the permission to manage users")


def test_user_add_json_gives_the_enrolment_code(live_db: Path) -> None:
    add = trialkit("--json", "user", "add", "pat", "--role", "pharmacist",
                   db=live_db, cwd=live_db.parent)
    assert_done(add)
    doc = json.loads(add.out)
    assert doc["user"] == "pat" and doc["custodian"] is True
    assert len(doc["enrolment_code"].replace("-", "")) == 24
    activate = trialkit("--json", "user", "activate", "pat", db=live_db, cwd=live_db.parent,
                        user=None, password=None, new_password=NEW_PASSWORD,
                        code=doc["enrolment_code"])
    assert_done(activate)
    keys = json.loads(activate.out)
    assert keys["activated"] is True and keys["custodian_key"] != keys["signing_key"]


def test_an_unknown_role_is_invalid_input_and_nothing_is_recorded(
    live_db: Path, live: Engine
) -> None:
    before = state_of(live)
    run = trialkit("user", "add", "bob", "--role", "wizard", db=live_db, cwd=live_db.parent)
    assert_refused(run, 2, "unknown role 'wizard'", "coordinator")
    assert state_of(live) == before


def test_a_duplicate_user_is_refused_and_only_the_sign_in_is_recorded(
    live_db: Path, live: Engine
) -> None:
    before = state_of(live)
    run = trialkit("user", "add", ADMIN, "--role", "monitor", db=live_db, cwd=live_db.parent)
    assert_refused(run, 1, f"a user named '{ADMIN}' already exists")
    after = state_of(live)
    assert after.users == before.users and after.trial == before.trial
    assert after.actions == [*before.actions, "login", "user.add.refused"]  # rule 3


def test_a_short_or_guessable_new_password_is_invalid_input_and_changes_nothing(
    live_db: Path, live: Engine
) -> None:
    add = trialkit("user", "add", "bob", "--role", "monitor", db=live_db, cwd=live_db.parent)
    _name, code = enrolment_code(add.out)
    before = state_of(live)
    for weak, why in (("too-short", "password too short"),
                      ("password1234", "password too easy to guess")):
        run = trialkit("user", "activate", "bob", db=live_db, cwd=live_db.parent, user=None,
                       password=None, new_password=weak, code=code)
        assert_refused(run, 2, why)
    assert state_of(live) == before


def test_a_wrong_password_is_refused_and_the_failure_is_recorded(
    live_db: Path, live: Engine
) -> None:
    before = state_of(live)
    run = trialkit("user", "list", db=live_db, cwd=live_db.parent, password="not-my-password")
    assert_refused(run, 1, "wrong user name or password")
    assert run.out == ""
    after = state_of(live)
    assert after.actions == [*before.actions, "login.fail"]
    [alice] = after.users
    assert alice == before.users[0] | {"failed_logins": 1}


# --- clocks and training ------------------------------------------------------------------------


def test_trialkit_clock_is_refused_on_a_live_trial(live_db: Path, live: Engine) -> None:
    before = state_of(live)
    run = trialkit("user", "list", db=live_db, cwd=live_db.parent, clock=TRAINING_NOW)
    assert_refused(run, 1, "TRIALKIT_CLOCK", "live trial")
    assert state_of(live) == before


def test_a_training_trial_runs_on_the_stated_clock_and_says_training(tmp_path: Path) -> None:
    db = tmp_path / "training.db"
    init = trialkit("init", str(KETHEAD), "--admin", ADMIN, "--training", db=db, cwd=tmp_path,
                    new_password=PASSWORD, clock=TRAINING_NOW)
    assert_done(init)
    assert init.out.startswith("TRAINING")
    assert "Created training trial KETHEAD" in init.out
    # Sign-ins are shown on request: reading the log signs in, and is the third event.
    log = trialkit("audit", "log", "--sign-ins", db=db, cwd=tmp_path, clock=TRAINING_NOW)
    assert_done(log)
    lines = log.out.splitlines()
    assert lines[0].startswith("TRAINING")
    events = [line for line in lines[1:] if not line.startswith(" " * 8)]
    assert [line.split()[0] for line in events] == ["1", "2", "3"]
    assert all(" 2027-01-05 10:00:00 " in line for line in events), events
    assert "login" in events[-1]
