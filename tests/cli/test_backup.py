"""Backups drilled as a site would: build a trial, back it up, keep working, restore into a
new database, verify it, and see what the backup lacks. ``db upgrade`` from every earlier
schema takes a backup first and records the upgrade. On SQLite and PostgreSQL (each drill
in databases of its own: pg_dump backs up a whole database)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    Date,
    Engine,
    MetaData,
    String,
    Text,
    create_engine,
    select,
    text,
    type_coerce,
)
from sqlalchemy.engine import make_url

from tests.builders import ready_to_randomize, seal, staff
from tests.cli.test_cli import assert_done, assert_refused, trialkit
from tests.conftest import ADMIN, BACKENDS, KETHEAD, PASSWORD, PG_URL, SteppingClock, sign_in
from tests.db.tampering import reader
from trialkit.domain.protocol import load_protocol
from trialkit.services.administration.setup import initialize
from trialkit.services.enrolment.participants import randomize
from trialkit.services.integrity import audit
from trialkit.store import schema
from trialkit.store.db import make_engine, normalize_url, transaction


class Databases:
    """New, empty databases for one test: SQLite files, or PostgreSQL databases."""

    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.backend, self.tmp_path, self.made = backend, tmp_path, []

    def new(self, name: str) -> str:
        if self.backend == "sqlite":
            return str(self.tmp_path / f"{name}.db")
        assert PG_URL is not None
        db = f"{name}_{uuid.uuid4().hex[:10]}"
        with self._admin().connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db}"'))
        self.made.append(db)
        return make_url(normalize_url(PG_URL)).set(database=db).render_as_string(
            hide_password=False)

    def _admin(self) -> Engine:
        assert PG_URL is not None
        return create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")

    def drop_all(self) -> None:
        if self.made:
            admin = self._admin()
            with admin.connect() as conn:
                for db in self.made:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            admin.dispose()


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    dbs = Databases(request.param, tmp_path)
    yield dbs
    dbs.drop_all()


def events(engine: Engine) -> list[dict[str, object]]:
    with reader(engine).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(
            "SELECT seq, action, entity, entity_id, user_name, before_json, after_json, hash "
            "FROM audit_event ORDER BY seq"))]


def participants(engine: Engine) -> dict[str, str | None]:
    with reader(engine).connect() as conn:
        return {r[0]: r[1] for r in conn.execute(text(
            "SELECT id, randomized_at FROM participant ORDER BY id"))}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_backup_drill(databases: Databases, tmp_path: Path) -> None:
    # the work before the backup happened before the admin (on the real clock) took it
    clock = SteppingClock(datetime.now(UTC) - timedelta(days=90))
    live_url = databases.new("live")
    live = make_engine(live_url, must_exist=False)
    initialize(live, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
               training=False, clock=clock)
    admin = sign_in(live, ADMIN, clock)
    people = staff(live, admin, clock)
    seal(live, admin, clock, per_stratum=4)
    first = ready_to_randomize(live, people["cora"], clock, site="TWH", age=33)
    with transaction(live) as s:
        randomize(s, people["cora"], first.id, clock=clock)
    # what the backup must hold: every event so far (plus the admin's sign-in for it)
    so_far = events(live)

    out = tmp_path / "kethead.backup"
    run = trialkit("--json", "backup", "--out", str(out), db=live_url, cwd=tmp_path)
    assert_done(run)
    taken = json.loads(run.out)
    signed_in = so_far[-1]["seq"] + 1  # type: ignore[operator]
    assert taken["events"] == signed_in and taken["sha256"] == sha256(out)
    backup_event = events(live)[-1]
    assert (backup_event["action"], backup_event["user_name"]) == ("db.backup", ADMIN)
    assert json.loads(str(backup_event["after_json"]))["sha256"] == sha256(out)
    assert taken["head"] == events(live)[signed_in - 1]["hash"]

    # keep working after the backup
    clock.at = datetime.now(UTC) + timedelta(minutes=1)
    second = ready_to_randomize(live, people["tess"], clock, site="TWH", age=58)
    with transaction(live) as s:
        randomize(s, people["tess"], second.id, clock=clock)

    restored_url = databases.new("restored")
    run = trialkit("--json", "restore-check", str(out), "--into", restored_url,
                   db=live_url, cwd=tmp_path)
    assert_done(run)
    checked = json.loads(run.out)
    assert (checked["ok"], checked["events"], checked["head"]) == (True, signed_in,
                                                                   taken["head"])
    restored = make_engine(restored_url)
    try:
        # the live chain still contains the backup's head: nothing before it was rewritten
        assert_done(trialkit("audit", "verify", "--head", taken["head"], db=live_url,
                             cwd=tmp_path))
        assert_done(trialkit("audit", "verify", db=restored_url, cwd=tmp_path))
        assert_done(trialkit("list", "verify", db=restored_url, cwd=tmp_path))
        # what the backup lacks: its own record, and all the work done after it
        lacks = events(live)[signed_in:]
        assert [e["action"] for e in lacks][0] == "db.backup"
        assert second.id in {e["entity_id"] for e in lacks}
        assert first.id not in {e["entity_id"] for e in lacks}
        assert events(restored) == events(live)[:signed_in]
        # restore-check says the backup's schema and what it lacks against the live database
        with reader(live).connect() as conn:
            live_schema = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert checked["schema"] == live_schema
        actions: dict[str, int] = {}
        for e in lacks:
            actions[str(e["action"])] = actions.get(str(e["action"]), 0) + 1
        assert checked["live"]["schema"] == live_schema
        assert checked["live"]["events"] == len(events(live))
        assert checked["live"]["holds_backup_head"] is True
        assert (checked["live"]["lacking"], checked["live"]["lacking_actions"]) == (
            len(lacks), actions)
        said = trialkit("restore-check", str(out), "--into", databases.new("again"),
                        db=live_url, cwd=tmp_path)
        assert_done(said)
        assert f"(schema {live_schema})" in said.out
        assert f"the backup lacks the last {len(lacks)} event(s), from " in said.out
        assert "randomize 1" in said.out and "db.backup 1" in said.out
        in_backup = participants(restored)
        assert first.id in in_backup and in_backup[first.id] is not None
        assert second.id not in in_backup and participants(live)[second.id] is not None
        # the restored database is a working trial: its admin signs in
        sign_in(restored, ADMIN, clock)
    finally:
        restored.dispose()
        live.dispose()


@pytest.fixture
def sqlite_backup(tmp_path: Path) -> Path:
    clock = SteppingClock()
    path = tmp_path / "live.db"
    engine = make_engine(str(path), must_exist=False)
    initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
               training=False, clock=clock)
    admin = sign_in(engine, ADMIN, clock)
    staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=4)
    engine.dispose()
    out = tmp_path / "b.db"
    assert_done(trialkit("backup", "--out", str(out), db=path, cwd=tmp_path))
    return out


def test_restore_check_reads_a_sqlite_backup_and_leaves_it_as_it_was(
    sqlite_backup: Path,
) -> None:
    before = sha256(sqlite_backup)
    run = trialkit("restore-check", str(sqlite_backup), db="unused.db", user=None,
                   password=None, cwd=sqlite_backup.parent)
    assert_done(run)
    assert run.out.startswith("OK: ")
    assert sha256(sqlite_backup) == before
    assert sorted(p.name for p in sqlite_backup.parent.iterdir()) == ["b.db", "live.db"]


def test_restore_check_says_when_the_live_database_is_another_trial(
    sqlite_backup: Path, tmp_path: Path,
) -> None:
    """A backup checked against a database it was not taken from: its chain is not the
    live one, and restore-check says so rather than counting what it lacks."""
    other = tmp_path / "other.db"
    engine = make_engine(str(other), must_exist=False)
    initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
               training=False, clock=SteppingClock())
    engine.dispose()
    run = trialkit("--json", "restore-check", str(sqlite_backup), db=other, user=None,
                   password=None, cwd=tmp_path)
    assert_done(run)
    assert json.loads(run.out)["live"]["holds_backup_head"] is False
    run = trialkit("restore-check", str(sqlite_backup), db=other, user=None, password=None,
                   cwd=tmp_path)
    assert "its audit chain is not the live database's" in run.out


def test_a_tampered_backup_fails_restore_check(sqlite_backup: Path) -> None:
    conn = sqlite3.connect(sqlite_backup)
    conn.execute("DROP TRIGGER audit_event_no_update")
    conn.execute("UPDATE audit_event SET reason = 'edited' WHERE seq = 1")
    conn.commit()
    conn.close()
    run = trialkit("restore-check", str(sqlite_backup), db="unused.db", user=None,
                   password=None, cwd=sqlite_backup.parent)
    assert_refused(run, 1, "does not verify")


def test_a_backup_never_overwrites_a_file_and_needs_an_admin(sqlite_backup: Path) -> None:
    live = sqlite_backup.parent / "live.db"
    engine = make_engine(str(live))
    before = events(engine)
    engine.dispose()
    run = trialkit("backup", "--out", str(sqlite_backup), db=live, cwd=live.parent)
    assert_refused(run, 2, "already exists")
    engine = make_engine(str(live))
    assert events(engine) == before
    engine.dispose()


def test_a_file_that_is_no_backup_is_invalid(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup")
    run = trialkit("restore-check", str(junk), db="unused.db", cwd=tmp_path)
    assert_refused(run, 2, "neither a SQLite database nor a pg_dump")


# --- db upgrade from every earlier schema ------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A trial with staff, sealed lists and a randomized participant, at today's schema:
    the rows each older schema's tables can hold are copied from here."""
    clock = SteppingClock()
    path = tmp_path_factory.mktemp("sample") / "sample.db"
    engine = make_engine(str(path), must_exist=False)
    initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
               training=False, clock=clock)
    admin = sign_in(engine, ADMIN, clock)
    people = staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=4)
    v = ready_to_randomize(engine, people["cora"], clock)
    with transaction(engine) as s:
        randomize(s, people["cora"], v.id, clock=clock)
    yield engine
    engine.dispose()


