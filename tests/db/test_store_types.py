"""Schemas 0013 and 0014 (issue 10, store types): dates are DATE, JSON documents (0014: the
users' key KDF parameters too) JSON (jsonb on PostgreSQL), timestamps timezone-aware. A
trial made at schema 0012 (built with today's code, then taken down to 0012: dates as ISO
text, documents as JSON text, as the trialkit of 0012 wrote them) is upgraded on SQLite and
PostgreSQL; every value reads back as it was written, the audit trail verifies (its hashes
and signatures cover the same canonical text) and the exports' bytes do not change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, inspect, text
from sqlmodel import Session, select

from tests.builders import consented, staff
from tests.conftest import BACKENDS, PASSWORD, SteppingClock
from tests.db.tampering import verify
from tests.db.test_export import build_export_world
from tests.db.test_pharmacy import World
from trialkit.domain.errors import InvalidInput
from trialkit.domain.sealing import CustodianKeys, unwrap_private_key
from trialkit.services.actor import Actor
from trialkit.services.exports.datasets import ExportFiles, export_table
from trialkit.store import schema
from trialkit.store.db import transaction
from trialkit.store.models import (
    AllocationList,
    AuditEvent,
    DiaryEntry,
    Participant,
    Preparation,
    Stratum,
    User,
)

BEFORE = "0012"
# What schema 0013 types, and what it must leave as they were (timestamps).
DATES = {"participant": ["consent_date", "infusion_date", "planned_infusion_date"],
         "diary_entry": ["day"]}
DOCUMENTS = {"stratum": ["levels_json"],
             "participant": ["factors_json", "answers_json", "failed_json"],
             "allocation_list": ["design"],
             "app_user": ["key_kdf", "signing_kdf", "totp_kdf"]}  # the last three: 0014
TIMESTAMPS = {"participant": ["screened_at", "randomized_at", "withdrawn_at"],
              "diary_entry": ["recorded_at"], "audit_event": ["at"],
              "preparation": ["prepared_at", "checked_at", "expires_at", "voided_at"],
              "allocation_list": ["created_at"],
              "app_user": ["created_at", "password_changed_at", "activated_at"]}
MODELS: tuple[Any, ...] = (Participant, DiaryEntry, Stratum, AllocationList, Preparation,
                           AuditEvent, User)


def migrate(engine: Engine, revision: str) -> None:
    """Alembic to ``revision`` (up or down) as trialkit runs it: one transaction."""
    cfg = Config()
    cfg.set_main_option("script_location", str(schema.MIGRATIONS))
    with schema.migrating(engine) as conn:
        cfg.attributes["connection"] = conn
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        if revision != "head" and int(revision) < int(current):
            command.downgrade(cfg, revision)
        else:
            command.upgrade(cfg, revision)


def every_row(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables 0013 touches (and of those it must not), read through the
    models: what the services see."""
    with Session(engine) as s:
        return {m.__tablename__: sorted(
            (r.model_dump() for r in s.exec(select(m))), key=repr) for m in MODELS}


