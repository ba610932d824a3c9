"""Commands that cannot be undone (the database lock, an emergency unblinding, a schema
upgrade) ask at a terminal and, without one, need --yes. "n", an empty answer or the end
of input refuses with exit 1 and writes nothing at all: the question comes before anyone
is signed in, so not even a sign-in is recorded."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.cli.test_cli import Run, state_of, trialkit
from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock, add_user, sign_in
from tests.db.tampering import reader
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.administration.setup import initialize
from trialkit.store.db import make_engine

INVESTIGATOR = "ivan"


@pytest.fixture
def trial(tmp_path: Path, clock: SteppingClock) -> Iterator[tuple[Path, Engine]]:
    """A live trial on SQLite with alice (admin) and ivan (investigator, custodian)."""
    path = tmp_path / "trial.db"
    engine = make_engine(str(path), must_exist=False)
    initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
               training=False, clock=clock)
    add_user(engine, sign_in(engine, ADMIN, clock), clock, INVESTIGATOR, Role.INVESTIGATOR,
             custodian=True)
    yield path, engine
    engine.dispose()


def locked_at(engine: Engine) -> object:
    with reader(engine).connect() as conn:
        return conn.execute(text("SELECT locked_at FROM trial")).scalar_one()


def at_a_terminal(args: list[str], db: Path, answer: bytes) -> Run:
    """Run trialkit with a pseudo-terminal as its stdin and type ``answer`` into it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    env |= {"TRIALKIT_DB": str(db), "TRIALKIT_USER": INVESTIGATOR,
            "TRIALKIT_PASSWORD": PASSWORD}
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "trialkit", *args], cwd=db.parent,
                                env=env, stdin=secondary, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(0.2)
        os.write(primary, answer)
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(secondary)
        os.close(primary)
    assert "Traceback" not in err, err
    return Run(proc.returncode, out, err)


def test_without_a_terminal_lock_needs_yes_and_writes_nothing(
    trial: tuple[Path, Engine],
) -> None:
    path, engine = trial
    before = state_of(engine)
    run = trialkit("lock", db=path, cwd=path.parent, user=INVESTIGATOR)
    assert run.code == 1
    assert "cannot be undone" in run.err and "--yes" in run.err
    assert locked_at(engine) is None
    assert state_of(engine) == before  # not even a sign-in


def test_n_piped_into_lock_does_not_lock(trial: tuple[Path, Engine]) -> None:
    """`echo n | trialkit lock` locked the trial: a pipe is no terminal."""
    path, engine = trial
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    env |= {"TRIALKIT_DB": str(path), "TRIALKIT_USER": INVESTIGATOR,
            "TRIALKIT_PASSWORD": PASSWORD}
    before = state_of(engine)
    done = subprocess.run([sys.executable, "-m", "trialkit", "lock"], input="n\n", env=env,
                          cwd=path.parent, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 1, done.stderr
    assert locked_at(engine) is None
    assert state_of(engine) == before


@pytest.mark.parametrize("answer", [b"n\n", b"no\n", b"\n", b"\x04"],
                         ids=["n", "no", "just enter", "end of input"])
def test_at_a_terminal_anything_but_yes_aborts_the_lock(
    trial: tuple[Path, Engine], answer: bytes
) -> None:
    path, engine = trial
    before = state_of(engine)
    run = at_a_terminal(["lock"], path, answer)
    assert "Lock KETHEAD now?" in run.out
    assert run.code == 1, run.err
    assert "not confirmed" in run.err
    assert locked_at(engine) is None
    assert state_of(engine) == before


def test_at_a_terminal_y_locks(trial: tuple[Path, Engine]) -> None:
    path, engine = trial
    run = at_a_terminal(["lock"], path, b"y\n")
    assert run.code == 0, run.err
    assert "Locked KETHEAD" in run.out
    assert locked_at(engine) is not None


def test_lock_with_yes_locks_without_a_terminal(trial: tuple[Path, Engine]) -> None:
    path, engine = trial
    run = trialkit("lock", "--yes", db=path, cwd=path.parent, user=INVESTIGATOR)
    assert run.code == 0, run.err
    assert locked_at(engine) is not None
    assert state_of(engine).actions[-3:] == ["login", "trial.lock", "audit.checkpoint"]
    assert (path.parent / "kethead-lock.checkpoint.json").is_file()  # in the current folder


def test_without_a_terminal_an_emergency_unblinding_needs_yes(
    trial: tuple[Path, Engine],
) -> None:
    """Refused before anyone signs in or any envelope is opened."""
    path, engine = trial
    before = state_of(engine)
    run = trialkit("unblind", "TWH-001", "--reason", "suspected anaphylaxis", db=path,
                   cwd=path.parent, user=INVESTIGATOR)
    assert run.code == 1
    assert "cannot be undone" in run.err and "--yes" in run.err
    assert state_of(engine) == before


def test_at_a_terminal_n_aborts_an_emergency_unblinding(trial: tuple[Path, Engine]) -> None:
    path, engine = trial
    before = state_of(engine)
    run = at_a_terminal(["unblind", "TWH-001", "--reason", "suspected anaphylaxis"], path,
                        b"n\n")
    assert "Unblind TWH-001?" in run.out
    assert run.code == 1, run.err
    assert state_of(engine) == before


def test_without_a_terminal_a_schema_upgrade_needs_yes(trial: tuple[Path, Engine]) -> None:
    path, engine = trial
    with engine.begin() as conn:  # as if made by the trialkit before the newest migration
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    before = state_of(engine)
    run = trialkit("db", "upgrade", db=path, cwd=path.parent)
    assert run.code == 1
    assert "cannot be undone" in run.err and "--yes" in run.err
    with reader(engine).connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == (
            "0001")
    assert state_of(engine) == before
