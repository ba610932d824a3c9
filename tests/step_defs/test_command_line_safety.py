"""Steps for ``features/command_line_safety.feature``: every command runs through the real
``trialkit`` entry point in a subprocess, with no terminal, as a script would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pytest_bdd import given, parsers, scenarios, then, when
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.cli.test_cli import Run, State, state_of, trialkit
from tests.cli.test_confirmation import INVESTIGATOR, at_a_terminal
from tests.conftest import (
    ADMIN,
    KETHEAD,
    PASSWORD,
    PG_URL,
    SteppingClock,
    add_user,
    pg_schema_url,
    sign_in,
)
from tests.db.tampering import reader
from trialkit.domain.clock import parse_clock
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.administration.setup import initialize
from trialkit.store.db import make_engine, normalize_url

scenarios("command_line_safety.feature")

DB_PASSWORD = "a-database-secret-9"


@dataclass
class World:
    workdir: Path
    db: str = ""
    runs: list[Run] = field(default_factory=list)
    before: State | None = None

    @property
    def last(self) -> Run:
        assert self.runs, "no trialkit command has run in this scenario"
        return self.runs[-1]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(workdir=tmp_path)


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """An empty PostgreSQL schema of its own (dropped afterwards)."""
    if PG_URL is None:
        pytest.skip("PostgreSQL-only scenario: set TRIALKIT_TEST_PG_URL (CI does)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# --- Rule: a database password is never shown ------------------------------------------------


@given("a PostgreSQL database reached through a URL that carries a password")
def pg_with_password(world: World, pg_schema: str) -> None:
    url = make_url(pg_schema_url(pg_schema)).set(username="postgres", password=DB_PASSWORD)
    world.db = url.render_as_string(hide_password=False)


@when("the admin creates the trial there from the command line")
def admin_inits(world: World) -> None:
    world.runs.append(trialkit("init", str(KETHEAD), "--admin", ADMIN, db=world.db,
                               cwd=world.workdir, user=None, password=None,
                               new_password=PASSWORD))
    assert world.last.code == 0, world.last.err


@then(parsers.parse('the output names the database as "{shape}"'))
def names_database(world: World, shape: str) -> None:
    url = make_url(world.db)
    expected = (shape.replace("USER", str(url.username)).replace("HOST", f"{url.host}:{url.port}")
                .replace("DB", str(url.database)))
    assert f" in {expected}?" in world.last.out


@then("the password appears nowhere in what the command printed")
def no_password(world: World) -> None:
    for run in world.runs:
        assert DB_PASSWORD not in run.out + run.err


# --- Rule: the demo never costs anyone a trial -----------------------------------------------

# What README tells every trainee: the one password of every demo user.
DEMO_PASSWORD = "orchard-violin-demo"


def trial_state(world: World) -> State:
    engine = make_engine(world.db)
    try:
        return state_of(engine)
    finally:
        engine.dispose()


@given(parsers.parse('the live KetHead trial in the database "{name}"'))
def live_trial(world: World, name: str, clock: SteppingClock) -> None:
    world.db = str(world.workdir / name)
    engine = make_engine(world.db, must_exist=False)
    initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
               training=False, clock=clock)
    engine.dispose()
    world.before = trial_state(world)


@when(parsers.parse('a trainer runs "{command}" with that database'))
def trainer_runs(world: World, command: str) -> None:
    words = command.split()
    assert words[0] == "trialkit"
    world.runs.append(trialkit(*words[1:], db=world.db, cwd=world.workdir, user=None,
                               password=None))


@then(parsers.parse('the command is refused, naming the live trial "{code}"'))
def refused_naming(world: World, code: str) -> None:
    assert world.last.code == 1, world.last.err
    assert f"LIVE trial {code}" in world.last.err
    assert "nothing was changed" in world.last.err


@then("the demo password is not printed")
def no_demo_password(world: World) -> None:
    assert DEMO_PASSWORD not in world.last.out + world.last.err


@then("the live trial is exactly as it was")
def trial_unchanged(world: World) -> None:
    assert trial_state(world) == world.before


# --- Rule: a script can read every answer as JSON ---------------------------------------------


@when(parsers.parse('a script runs "{command}" as the admin'))
def script_runs(world: World, command: str) -> None:
    words = command.split()
    assert words[0] == "trialkit"
    world.runs.append(trialkit(*words[1:], db=world.db, cwd=world.workdir))


@then(parsers.parse('it reads one JSON document saying "{error}" with exit code {code:d}'))
def reads_json_error(world: World, error: str, code: int) -> None:
    assert world.last.code == code, world.last.err
    doc = json.loads(world.last.out)
    assert set(doc) == {"error", "exit_code"}
    assert doc["exit_code"] == code
    assert error in doc["error"]


@then("a person reading the terminal sees the same message as text")
def same_message_on_stderr(world: World) -> None:
    assert json.loads(world.last.out)["error"] in world.last.err


# --- Rule: what cannot be undone is confirmed first -------------------------------------------


def locked(world: World) -> bool:
    engine = make_engine(world.db)
    try:
        with reader(engine).connect() as conn:
            return conn.execute(text("SELECT locked_at FROM trial")).scalar_one() is not None
    finally:
        engine.dispose()


@given(parsers.parse('the investigator "{name}" on its team'))
def investigator(world: World, name: str, clock: SteppingClock) -> None:
    engine = make_engine(world.db)
    add_user(engine, sign_in(engine, ADMIN, clock), clock, name, Role.INVESTIGATOR)
    engine.dispose()
    world.before = trial_state(world)


@when(parsers.parse('"{name}" pipes "{answer}" into "{command}"'))
def pipes_answer(world: World, name: str, answer: str, command: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    env |= {"TRIALKIT_DB": world.db, "TRIALKIT_USER": name, "TRIALKIT_PASSWORD": PASSWORD}
    done = subprocess.run([sys.executable, "-m", *command.split()], input=f"{answer}\n",
                          env=env, cwd=world.workdir, capture_output=True, text=True,
                          timeout=60, check=False)
    world.runs.append(Run(done.returncode, done.stdout, done.stderr))


@when(parsers.parse('"{name}" answers "{answer}" at the terminal to "{command}"'))
def answers_at_terminal(world: World, name: str, answer: str, command: str) -> None:
    assert name == INVESTIGATOR
    world.runs.append(at_a_terminal(command.split()[1:], Path(world.db), f"{answer}\n".encode()))


@when(parsers.parse('"{name}" runs "{command}"'))
def runs(world: World, name: str, command: str) -> None:
    world.runs.append(trialkit(*command.split()[1:], db=world.db, cwd=world.workdir, user=name))


@then("the command is refused because it cannot be undone without --yes")
def refused_without_yes(world: World) -> None:
    assert world.last.code == 1, world.last.err
    assert "cannot be undone" in world.last.err and "give --yes" in world.last.err


@then(parsers.parse('he was asked "{question}"'))
def was_asked(world: World, question: str) -> None:
    assert question in world.last.out
    assert world.last.code == 1, world.last.err


@then("the database is not locked and nothing at all was recorded")
def not_locked(world: World) -> None:
    assert not locked(world)
    assert trial_state(world) == world.before


@then("the database is locked")
def is_locked(world: World) -> None:
    assert world.last.code == 0, world.last.err
    assert locked(world)


# --- Rule: a training trial's clock only moves forward ----------------------------------------


@given(parsers.parse('a training trial whose last audit event happened at "{at}"'))
def training_trial_at(world: World, at: str) -> None:
    world.db = str(world.workdir / "training.db")
    engine = make_engine(world.db, must_exist=False)
    initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
               training=True, clock=parse_clock(at))
    engine.dispose()
    world.before = trial_state(world)


@when(parsers.parse('the admin lists the users with TRIALKIT_CLOCK set to "{at}"'))
def lists_users_at(world: World, at: str) -> None:
    world.runs.append(trialkit("user", "list", db=world.db, cwd=world.workdir, clock=at))


@then("the command is refused because the time is earlier than the last audit event")
def refused_clock_back(world: World) -> None:
    assert world.last.code == 1, world.last.err
    assert "earlier than this training trial's last audit event" in world.last.err


@then("nothing at all was recorded")
def nothing_recorded(world: World) -> None:
    assert trial_state(world) == world.before
