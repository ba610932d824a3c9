"""Start-up: the sign-in screen paints before any database work; the database opens in
the first worker, and `trialkit tui` keeps the TRIALKIT_CLOCK rule of training trials."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session
from textual.pilot import Pilot
from textual.widgets import Static

from tests.conftest import SteppingClock
from tests.tui.conftest import app_for, new_trial, notifications, settle, sign_in
from trialkit.application import opening
from trialkit.cli.app import open_tui
from trialkit.cli.context import Cli
from trialkit.domain.clock import FixedClock, SystemClock
from trialkit.domain.errors import InvalidInput, Refused
from trialkit.services.administration import trial as services_trial
from trialkit.services.administration.trial import TrialInfo
from trialkit.tui.app import TrialkitApp, make_app
from trialkit.tui.screens.login import LoginScreen
from trialkit.tui.widgets.training_banner import TrainingBanner


async def test_the_database_opens_in_a_worker_after_the_sign_in_screen(
    engine: Engine, clock: SteppingClock
) -> None:
    seen: list[tuple[bool, object]] = []

    def open_engine() -> Engine:
        seen.append((threading.current_thread() is threading.main_thread(), app.screen))
        return engine

    app = app_for(open_engine, clock)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert len(seen) == 1
        in_main_thread, screen = seen[0]
        assert not in_main_thread
        assert isinstance(screen, LoginScreen)
        assert "the KetHead study" in str(app.screen.query_one("#login-trial", Static).render())


async def test_a_database_that_will_not_open_is_said_on_the_sign_in_screen(
    clock: SteppingClock,
) -> None:
    def open_engine() -> Engine:
        raise InvalidInput("no trialkit database at /nowhere/trial.db")

    app = app_for(open_engine, clock)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        line = app.screen.query_one("#login-trial", Static)
        assert "no trialkit database at /nowhere/trial.db" in str(line.render())
        assert line.has_class("error")
        assert "no trialkit database at /nowhere/trial.db" in notifications(app)
        assert app.return_code is None


async def test_training_shows_as_soon_as_the_trial_is_read(
    training_engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(lambda: training_engine, clock, training=False)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.training
        assert app.screen.query_one(TrainingBanner).display


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[TrialkitApp]:
    """Apps `open_tui` would run, caught instead of run."""
    apps: list[TrialkitApp] = []
    monkeypatch.setattr(TrialkitApp, "run", lambda self, **_: apps.append(self))
    monkeypatch.delenv("TRIALKIT_CLOCK", raising=False)
    return apps


def test_trialkit_tui_starts_the_app_before_opening_the_database(
    tmp_path: Path, started: list[TrialkitApp]
) -> None:
    # Not even a database: nothing is opened before the app runs, only the file is looked for.
    db = tmp_path / "trial.db"
    db.touch()
    cli = Cli(db=str(db))
    open_tui(cli)
    [app] = started
    assert cli._engine is None and cli._info is None
    assert isinstance(app.db.clock, SystemClock)
    assert not app.training


def test_trialkit_tui_names_a_missing_database_file_at_once(
    tmp_path: Path, started: list[TrialkitApp]
) -> None:
    with pytest.raises(InvalidInput, match="no trialkit database at"):
        open_tui(Cli(db=str(tmp_path / "typo.db")))
    assert started == []


def test_a_stated_clock_is_refused_by_a_live_trial_before_the_app_starts(
    engine: Engine, db_url: str, started: list[TrialkitApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIALKIT_CLOCK", "2026-03-02T09:00:00Z")
    cli = Cli(db=db_url)
    with pytest.raises(Refused, match="TRIALKIT_CLOCK is set, but this is a live trial"):
        open_tui(cli)
    assert started == []
    cli.engine().dispose()


def test_a_training_trial_takes_the_stated_clock_and_shows_training_at_once(
    training_engine: Engine, db_url: str, started: list[TrialkitApp],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIALKIT_CLOCK", "2026-03-02T09:00:00Z")
    cli = Cli(db=db_url)
    open_tui(cli)
    cli.engine().dispose()
    [app] = started
    assert app.training
    assert isinstance(app.db.clock, FixedClock)
    assert app.db.clock.now().isoformat() == "2026-03-02T09:00:00+00:00"


@pytest.mark.parametrize("training", [True, False])
async def test_a_sqlite_file_shows_its_title_and_training_before_the_engine_opens(
    tmp_path: Path, clock: SteppingClock, training: bool
) -> None:
    """Given the file, the sign-in screen reads the title and TRAINING with the standard
    library while the engine is still opening (held here until the test lets it go)."""
    path = tmp_path / "glance.db"
    engine = new_trial(f"sqlite:///{path}", clock, training=training)
    release = threading.Event()

    def open_engine() -> Engine:
        release.wait(timeout=30)
        return engine

    app = make_app(open_engine, clock=clock, db_label=str(path), training=False,
                   sqlite_file=path)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            for _ in range(3000):  # up to 30 s on a loaded machine; a glance takes ms
                await pilot.pause(0.01)
                if "the KetHead study" in str(
                        app.screen.query_one("#login-trial", Static).render()):
                    break
            assert "the KetHead study" in str(
                app.screen.query_one("#login-trial", Static).render())
            assert app.screen.query_one(TrainingBanner).display is training
            assert not release.is_set()
            release.set()
            await settle(pilot)
            assert app.trial is not None and app.trial.training is training
    finally:
        release.set()
        engine.dispose()


def as_typed(db_url: str) -> str:
    """The database as a user names it: a SQLite file by its path, a server by its URL."""
    return db_url.removeprefix("sqlite:///") if db_url.startswith("sqlite:///") else db_url


async def until_shown(pilot: Pilot[None], words: str) -> str:
    """The sign-in screen's trial line once it holds ``words`` (or after 30 s)."""
    line = ""
    for _ in range(3000):  # a glance takes milliseconds; a loaded machine is slow
        line = str(pilot.app.screen.query_one("#login-trial", Static).render())
        if words in line:
            break
        await pilot.pause(0.01)
    return line