def column_types(conn: Connection) -> dict[tuple[str, str], str]:
    """Each column's type as the database declares it."""
    if conn.dialect.name == "postgresql":
        return {(t, c): str(d) for t, c, d in conn.execute(text(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()"))}
    found = {}
    for table in inspect(conn).get_table_names():
        for _cid, name, kind, *_ in conn.exec_driver_sql(f"PRAGMA table_info({table})"):
            found[(table, name)] = str(kind)
    return found


def exported(world: World, engine: Engine, clock: SteppingClock, out: Path) -> dict[str, bytes]:
    """The three blinded exports' CSV files, as an investigator writes them."""
    files: dict[str, bytes] = {}
    out.mkdir()
    for kind in ("outcomes", "diary", "participants"):
        target = ExportFiles(out / f"{kind}.csv")
        with target:
            with transaction(engine) as s:
                result = export_table(s, world.actors["ivan"], kind, target, clock=clock,
                                      unblinded=False, password=PASSWORD)
            target.publish()
        for f in result.files:
            if f.path.suffix == ".csv":
                files[f.path.name] = f.path.read_bytes()
    return files


def written_in_the_trail(engine: Engine) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """What the audit trail says was written, as the text it recorded at the time: each
    participant's consent date, and every (participant, diary date) imported or recorded."""
    consents: dict[str, str] = {}
    days: set[tuple[str, str]] = set()
    with Session(engine) as s:
        for e in s.exec(select(AuditEvent).order_by(AuditEvent.seq)):
            after = json.loads(e.after_json) if e.after_json else None
            if e.action == "participant.consent" and after:
                consents[after["id"]] = after["consent_date"]
            elif e.action == "diary.import" and after:
                days |= {(row[0], row[1]) for row in after["rows"]}
            elif e.action == "diary.record" and after:
                days.add((after["participant"], after["date"]))
    return consents, days


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    with build_export_world(request.param, tmp_path_factory.mktemp("types")) as w:
        yield w


def test_a_trial_from_schema_0012_upgrades_reads_back_verifies_and_exports_the_same_bytes(
    world: World, tmp_path: Path
) -> None:
    engine, clock = world.engine, SteppingClock(world.at)
    files = exported(world, engine, clock, tmp_path / "before")
    before = every_row(engine)
    assert verify(engine).ok

    migrate(engine, BEFORE)
    with engine.connect() as conn:
        types = column_types(conn)
        stored = conn.execute(text(
            "SELECT consent_date, factors_json FROM participant WHERE consent_date IS NOT NULL"
        )).all()
    # at 0012 dates are ISO text and documents JSON text, as that trialkit wrote them
    assert stored and all(isinstance(c, str) and date.fromisoformat(c).isoformat() == c
                          and isinstance(json.loads(f), dict) for c, f in stored)
    if engine.dialect.name == "postgresql":
        assert {types[("participant", "consent_date")], types[("diary_entry", "day")],
                types[("participant", "factors_json")]} == {"character varying", "text"}
        assert {types[("app_user", n)] for n in DOCUMENTS["app_user"]} == {"text"}
    kdfs = stored_kdfs(engine)
    # no one here has a second factor: test_second_factor upgrades a totp_kdf
    assert {n for _user, n in kdfs} == {"key_kdf", "signing_kdf"}

    migrate(engine, "head")
    assert schema.schema_revision(engine) == schema.SCHEMA_HEAD
    with engine.connect() as conn:
        types = column_types(conn)
    pg = engine.dialect.name == "postgresql"
    for table, names in DATES.items():
        assert {types[(table, n)] for n in names} == {"date" if pg else "DATE"}
    for table, names in DOCUMENTS.items():
        assert {types[(table, n)] for n in names} == {"jsonb" if pg else "JSON"}
    if pg:
        for table, names in TIMESTAMPS.items():
            assert {types[(table, n)] for n in names} == {"timestamp with time zone"}

    # every value as it was written: dates, documents and (unchanged) timestamps
    after = every_row(engine)
    assert after == before
    for p in after["participant"]:
        assert p["consent_date"] is None or type(p["consent_date"]) is date
        assert isinstance(p["factors_json"], dict) and isinstance(p["failed_json"], list)
        assert isinstance(p["screened_at"], datetime)
        assert p["screened_at"].utcoffset() == timedelta(0)
    # ... and as the audit trail recorded them when they were written
    consents, days = written_in_the_trail(engine)
    assert consents and days
    by_id = {p["id"]: p for p in after["participant"]}
    assert {pid: by_id[pid]["consent_date"].isoformat() for pid in consents} == consents
    stored_days = {(d["participant_id"], d["day"].isoformat()) for d in after["diary_entry"]}
    assert days <= stored_days

    # the KDF parameters are the same documents, and each custodian's password still
    # unwraps the keys they protect (the custodian key opens an envelope's arm below)
    assert {k: json.loads(v) for k, v in kdfs.items()} == {
        k: v if isinstance(v, dict) else json.loads(v) for k, v in stored_kdfs(engine).items()}
    for user in after["app_user"]:
        if user["key_kdf"] is not None:
            unwrap_private_key(CustodianKeys(user["public_key"], user["wrapped_private_key"],
                                             user["key_kdf"]), PASSWORD)

    report = verify(engine)
    assert report.ok, report.problem
    assert exported(world, engine, clock, tmp_path / "after") == files


def stored_kdfs(engine: Engine) -> dict[tuple[str, str], Any]:
    """Each user's stored KDF parameters as the database gives them (text before 0014, a
    document after), by (user, column)."""
    names = DOCUMENTS["app_user"]
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT name, {', '.join(names)} FROM app_user")).all()
    return {(row[0], n): v for row in rows for n, v in zip(names, row[1:], strict=True)
            if v is not None}


def test_a_date_or_document_that_is_not_iso_or_json_refuses_the_upgrade_and_changes_nothing(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    """A DBA's hand edit at 0012: PostgreSQL would read 05/12/2026 by its DateStyle and
    SQLite would keep it and fail at the first read. The upgrade names each bad value."""
    cora = staff(engine, admin, clock)["cora"]
    pid = consented(engine, cora, clock).id
    migrate(engine, BEFORE)
    with transaction(engine) as s:
        s.connection().execute(text(
            "UPDATE participant SET consent_date = '05/12/2026', failed_json = '[oops'"))
    with pytest.raises(InvalidInput) as refused:
        migrate(engine, "head")
    assert str(refused.value) == (
        "the upgrade to schema 0013 changed nothing: "
        f"participant.consent_date of {pid} is '05/12/2026', not a date as YYYY-MM-DD; "
        f"participant.failed_json of {pid} is '[oops', not a JSON document. "
        "Correct them and upgrade again")
    assert schema.schema_revision(engine) == BEFORE
    with engine.connect() as conn:
        assert conn.execute(text("SELECT consent_date, failed_json FROM participant")).one() == (
            "05/12/2026", "[oops")
