"""Steps for ``features/signed_audit_events.feature``: an auditor finds an edited or forged
audit entry by its signature. Each scenario on SQLite and, with TRIALKIT_TEST_PG_URL, on
PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pytest_bdd import given, parsers, scenarios, then, when
from sqlalchemy import Connection, Engine

from tests.builders import consented
from tests.conftest import ADMIN, SteppingClock, add_user, sign_in
from tests.db.tampering import EVENTS, USERS, attack, events, reader, rehash, set_event, verify
from trialkit.domain.audit_signing import signed_message
from trialkit.domain.roles import Role
from trialkit.services.diary.file_import import import_diary
from trialkit.store.db import transaction
from trialkit.store.models import DiaryEntry

scenarios("signed_audit_events.feature")

DIARY = DiaryEntry.__table__  # type: ignore[attr-defined]
HEADER = "participant_id,date,headache,severity,duration_hours,acute_medication\n"


@dataclass
class Trail:
    engine: Engine
    clock: SteppingClock
    pid: str = ""
    day: str = ""
    at_seq: int = 0  # the entry the scenario is about
    notes: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(autouse=True)
def trail(engine: Engine, clock: SteppingClock) -> Trail:
    """Autouse, so that every scenario is collected once per backend."""
    return Trail(engine, clock)


@given(parsers.parse('a trial where coordinator "{name}" imported a paper diary recording a '
                     'severe headache'))
def imported(trail: Trail, name: str) -> None:
    alice = sign_in(trail.engine, ADMIN, trail.clock)
    add_user(trail.engine, alice, trail.clock, name, Role.COORDINATOR, sites=["TWH"])
    add_user(trail.engine, alice, trail.clock, "ivan", Role.INVESTIGATOR)
    cora = sign_in(trail.engine, name, trail.clock)
    trail.pid = consented(trail.engine, cora, trail.clock).id
    trail.clock.advance(days=1)
    trail.day = (trail.clock.now() - timedelta(days=1)).date().isoformat()
    data = HEADER + f"{trail.pid},{trail.day},yes,severe,7,yes\n"
    with transaction(trail.engine) as s:
        import_diary(s, cora, data.encode(), source="paper-diary.csv", clock=trail.clock)


def _rechain(conn: Connection, from_seq: int) -> None:
    rows = events(conn)
    for i, row in enumerate(rows):
        if row["seq"] >= from_seq:
            row["prev_hash"] = rows[i - 1]["hash"]
            row["hash"] = rehash(row)
            set_event(conn, row["seq"], prev_hash=row["prev_hash"], hash=row["hash"])


def _append_unblinding(conn: Connection, trail: Trail, key: Ed25519PrivateKey) -> None:
    head = events(conn)[-1]
    row = {"seq": head["seq"] + 1, "at": head["at"] + timedelta(minutes=1),
           "user_name": "ivan", "role": "investigator", "action": "participant.unblind",
           "entity": "participant", "entity_id": trail.pid, "before_json": None,
           "after_json": None, "reason": "suspected serious adverse reaction",
           "prev_hash": head["hash"]}
    row["hash"] = rehash(row)
    row["signature"] = key.sign(signed_message(row["hash"]))
    conn.execute(EVENTS.insert().values(**row))
    trail.at_seq = row["seq"]


@when("someone with write access to the database changes that day to no headache in the "
      "diary table and in the import's entry, and recomputes every hash after it")
def edit_import(trail: Trail) -> None:
    with attack(trail.engine) as conn:
        [entry] = [e for e in events(conn) if e["action"] == "diary.import"]
        conn.execute(DIARY.update().where(DIARY.c.participant_id == trail.pid).values(
            headache=False, severity="none", duration_hours=0.0, acute_medication=False))
        after = json.loads(entry["after_json"])
        after["rows"] = [[trail.pid, trail.day, False, "none", 0.0, False]]
        set_event(conn, entry["seq"],
                  after_json=json.dumps(after, sort_keys=True, separators=(",", ":")))
        _rechain(conn, entry["seq"])
        trail.at_seq = entry["seq"]


@when('someone with write access to the database appends a correctly hashed entry '
      '"ivan participant.unblind" signed with a key of their own')
def forge(trail: Trail) -> None:
    with attack(trail.engine) as conn:
        _append_unblinding(conn, trail, Ed25519PrivateKey.generate())


@when("someone with write access to the database puts their own key in ivan's account and "
      'appends an entry "ivan participant.unblind" signed with it')
def swap_key(trail: Trail) -> None:
    mine = Ed25519PrivateKey.generate()
    with attack(trail.engine) as conn:
        conn.execute(USERS.update().where(USERS.c.name == "ivan").values(
            signing_public_key=mine.public_key().public_bytes_raw()))
        _append_unblinding(conn, trail, mine)


@then("every entry is signed by its author, apart from refused sign-ins")
def all_signed(trail: Trail) -> None:
    with reader(trail.engine).connect() as conn:
        rows = events(conn)
    assert [r["action"] for r in rows if r["signature"] is None] == []
    assert {r["user_name"] for r in rows} == {ADMIN, "cora", "ivan"}


@then("the trail verifies")
def verifies(trail: Trail) -> None:
    report = verify(trail.engine)
    assert report.ok, report.problem


@then(parsers.parse('verifying the trail fails at the import\'s entry: "{words}"'))
@then(parsers.parse('verifying the trail fails at that entry: "{words}"'))
def fails(trail: Trail, words: str) -> None:
    report = verify(trail.engine)
    assert not report.ok
    assert report.bad_seq == trail.at_seq
    assert report.problem is not None
    assert report.problem.startswith(f"event {trail.at_seq}: ") and words in report.problem
