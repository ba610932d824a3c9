"""Steps for ``features/command_line_safety.feature``: every command runs through the real
``trialkit`` entry point in a subprocess, with no terminal, as a script would run it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pytest_bdd import given, parsers, scenarios, then, when
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.cli.test_cli import Run, trialkit
from tests.conftest import ADMIN, KETHEAD, PASSWORD, PG_URL, pg_schema_url
from trialkit.store.db import normalize_url

scenarios("command_line_safety.feature")

DB_PASSWORD = "a-database-secret-9"


@dataclass
class World:
    workdir: Path
    db: str = ""
    runs: list[Run] = field(default_factory=list)

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
