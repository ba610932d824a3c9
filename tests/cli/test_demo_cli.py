"""`trialkit demo` builds a new database or rebuilds the demo it built itself, and nothing
else: a database holding any other trial (live, or a training trial someone made with
`init --training`), or anything that is not a trialkit trial, is refused with exit 1, named,
left exactly as it was, and the demo passwords are not printed for it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.cli.test_cli import Run, assert_refused, state_of, trialkit
from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock
from tests.db.tampering import reader
from trialkit.domain.protocol import load_protocol
from trialkit.services.administration.setup import initialize
from trialkit.store.db import make_engine

# What README tells every trainee: the one password of every demo user.
DEMO_PASSWORD_IN_README = "orchard-violin-demo"


def demo(*args: str, db: str | Path, cwd: Path) -> Run:
    return trialkit("demo", *args, db=db, cwd=cwd, user=None, password=None)


def assert_refused_naming(run: Run, *words: str) -> None:
    assert_refused(run, 1, *words)
    assert DEMO_PASSWORD_IN_README not in run.out + run.err
    assert "not the demo" in run.err


@pytest.mark.parametrize("fresh", [["--fresh"], []], ids=["fresh", "kept"])
def test_demo_refuses_a_live_trial_names_it_and_changes_nothing(
    engine: Engine, db_url: str, tmp_path: Path, fresh: list[str]
) -> None:
    before = state_of(engine)
    run = demo(*fresh, db=db_url, cwd=tmp_path)
    assert_refused_naming(run, "LIVE trial KETHEAD")
    assert state_of(engine) == before


@pytest.mark.parametrize("fresh", [["--fresh"], []], ids=["fresh", "kept"])
def test_demo_refuses_a_training_trial_it_did_not_build(
    db_url: str, tmp_path: Path, clock: SteppingClock, fresh: list[str]
) -> None:
    engine = make_engine(db_url, must_exist=False)
    initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
               training=True, clock=clock)
    before = state_of(engine)
    run = demo(*fresh, db=db_url, cwd=tmp_path)
    assert_refused_naming(run, "training trial KETHEAD")
    assert state_of(engine) == before
    engine.dispose()


def test_demo_json_refusal_gives_no_password(engine: Engine, db_url: str, tmp_path: Path) -> None:
    run = trialkit("--json", "demo", "--fresh", db=db_url, cwd=tmp_path, user=None, password=None)
    assert run.code == 1
    assert DEMO_PASSWORD_IN_README not in run.out + run.err


def test_demo_refuses_a_database_that_is_not_a_trialkit_trial(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    other = sqlite3.connect(path)
    with other:
        other.execute("CREATE TABLE samples (id INTEGER PRIMARY KEY, result TEXT)")
        other.execute("INSERT INTO samples (result) VALUES ('positive')")
    other.close()
    before = path.read_bytes()
    run = demo("--fresh", db=path, cwd=tmp_path)
    assert_refused(run, 1, "no trialkit trial")
    assert DEMO_PASSWORD_IN_README not in run.out + run.err
    assert path.read_bytes() == before


def test_demo_builds_keeps_and_rebuilds_only_its_own_trial(db_url: str, tmp_path: Path) -> None:
    built = trialkit("--json", "demo", db=db_url, cwd=tmp_path, user=None, password=None)
    assert built.code == 0, built.err
    assert json.loads(built.out)["created"] is True
    kept = demo(db=db_url, cwd=tmp_path)
    assert kept.code == 0, kept.err
    assert "Kept the existing demo" in kept.out
    assert DEMO_PASSWORD_IN_README in kept.out
    engine = make_engine(db_url)
    with reader(engine).connect() as conn:
        events = conn.execute(text("SELECT count(*) FROM audit_event")).scalar_one()
    engine.dispose()  # SQLite: a pooled connection would go on reading the erased file
    # Something a trainee did in the demo: it goes when the demo is rebuilt from scratch.
    added = trialkit("user", "add", "trainee", "--role", "monitor", db=db_url, cwd=tmp_path,
                     user="ada", password=DEMO_PASSWORD_IN_README, new_password=PASSWORD)
    assert added.code == 0, added.err
    rebuilt = trialkit("--json", "demo", "--fresh", db=db_url, cwd=tmp_path, user=None,
                       password=None)
    assert rebuilt.code == 0, rebuilt.err
    assert json.loads(rebuilt.out)["created"] is True
    engine = make_engine(db_url)
    with reader(engine).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_event")).scalar_one() == events
        first = conn.execute(text("SELECT action FROM audit_event WHERE seq = 1")).scalar_one()
        training, marked = conn.execute(text("SELECT training, demo FROM trial")).one()
        users = conn.execute(text("SELECT name FROM app_user")).scalars().all()
    # a new trail: its first event is init's, the admin adding their own account
    assert (first, bool(training), bool(marked)) == ("user.add", True, True)
    assert "trainee" not in users
    engine.dispose()
    verify = trialkit("audit", "verify", db=db_url, cwd=tmp_path, user=None, password=None)
    assert verify.code == 0, verify.err
