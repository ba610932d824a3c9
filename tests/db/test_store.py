"""The store: UTC times on both backends, the schema revision check, SQLite's pragmas and
write locking, and an ``initialize`` that is all or nothing."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text, update
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session, select

from tests.conftest import (
    ADMIN,
    BACKENDS,
    KETHEAD,
    PASSWORD,
    SteppingClock,
    add_user,
    empty_database,
    sign_in,
)
from tests.db.tampering import audit_actions, reader, verify
from trialkit.domain.clock import FixedClock
from trialkit.domain.errors import InvalidInput, Refused
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.administration import setup
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.sign_in import FREE_FAILURES
from trialkit.store import schema
from trialkit.store.db import ON_WAIT, make_engine, normalize_url, read_only, transaction
from trialkit.store.models import AuditEvent, Preparation, Trial, User

KOLKATA = timezone(timedelta(hours=5, minutes=30))


def _tables(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())


def _snapshot(engine: Engine) -> tuple[list[str], list[tuple[str, str, str]], str]:
    """Everything a refused initialize must leave alone: the audit trail, the users (with
    their credentials) and the trial."""
    with reader(engine).connect() as conn:
        users = conn.execute(text("SELECT name, role, password_hash FROM app_user ORDER BY id"))
        trial = conn.execute(text("SELECT protocol_sha256 FROM trial")).scalar_one()
        return audit_actions(engine), [tuple(u) for u in users], trial


# --- times ---------------------------------------------------------------------------------


def test_a_time_written_in_another_zone_reads_back_as_the_same_instant_in_utc(
    engine: Engine,
) -> None:
    written = datetime(2026, 3, 2, 14, 30, 15, 123456, tzinfo=KOLKATA)
    with transaction(engine) as s:
        s.execute(update(User).where(User.name == ADMIN).values(password_changed_at=written))
    with read_only(engine) as s:
        if engine.dialect.name == "postgresql":
            s.execute(text("SET LOCAL TIME ZONE 'America/St_Johns'"))  # not UTC, not Kolkata
        read = s.exec(select(User.password_changed_at).where(User.name == ADMIN)).one()
        raw = s.execute(text(
            "SELECT password_changed_at FROM app_user" if engine.dialect.name == "sqlite"
            else "SELECT to_char(password_changed_at AT TIME ZONE 'UTC', "
                 "'YYYY-MM-DD HH24:MI:SS.US') FROM app_user"
        )).scalar_one()
    assert read == written
    assert read.tzinfo is UTC
    assert (read.hour, read.minute, read.microsecond) == (9, 0, 123456)
    assert str(raw).startswith("2026-03-02 09:00:15.123456")  # stored as UTC wall time


def test_every_stored_time_comes_back_timezone_aware_utc(engine: Engine) -> None:
    with read_only(engine) as s:
        times = [e.at for e in s.exec(select(AuditEvent))]
        trial = s.get(Trial, 1)
        assert trial is not None
        times.append(trial.created_at)
        for user in s.exec(select(User)):
            times += [user.created_at, user.password_changed_at]
    assert times and all(t.tzinfo is UTC for t in times)
    assert min(times) == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_naive_time_is_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive datetime refused"), transaction(engine) as s:
        s.execute(update(Trial).values(created_at=datetime(2026, 3, 2, 9, 0)))  # noqa: DTZ001
    with read_only(engine) as s:
        trial = s.get(Trial, 1)
        assert trial is not None and trial.created_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_an_audit_trail_written_with_a_non_utc_clock_still_verifies(db_url: str) -> None:
    """Clock.now() should be UTC, but a clock that is aware and merely in another zone is
    the same instant: the store keeps it as UTC, and the chain must not depend on it."""
    engine = make_engine(db_url, must_exist=False)
    try:
        clock = FixedClock(datetime(2026, 3, 2, 14, 30, tzinfo=KOLKATA))
        initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
                   training=False, clock=clock)
        report = verify(engine)
        assert report.ok, report.problem
    finally:
        engine.dispose()


def test_a_lockout_recorded_with_a_non_utc_clock_still_verifies(
    engine: Engine, clock: SteppingClock
) -> None:
    """The time the next attempt waits for goes into the audited user state; it must compare
    equal after it has been stored and read back as UTC."""
    add_user(engine, sign_in(engine, ADMIN, clock), clock, "mark", Role.MONITOR)
    local = FixedClock(clock.now().astimezone(KOLKATA) + timedelta(minutes=1))
    for _ in range(FREE_FAILURES + 1):
        with pytest.raises(Refused):
            sign_in(engine, "mark", local, password="not-the-password")  # type: ignore[arg-type]
    assert audit_actions(engine)[-1] == "login.fail"
    with read_only(engine) as s:
        assert s.exec(select(User).where(User.name == "mark")).one().locked_until is not None
    report = verify(engine)
    assert report.ok, report.problem


# --- schema revisions ----------------------------------------------------------------------


def test_known_revisions_match_the_migrations_shipped() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(schema.MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    assert script.get_heads() == [schema.KNOWN_REVISIONS[-1]]
    oldest_first = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert tuple(oldest_first) == schema.KNOWN_REVISIONS
    assert schema.SCHEMA_HEAD == schema.KNOWN_REVISIONS[-1]


def test_a_fresh_trial_database_is_at_the_head_revision(engine: Engine) -> None:
    assert schema.schema_revision(engine) == schema.SCHEMA_HEAD
    schema.check_current(engine)
    assert {"alembic_version", "app_user", "audit_event", "site", "trial", "user_site"} <= set(
        _tables(engine))


def test_a_database_from_a_newer_trialkit_is_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    with pytest.raises(InvalidInput, match="newer") as caught:
        schema.check_current(engine)
    assert "0099_future" in caught.value.message
    with pytest.raises(InvalidInput, match="newer"):
        initialize(engine, load_protocol(KETHEAD), admin="bob", admin_password=PASSWORD,
                   training=False, clock=SteppingClock())


def test_a_database_of_an_older_schema_is_refused_until_upgraded(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"),
                     {"v": schema.KNOWN_REVISIONS[0]})
    with pytest.raises(Refused, match="older") as caught:
        schema.check_current(engine)
    assert "trialkit db upgrade" in caught.value.message


def test_a_database_without_a_trial_is_refused_with_a_hint(db_url: str) -> None:
    engine = make_engine(db_url, must_exist=False)
    try:
        with pytest.raises(InvalidInput, match="trialkit init"):
            schema.check_current(engine)
    finally:
        engine.dispose()


# --- SQLite ----------------------------------------------------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Engine:
    engine = make_engine(str(tmp_path / "pragmas.db"), must_exist=False)
    initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
               training=False, clock=SteppingClock())
    return engine


def test_sqlite_runs_with_wal_full_sync_foreign_keys_and_a_busy_timeout(
    sqlite_engine: Engine,
) -> None:
    with sqlite_engine.connect() as conn:
        pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in
                  ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}
    assert pragma == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                      "busy_timeout": 30000}
    with pytest.raises(IntegrityError, match="FOREIGN KEY"), sqlite_engine.begin() as conn:
        conn.execute(text("INSERT INTO user_site (user_id, site_code) VALUES (1, 'NOPE')"))


def test_sqlite_write_transactions_take_the_write_lock_when_they_begin(
    sqlite_engine: Engine,
) -> None:
    path = sqlite_engine.url.database
    assert path is not None
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with read_only(sqlite_engine) as s:
            s.execute(text("SELECT count(*) FROM audit_event"))
            other.execute("BEGIN IMMEDIATE")  # a reader blocks no writer
            other.execute("ROLLBACK")
        with transaction(sqlite_engine) as s:
            s.execute(text("SELECT count(*) FROM audit_event"))  # only reads so far
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()
        sqlite_engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_writers_to_one_trial_queue_and_writers_to_another_trial_do_not(
    backend: str, tmp_path: Path
) -> None:
    """The write lock belongs to one trial's database: a SQLite file, or a PostgreSQL
    schema (the advisory lock is keyed by the schema too, so trials in other schemas of
    the same server database, such as every other test's, never make a writer wait)."""
    with ExitStack() as stack:
        here = stack.enter_context(empty_database(backend, tmp_path, "here.db"))
        there = stack.enter_context(empty_database(backend, tmp_path, "there.db"))
        engines = [make_engine(url, must_exist=False) for url in (here, here, there)]
        for e in engines:
            stack.callback(e.dispose)
        holder, same, other = engines
        waited: list[str] = []

        def writer(engine: Engine, name: str) -> Engine:
            return engine.execution_options(**{ON_WAIT: lambda: waited.append(name)})

        with transaction(holder) as s:
            s.execute(text("SELECT 1"))  # the write transaction has begun: the lock is held
            with transaction(writer(other, "other trial")) as t:
                t.execute(text("SELECT 1"))  # another trial's writer goes ahead at once
            assert waited == []
            queued = threading.Thread(target=_write_once, args=(writer(same, "same trial"),))
            queued.start()
            deadline = time.monotonic() + 30
            while not waited and time.monotonic() < deadline:
                time.sleep(0.01)
            assert waited == ["same trial"]  # it waits for the holder ...
            assert queued.is_alive()
        queued.join(timeout=30)  # ... and goes ahead once the holder has committed
        assert not queued.is_alive()
        assert waited == ["same trial"]


def _write_once(engine: Engine) -> None:
    with transaction(engine) as s:
        s.execute(text("SELECT 1"))


def test_a_missing_sqlite_file_is_not_created_by_opening_it(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    with pytest.raises(InvalidInput, match="trialkit init"):
        make_engine(str(missing))
    with pytest.raises(InvalidInput, match="does not exist"):
        make_engine(str(tmp_path / "no-such-folder" / "trial.db"), must_exist=False)
    assert list(tmp_path.iterdir()) == []


def test_urls_and_paths_are_normalized() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("trial.db") == f"sqlite:///{Path('trial.db').resolve()}"
    with pytest.raises(InvalidInput):
        normalize_url("  ")


# --- initialize is all or nothing ------------------------------------------------------------


def test_initializing_a_database_that_holds_a_trial_changes_nothing(engine: Engine) -> None:
    before = _snapshot(engine)
    with pytest.raises(Refused, match="already holds trial KETHEAD"):
        initialize(engine, load_protocol(KETHEAD), admin="bob", admin_password="another-long-one",
                   training=True, clock=SteppingClock())
    assert _snapshot(engine) == before
    with read_only(engine) as s:
        trial = s.get(Trial, 1)
        assert trial is not None and not trial.training
    assert verify(engine).ok


@pytest.mark.parametrize(("admin", "password"), [(ADMIN, "short"), ("Not A Name", PASSWORD)])
def test_initialize_with_bad_admin_details_creates_no_tables(
    db_url: str, admin: str, password: str
) -> None:
    engine = make_engine(db_url, must_exist=False)
    try:
        with pytest.raises(InvalidInput):
            initialize(engine, load_protocol(KETHEAD), admin=admin, admin_password=password,
                       training=False, clock=SteppingClock())
        assert _tables(engine) == []
    finally:
        engine.dispose()


def test_initialize_failing_after_the_schema_is_built_leaves_no_tables(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(setup, "create_first_admin", crash)
    engine = make_engine(db_url, must_exist=False)
    try:
        with pytest.raises(RuntimeError, match="power cut"):
            initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
                       training=False, clock=SteppingClock())
        assert _tables(engine) == []
    finally:
        engine.dispose()


def test_preparations_recorded_before_numbering_survive_the_rebuild(db_url: str) -> None:
    """Migration 0008 rebuilds the preparation table (a row id instead of the participant
    as key, a number, the void marks): an existing preparation becomes number 1, current,
    with every value as it was."""
    from alembic import command

    engine = make_engine(db_url, must_exist=False)
    prepared = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
    try:
        with schema.migrating(engine) as conn:
            cfg = Config()
            cfg.set_main_option("script_location", str(schema.MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0007")
            conn.execute(text("INSERT INTO site (code, name, target) VALUES ('TWH', 'T', 10)"))
            conn.execute(text(
                "INSERT INTO participant (id, site_code, number, stratum_code, factors_json, "
                "age, sex, weight_kg, answers_json, eligible, failed_json, screened_at, "
                "screened_by, unblinded_emergency) VALUES ('TWH-001', 'TWH', 1, 'TWH-CM', "
                "'{}', 40, 'F', 70, '{}', true, '[]', :at, 'cora', false)"), {"at": prepared})
            conn.execute(text(
                "INSERT INTO preparation (participant_id, prepared_at, prepared_by, checked_by, "
                "checked_at, expires_at, sealed_details, label_prints) VALUES ('TWH-001', :at, "
                "'phil', 'pia', NULL, :exp, :sealed, 2)"),
                {"at": prepared, "exp": prepared + timedelta(hours=24), "sealed": b"\x01\x02"})
            command.upgrade(cfg, "head")
        with Session(engine) as s:
            [prep] = s.exec(select(Preparation)).all()
            assert (prep.participant_id, prep.number, prep.prepared_at, prep.prepared_by,
                    prep.checked_by, prep.checked_at, prep.expires_at, prep.sealed_details,
                    prep.label_prints, prep.voided_at) == (
                "TWH-001", 1, prepared, "phil", "pia", None, prepared + timedelta(hours=24),
                b"\x01\x02", 2, None)
            assert prep.id is not None
        # at most one current preparation per participant, enforced by the database
        with pytest.raises(IntegrityError), Session(engine) as s:
            s.add(Preparation(participant_id="TWH-001", number=2, prepared_at=prepared,
                              prepared_by="phil", checked_by="pia", expires_at=prepared,
                              sealed_details=b"", label_prints=0))
            s.commit()
    finally:
        engine.dispose()