def as_stored(column: Any, old: Any) -> Any:
    """A sample column as a schema before 0013 held it: dates as ISO text and documents as
    JSON text, which is how the sample's SQLite file stores them."""
    if isinstance(column.type, Date | JSON) and isinstance(old, String):
        return type_coerce(column, Text()).label(column.name)
    return column


def at_revision(url: str, revision: str, sample: Engine) -> None:
    """A database as the trialkit of ``revision`` made it: that schema, holding the rows
    (and columns) of the sample trial its tables have."""
    engine = make_engine(url, must_exist=False)
    try:
        with schema.migrating(engine) as conn:  # as trialkit migrates (0013 rebuilds tables)
            cfg = Config()
            cfg.set_main_option("script_location", str(schema.MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            old = MetaData()
            old.reflect(conn)
            with sample.connect() as src:
                for table in old.sorted_tables:
                    if table.name == "alembic_version":
                        continue
                    have = MetaData()
                    have.reflect(src, only=[table.name])
                    cols = [c for c in table.columns.keys() if c in have.tables[table.name].c]
                    rows = [dict(r._mapping) for r in src.execute(
                        select(*[as_stored(have.tables[table.name].c[c], table.c[c].type)
                                 for c in cols]))]
                    if rows:
                        conn.execute(table.insert(), rows)
    finally:
        engine.dispose()


@pytest.mark.parametrize("revision", schema.KNOWN_REVISIONS[:-1])
def test_db_upgrade_from_every_earlier_schema_backs_up_first_and_is_audited(
    databases: Databases, tmp_path: Path, revision: str, sample: Engine
) -> None:
    url = databases.new(f"at{revision}")
    at_revision(url, revision, sample)
    engine = make_engine(url, must_exist=False)
    kept = events(engine)
    assert schema.schema_revision(engine) == revision
    out = tmp_path / f"before-{revision}.backup"
    run = trialkit("--json", "db", "upgrade", "--yes", "--backup", str(out), db=url,
                   cwd=tmp_path)
    assert_done(run)
    done = json.loads(run.out)
    assert (done["from"], done["schema"], done["backup_sha256"]) == (
        revision, schema.KNOWN_REVISIONS[-1], sha256(out))
    assert schema.schema_revision(engine) == schema.KNOWN_REVISIONS[-1]
    if databases.backend == "sqlite":
        with sqlite3.connect(f"file:{out}?mode=ro", uri=True) as b:
            assert b.execute("SELECT version_num FROM alembic_version").fetchone() == (revision,)
    else:
        assert out.read_bytes().startswith(b"PGDMP")
    now = events(engine)
    assert now[: len(kept)] == kept
    # the upgrade to signed events (0011) marks where signing began (a trail from before;
    # a database at 0011 or later is signed already), then the admin signs in and the
    # upgrade is recorded, both signed
    marker = [("audit.signing_begins", "system")] if revision < "0011" else []
    assert [(e["action"], e["user_name"]) for e in now[len(kept):]] == [
        *marker, ("login", ADMIN), ("db.upgrade", ADMIN)]
    upgrade = now[-1]
    assert json.loads(str(upgrade["before_json"])) == {"schema": revision}
    after = json.loads(str(upgrade["after_json"]))
    assert after["schema"] == schema.KNOWN_REVISIONS[-1]
    assert after["backup"]["sha256"] == sha256(out)
    with reader(engine).connect() as conn, conn.begin():
        from sqlmodel import Session

        _, _, broken = audit.first_break(Session(bind=conn))
    assert broken is None
    engine.dispose()


def test_a_wrong_password_rolls_the_upgrade_back_and_keeps_the_backup(
    tmp_path: Path, sample: Engine
) -> None:
    url = str(tmp_path / "old.db")
    at_revision(url, "0008", sample)
    engine = make_engine(url)
    kept = events(engine)
    out = tmp_path / "before.backup"
    run = trialkit("db", "upgrade", "--yes", "--backup", str(out), db=url, cwd=tmp_path,
                   password="not-the-password")
    assert_refused(run, 1, "wrong user name or password")
    assert schema.schema_revision(engine) == "0008"
    assert events(engine) == kept
    assert out.exists()
    engine.dispose()
