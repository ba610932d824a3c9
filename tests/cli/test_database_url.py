"""A database URL's password is never printed, displayed or put on a command line: `init`
names the database as ``postgresql://USER@HOST/DB``, the TUI header likewise, and `serve`
hands the URL to its child processes in their environment, not in their argv."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tests.cli.test_cli import assert_done, trialkit
from tests.conftest import ADMIN, KETHEAD, PASSWORD, PG_URL, SteppingClock, pg_schema_url
from tests.tui.conftest import new_trial, screen_text, settle
from trialkit.store.db import normalize_url
from trialkit.store.urls import public_url
from trialkit.tui.app import make_app

SECRET = "Zq7-not-for-your-eyes"


def with_password(url: str, user: str = "postgres") -> str:
    """``url`` carrying a password (the test server trusts local connections, so any
    password works and the command really connects)."""
    return make_url(url).set(username=user, password=SECRET).render_as_string(hide_password=False)


@pytest.fixture
def pg_url_with_password() -> Iterator[str]:
    """An empty PostgreSQL schema, reached through a URL that carries a password."""
    if PG_URL is None:
        pytest.skip("PostgreSQL-only test: set TRIALKIT_TEST_PG_URL (CI does)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield with_password(pg_schema_url(schema))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("postgresql://bob:pw@db.example/kethead", "postgresql://bob@db.example/kethead"),
        ("postgresql+psycopg://bob:p%40ss@h:5433/d?sslmode=require",
         "postgresql+psycopg://bob@h:5433/d?sslmode=require"),
        ("postgresql://bob@h/d?password=pw&sslmode=require", "postgresql://bob@h/d?sslmode=require"),
        ("postgresql://h/d", "postgresql://h/d"),
        ("trial.db", "trial.db"),
    ],
)
def test_a_database_is_shown_without_its_password(given: str, shown: str) -> None:
    assert public_url(given) == shown


def test_init_names_the_database_without_its_password(
    pg_url_with_password: str, tmp_path: Path
) -> None:
    run = trialkit("init", str(KETHEAD), "--admin", ADMIN, db=pg_url_with_password,
                   cwd=tmp_path, user=None, password=None, new_password=PASSWORD)
    assert_done(run)
    assert SECRET not in run.out
    url = make_url(pg_url_with_password)
    assert f"in postgresql+psycopg://postgres@{url.host}:{url.port}/{url.database}" in run.out
    as_json = trialkit("--json", "audit", "verify", db=pg_url_with_password, cwd=tmp_path)
    assert SECRET not in as_json.out + as_json.err


def test_init_json_names_the_database_without_its_password(
    pg_url_with_password: str, tmp_path: Path
) -> None:
    run = trialkit("--json", "init", str(KETHEAD), "--admin", ADMIN, db=pg_url_with_password,
                   cwd=tmp_path, user=None, password=None, new_password=PASSWORD)
    assert_done(run)
    assert SECRET not in run.out
    assert json.loads(run.out)["database"].startswith("postgresql+psycopg://postgres@")


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://someone:{SECRET}@127.0.0.1:1/nowhere"
    run = trialkit("audit", "verify", db=url, cwd=tmp_path)
    assert run.code == 2
    assert "postgresql+psycopg://someone@127.0.0.1:1/nowhere" in run.err
    assert SECRET not in run.out + run.err


async def test_the_tui_header_names_the_database_without_its_password(
    tmp_path: Path, clock: SteppingClock
) -> None:
    engine = new_trial(f"sqlite:///{tmp_path / 'kethead.db'}", clock, training=False)
    label = f"postgresql://cora:{SECRET}@db.example/kethead"
    app = make_app(engine, clock=clock, db_label=label, training=False)
    async with app.run_test(size=(100, 24)) as pilot:
        await settle(pilot)
        assert "postgresql://cora@db.example/kethead" in app.sub_title
        assert SECRET not in app.sub_title + app.title + screen_text(app)
    engine.dispose()


def test_serve_passes_the_database_to_its_children_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command each browser session runs carries no URL; the URL is in the environment
    the child processes inherit (textual-serve copies os.environ into each child's)."""
    from types import SimpleNamespace

    from trialkit.cli import context
    from trialkit.cli.app import app

    url = f"postgresql://cora:{SECRET}@db.example/kethead"
    served: dict[str, Any] = {}

    def fake_run(gate: Any) -> None:
        import os

        served["command"] = gate.command
        served["settings"] = gate.settings
        served["env"] = os.environ.get("TRIALKIT_DB")

    monkeypatch.setattr("trialkit.web.gate.serve", fake_run)
    monkeypatch.setattr(context.Cli, "engine", lambda self, **_: None)
    monkeypatch.setattr(context.Cli, "trial", lambda self, **_: SimpleNamespace(
        title="KetHead", training=True, idle_lock_minutes=15, second_factor=False))
    monkeypatch.delenv("TRIALKIT_DB", raising=False)
    result = CliRunner().invoke(app, ["--db", url, "serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert SECRET not in served["command"]
    assert "--db" not in served["command"]
    assert served["command"].endswith("-m trialkit tui")
    assert served["env"] == url
    assert served["settings"].host == "127.0.0.1"
    assert served["settings"].port == 8123
