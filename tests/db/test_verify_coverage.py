"""``audit verify`` covers what no event records in full (the time an envelope was bound,
the strata), and runs on a read-only copy of the database writing nothing: no sign-in is
needed, and anything that would write is refused in one line."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text, update
from sqlmodel import Session, select

from tests.builders import ready_to_randomize, seal, staff
from tests.conftest import PASSWORD, SteppingClock
from tests.db.tampering import verify, verify_on
from trialkit.domain.errors import Refused
from trialkit.services.actor import Actor
from trialkit.services.enrolment.participants import randomize
from trialkit.services.integrity import verification
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.store.models import Envelope

ENVELOPES = Envelope.__table__  # type: ignore[attr-defined]


@pytest.fixture
def randomized(engine: Engine, admin: Actor, clock: SteppingClock) -> str:
    """Sealed lists and one randomized participant at TWH."""
    actors = staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=4)
    pid = ready_to_randomize(engine, actors["cora"], clock, site="TWH").id
    clock.advance(minutes=3)
    with transaction(engine) as s:
        randomize(s, actors["cora"], pid, clock=clock)
    assert verify(engine).ok
    return pid


@pytest.fixture
def tampered(engine: Engine) -> Iterator[Connection]:
    """A connection whose changes are rolled back after the test looked at them."""
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            yield conn
        finally:
            trans.rollback()


def _bound_envelope(conn: Connection, pid: str) -> tuple[int, datetime]:
    with Session(bind=conn) as s:
        envelope = s.exec(select(Envelope).where(Envelope.participant_id == pid)).one()
    assert envelope.id is not None and envelope.bound_at is not None
    return envelope.id, envelope.bound_at


def _set_bound_at(conn: Connection, where: str, at: datetime) -> None:
    conn.execute(update(ENVELOPES).where(text(where)).values(bound_at=at))


def _problem(conn: Connection) -> str:
    report = verify_on(conn)
    assert not report.ok
    assert report.problem is not None
    return report.problem


def test_a_changed_binding_time_is_caught(randomized: str, tampered: Connection) -> None:
    envelope, bound_at = _bound_envelope(tampered, randomized)
    _set_bound_at(tampered, f"id = {envelope}", bound_at + timedelta(hours=5))
    assert "binding time was changed" in _problem(tampered)


def test_a_binding_time_on_an_unused_envelope_is_caught(
    randomized: str, tampered: Connection
) -> None:
    _envelope, bound_at = _bound_envelope(tampered, randomized)
    _set_bound_at(tampered, "id = (SELECT MIN(e.id) FROM envelope e "
                  "WHERE e.participant_id IS NULL)", bound_at)
    assert "no randomization event that bound it" in _problem(tampered)


@pytest.mark.parametrize("change", [
    "UPDATE stratum SET levels_json = '{\"headache_type\": \"CM\"}' WHERE code = 'TWH-CDH'",
    "UPDATE stratum SET site_code = 'SHS' WHERE code = 'TWH-CM'",
    "INSERT INTO stratum (code, site_code, levels_json) VALUES ('TWH-XX', 'TWH', '{}')",
])
def test_a_changed_stratum_is_caught(randomized: str, tampered: Connection, change: str) -> None:
    codes = {r[0] for r in tampered.execute(text("SELECT code FROM stratum"))}
    assert {"TWH-CM", "TWH-CDH"} <= codes, codes  # kethead.toml's site x headache type
    tampered.execute(text(change))
    assert "stratum" in _problem(tampered)


# --- a read-only copy ------------------------------------------------------------------------


def _trialkit(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    env["TRIALKIT_PASSWORD"] = PASSWORD
    if user:
        env["TRIALKIT_USER"] = user
    return subprocess.run([sys.executable, "-m", "trialkit", *args], env=env,
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_verify_runs_on_a_read_only_sqlite_copy_and_writes_nothing(
    randomized: str, engine: Engine, tmp_path: Path
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("a file copy is SQLite's")
    source = Path(str(engine.url.database))
    engine.dispose()  # the last connection to close folds the WAL into the file
    copy = tmp_path / "copy of trial.db"
    shutil.copyfile(source, copy)
    before = _digest(copy)
    uri = f"file:{copy.as_posix().replace(' ', '%20')}?mode=ro"
    for args in (["--db", uri, "audit", "verify"],
                 ["--db", str(copy), "audit", "verify", "--read-only"]):
        shown = _trialkit(*args)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith("OK: ")
    writing = _trialkit("--db", uri, "participants", user="cora")
    assert writing.returncode == 1
    assert writing.stderr.strip().splitlines() == [
        "Refused: the database is open read-only: this step writes (a sign-in is recorded "
        "too); only `trialkit audit verify` works on a read-only copy"]
    assert _digest(copy) == before


def test_a_read_only_engine_refuses_to_write_on_either_backend(
    randomized: str, db_url: str
) -> None:
    engine = make_engine(db_url, read_only=True)
    try:
        assert verify(engine).ok
        with pytest.raises(Refused, match="read-only"):
            with transaction(engine):
                pass
        if engine.dialect.name == "postgresql":  # the server refuses as well
            with engine.connect() as conn, pytest.raises(Exception, match="read-only"):
                conn.execute(text("INSERT INTO site (code, name, target) VALUES ('X', 'X', 1)"))
    finally:
        engine.dispose()


def test_verify_reports_its_progress_up_to_every_row_it_reads(
    randomized: str, engine: Engine
) -> None:
    """The progress it reports climbs to its total: every audit event and every row of the
    tables whose state the trail records (counted here with plain SQL)."""
    tables = ("audit_event", "app_user", "trial", "participant", "allocation_list", "diary_entry",
              "preparation")
    with engine.connect() as conn:
        expected = sum(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                       for t in tables)
    seen: list[tuple[int, int]] = []
    with read_only(engine) as s:
        assert verification.verify(s, progress=lambda done, total: seen.append((done, total))).ok
    assert seen[0] == (0, expected)
    assert seen[-1] == (expected, expected)
    assert [done for done, _total in seen] == sorted(done for done, _total in seen)
    assert expected > 0
