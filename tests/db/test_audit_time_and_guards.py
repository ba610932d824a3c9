"""Audit time and the append-only guards.

- On PostgreSQL a live trial's events take the database server's clock, whatever the
  client's clock says, and the chain still verifies.
- ``audit verify`` reports an event recorded earlier than its predecessor in a live trial
  (a client clock that went back, or events rewritten with consistent hashes).
- ``audit verify`` reports append-only triggers dropped, disabled or defused.
- PostgreSQL least privilege: the application runs as a role with DML only; it cannot drop
  a trigger, truncate or alter the audit table, or create anything (docs/security.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from tests.conftest import ADMIN, KETHEAD, PASSWORD, PG_URL, SteppingClock, add_user, sign_in
from tests.db.tampering import rehash, verify
from trialkit.domain.audit_signing import sign_event
from trialkit.domain.clock import SystemClock
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.sign_in import login
from trialkit.services.administration.users import set_disabled
from trialkit.store.db import make_engine, normalize_url, transaction
from trialkit.store.models import AuditEvent

WRONG = datetime(1999, 12, 31, 23, 59, tzinfo=UTC)


class SkewedClock(SystemClock):
    """A live client whose clock is badly wrong."""

    def now(self) -> datetime:
        return WRONG


def _events(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.exec(select(AuditEvent).order_by(col(AuditEvent.seq))))


def test_on_postgresql_a_live_event_takes_the_servers_clock(
    engine: Engine, admin: Actor
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server: its one machine's clock is the only one")
    with Session(engine) as s:
        server_before = s.exec(text("SELECT clock_timestamp()")).one()[0]  # type: ignore[call-overload]
    with transaction(engine) as s:
        login(s, ADMIN, PASSWORD, clock=SkewedClock())
    last = _events(engine)[-1]
    assert last.action == "login"
    assert server_before <= last.at <= server_before + timedelta(minutes=5)
    assert verify(engine).ok


def test_on_sqlite_a_live_event_takes_the_clients_clock(engine: Engine, admin: Actor) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with transaction(engine) as s:
        login(s, ADMIN, PASSWORD, clock=SkewedClock())
    assert _events(engine)[-1].at == WRONG


def test_verify_reports_a_live_event_earlier_than_the_one_before(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    assert verify(engine).ok
    clock.advance(hours=-2)  # a client whose clock went back
    sign_in(engine, ADMIN, clock)
    report = verify(engine)
    seq = len(_events(engine))
    assert not report.ok and report.bad_seq == seq
    assert report.problem is not None and f"earlier than event {seq - 1}" in report.problem


def test_a_training_trial_may_state_any_time(db_url: str) -> None:
    clock = SteppingClock()
    engine = make_engine(db_url, must_exist=False)
    try:
        initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
                   training=True, clock=clock)
        clock.advance(days=-30)
        sign_in(engine, ADMIN, clock)
        assert verify(engine).ok
    finally:
        engine.dispose()


def test_a_rewrite_that_moves_an_event_back_in_time_is_reported(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    for _ in range(3):
        clock.advance(minutes=5)
        sign_in(engine, ADMIN, clock)
    rows = [dict(e) for e in _events(engine)]
    target = len(rows) - 1  # the second to last: backdated, every hash after it recomputed
    # by their author, alice, who signs them again: signatures cannot catch her own rewrite
    key = admin.signing_key
    assert key is not None
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_event_no_update"))
        else:
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        rows[target - 1]["at"] = rows[target - 2]["at"] - timedelta(days=1)
        for i in range(target - 1, len(rows)):
            if i > 0:
                rows[i]["prev_hash"] = rows[i - 1]["hash"]
            rows[i]["hash"] = rehash(rows[i])
            assert rows[i]["user_name"] == ADMIN
            conn.execute(text("UPDATE audit_event SET at = :at, prev_hash = :p, hash = :h, "
                              "signature = :sig WHERE seq = :s"),
                         {"at": _stored(conn.dialect.name, rows[i]["at"]),
                          "p": rows[i]["prev_hash"], "h": rows[i]["hash"], "s": rows[i]["seq"],
                          "sig": sign_event(key, rows[i]["hash"])})
        if conn.dialect.name == "sqlite":
            conn.execute(text("CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
                              "BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END"))
        else:
            conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
    report = verify(engine)
    assert not report.ok and report.bad_seq == target
    assert report.problem is not None and "earlier than event" in report.problem


def _stored(dialect: str, at: datetime) -> object:
    return at.astimezone(UTC).replace(tzinfo=None) if dialect == "sqlite" else at


@pytest.mark.parametrize("how", ["drop", "disable", "defuse"])
def test_verify_reports_append_only_guards_removed(engine: Engine, admin: Actor,
                                                   how: str) -> None:
    postgres = engine.dialect.name == "postgresql"
    if how != "drop" and not postgres:
        pytest.skip("SQLite triggers cannot be disabled; changing one means dropping it")
    statements = {
        "drop": ["DROP TRIGGER audit_event_no_change ON audit_event"] if postgres
        else ["DROP TRIGGER audit_event_no_delete"],
        "disable": ["ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_truncate"],
        "defuse": ["CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger "
                   "LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$"],
    }[how]
    assert verify(engine).ok
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    report = verify(engine)
    assert not report.ok
    assert report.problem is not None and "no longer append-only" in report.problem


def test_a_changed_sqlite_trigger_is_reported(engine: Engine, admin: Actor) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_event_no_update"))
        conn.execute(text("CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
                          "WHEN 0 BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END"))
    report = verify(engine)
    assert not report.ok and "audit_event_no_update was changed" in (report.problem or "")


# --- PostgreSQL least privilege ------------------------------------------------------------


@pytest.fixture
def roles() -> Iterator[tuple[str, str, str]]:
    """A schema owned by a migration role, and a runtime role with DML only, as
    docs/security.md says to set them up; dropped afterwards."""
    if PG_URL is None:
        pytest.skip("PostgreSQL-only test: set TRIALKIT_TEST_PG_URL")
    tag = uuid.uuid4().hex[:10]
    owner, runtime, schema = f"tk_owner_{tag}", f"tk_app_{tag}", f"tk_{tag}"
    superuser = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with superuser.connect() as conn:
        conn.execute(text(f"CREATE ROLE {owner} LOGIN"))
        conn.execute(text(f"CREATE ROLE {runtime} LOGIN"))
        conn.execute(text(f"CREATE SCHEMA {schema} AUTHORIZATION {owner}"))
    try:
        yield owner, runtime, schema
    finally:
        with superuser.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            for role in (runtime, owner):
                conn.execute(text(f"DROP OWNED BY {role} CASCADE"))
                conn.execute(text(f"DROP ROLE {role}"))
        superuser.dispose()


def _as(role: str, schema: str) -> str:
    assert PG_URL is not None
    url = make_url(normalize_url(PG_URL)).set(username=role)
    base = url.render_as_string(hide_password=False)
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


def test_the_application_role_can_work_but_not_change_the_schema_or_the_guards(
    roles: tuple[str, str, str],
) -> None:
    owner, runtime, schema = roles
    clock = SteppingClock()
    owner_engine = make_engine(_as(owner, schema), must_exist=False)
    try:
        initialize(owner_engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
                   training=False, clock=clock)
        with owner_engine.begin() as conn:  # the grants docs/security.md lists
            for grant in (
                f"GRANT USAGE ON SCHEMA {schema} TO {runtime}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} "
                f"TO {runtime}",
                f"REVOKE UPDATE, DELETE ON {schema}.audit_event FROM {runtime}",
                f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {runtime}",
            ):
                conn.execute(text(grant))
    finally:
        owner_engine.dispose()

    app = make_engine(_as(runtime, schema))
    try:
        alice = sign_in(app, ADMIN, clock)
        add_user(app, alice, clock, "mark", Role.MONITOR)
        with transaction(app) as s:
            set_disabled(s, alice, name="mark", disabled=True, reason="left", clock=clock)
        assert verify(app).ok
        for forbidden in (
            "DROP TRIGGER audit_event_no_change ON audit_event",
            "ALTER TABLE audit_event DISABLE TRIGGER USER",
            "TRUNCATE audit_event",
            "UPDATE audit_event SET reason = 'x'",
            "DELETE FROM audit_event",
            "DROP TABLE audit_event",
            "CREATE TABLE intruder (x int)",
            "CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$",
        ):
            with pytest.raises(DBAPIError, match="permission denied|must be owner"):
                with app.begin() as conn:
                    conn.execute(text(forbidden))
        assert verify(app).ok
    finally:
        app.dispose()