async def test_trialkit_tui_shows_a_sqlite_files_title_before_the_database_opens(
    engine: Engine, db_url: str, started: list[TrialkitApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`trialkit --db FILE tui` glances at the file (title, TRAINING) while the engine is
    still opening (held here); a server database shows nothing before it opens."""
    release, opened = threading.Event(), threading.Event()
    real_open = opening.open_engine

    def held_open(db: str, **options: bool) -> Engine:
        release.wait(timeout=60)
        opened.set()
        return real_open(db, **options)

    monkeypatch.setattr(opening, "open_engine", held_open)
    open_tui(Cli(db=as_typed(db_url)))
    [app] = started
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            on_sqlite = db_url.startswith("sqlite")
            if on_sqlite:
                assert "the KetHead study" in await until_shown(pilot, "the KetHead study")
            else:
                await pilot.pause(0.2)
                assert "the KetHead study" not in await until_shown(pilot, "Reading")
            assert not opened.is_set()
            release.set()
            assert "the KetHead study" in await until_shown(pilot, "the KetHead study")
            await settle(pilot)
            while app.trial is None and app.workers:
                await settle(pilot)
            assert app.trial is not None and app.trial.title.endswith("the KetHead study")
            app.db.engine.dispose()
    finally:
        release.set()


async def test_an_old_schema_is_refused_on_the_sign_in_screen(
    engine: Engine, db_url: str, clock: SteppingClock, started: list[TrialkitApp]
) -> None:
    """A database one migration behind shows its title at a glance (a SQLite file), then
    the refusal; signing in is refused too, naming the upgrade."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0012'"))
    open_tui(Cli(db=as_typed(db_url)))
    [app] = started
    async with app.run_test(size=(80, 24)) as pilot:
        line = await until_shown(pilot, "older than this trialkit")
        assert "database schema 0012 is older than this trialkit" in line
        assert "trialkit db upgrade" in line
        assert app.screen.query_one("#login-trial", Static).has_class("error")
        assert app.trial is None
        await sign_in(pilot)
        said = str(app.screen.query_one("#sign-in-message", Static).render())
        assert "older than this trialkit" in said
        assert isinstance(app.screen, LoginScreen) and app.actor is None


async def test_without_a_glance_the_title_shows_before_the_full_read(
    engine: Engine, clock: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database given by its URL (a server, or SQLite by URL) shows its title by one
    light query once open, while the full read (models, protocol) is still under way."""
    release, read = threading.Event(), threading.Event()
    real_trial_info = services_trial.trial_info

    def held_trial_info(session: Session) -> TrialInfo:
        release.wait(timeout=60)
        read.set()
        return real_trial_info(session)

    monkeypatch.setattr(services_trial, "trial_info", held_trial_info)
    app = app_for(lambda: engine, clock)  # type: ignore[arg-type]
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            assert "the KetHead study" in await until_shown(pilot, "the KetHead study")
            assert not read.is_set() and app.trial is None
            release.set()
            await settle(pilot)
            while app.trial is None and app.workers:
                await settle(pilot)
            assert app.trial is not None and app.trial.title.endswith("the KetHead study")
    finally:
        release.set()


LOADED_WHEN_THE_APP_RUNS = """
import json, sys
from trialkit.tui.app import TrialkitApp

def run(self, **_):
    print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))

TrialkitApp.run = run
sys.argv = ["trialkit", "--db", sys.argv[1], "tui"]
from trialkit.__main__ import main
main()
"""


def test_trialkit_tui_starts_the_app_having_loaded_no_database_library(tmp_path: Path) -> None:
    """`trialkit --db FILE tui` reaches the app with nothing of the database layer, the
    models or the cryptography loaded: the first frame waits for none of them (a fact about
    the code, read from sys.modules, not a timing)."""
    db = tmp_path / "trial.db"
    db.touch()
    done = subprocess.run([sys.executable, "-c", LOADED_WHEN_THE_APP_RUNS, str(db)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "textual" in loaded  # the probe saw the app about to run
    heavy = {"sqlalchemy", "sqlmodel", "pydantic", "alembic", "psycopg", "cryptography",
             "argon2", "typer"}
    assert loaded.isdisjoint(heavy), loaded & heavy
