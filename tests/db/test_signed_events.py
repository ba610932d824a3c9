"""Signed audit events against an insider who can write to the database (issue 12, finding
3). Each attack below passed ``audit verify`` when the trail was only hash-chained: the
attacker knows the hash algorithm and recomputes every hash. Each must now fail, at the
event the attacker wrote, because the attacker holds no other person's signing key.

The trail is the diary trial of ``test_diary`` (both backends); every attack is rolled back
with its test's window."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, select

from tests.conftest import ADMIN, SteppingClock, add_user, sign_in
from tests.db import test_diary
from tests.db.tampering import (
    EVENTS,
    USERS,
    attack,
    event,
    events,
    guards_off,
    reader,
    rehash,
    set_event,
    verify,
    verify_on,
)
from tests.db.test_allocation import Box
from tests.db.test_diary import HEADER, import_text
from trialkit.domain.audit_signing import signed_message
from trialkit.domain.errors import PermissionDenied
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.users import create_user
from trialkit.store import schema
from trialkit.store.db import transaction
from trialkit.store.models import DiaryEntry

# The diary trial's fixtures, reused: its trial (module-scoped) and each test's window.
trial = test_diary.trial
box = test_diary.box
DIARY = DiaryEntry.__table__  # type: ignore[attr-defined]
NOT_MATCHING = "its signature does not match {who}'s key: the event was changed or forged"


def rechain(conn: Connection, from_seq: int) -> None:
    """Recompute every hash from ``from_seq`` on and relink, as an attacker would: the
    algorithm is no secret. Signatures are left as they are (nobody else's key is known)."""
    rows = events(conn)
    for i, row in enumerate(rows):
        if row["seq"] < from_seq:
            continue
        row["prev_hash"] = rows[i - 1]["hash"]
        row["hash"] = rehash(row)
        set_event(conn, row["seq"], prev_hash=row["prev_hash"], hash=row["hash"])


def append(conn: Connection, sign: Callable[[str], bytes | None], **fields: Any) -> int:
    """Append a correctly numbered, linked and hashed event; ``sign(hash)`` gives what the
    attacker puts in its signature column."""
    head = events(conn)[-1]
    row = {"seq": head["seq"] + 1, "at": head["at"] + timedelta(seconds=1),
           "before_json": None, "after_json": None, "reason": None,
           "prev_hash": head["hash"]} | fields
    row["hash"] = rehash(row)
    row["signature"] = sign(row["hash"])
    conn.execute(EVENTS.insert().values(**row))
    return int(row["seq"])


def test_an_edited_diary_day_and_its_rehashed_import_event_are_caught_at_the_event(
    box: Box,
) -> None:
    pid = box.consented()
    box.clock.advance(days=1)
    import_text(box, HEADER + f"{pid},2026-03-02,yes,severe,6,yes\n")
    conn = box.conn
    [imported] = [e for e in events(conn) if e["action"] == "diary.import"]
    guards_off(conn)
    # The day becomes headache-free in the table and in the event that recorded it, and
    # every hash from that event on is recomputed: the stored state matches the trail.
    conn.execute(DIARY.update().where(DIARY.c.participant_id == pid).values(
        headache=False, severity="none", duration_hours=0.0, acute_medication=False))
    after = json.loads(imported["after_json"])
    assert after["rows"] == [[pid, "2026-03-02", True, "severe", 6.0, True]]
    after["rows"] = [[pid, "2026-03-02", False, "none", 0.0, False]]
    set_event(conn, imported["seq"],
              after_json=json.dumps(after, sort_keys=True, separators=(",", ":")))
    rechain(conn, imported["seq"])
    report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == imported["seq"]
    assert report.problem == (f"event {imported['seq']}: "
                              + NOT_MATCHING.format(who=imported["user_name"]))


def _last_by(conn: Connection, who: str) -> dict[str, Any]:
    return [e for e in events(conn) if e["user_name"] == who and e["signature"]][-1]


def _replayed(signature: bytes) -> Callable[[str], bytes | None]:
    return lambda _hash: signature


FORGERS: dict[str, Callable[[Connection], Callable[[str], bytes | None]]] = {
    "unsigned": lambda conn: lambda _hash: None,
    # the attacker's own key: the trail says which key is ivan's
    "signed with another key": lambda conn: lambda h: Ed25519PrivateKey.generate().sign(
        signed_message(h)),
    # ivan's real signature, copied from his latest event: it signs that event's hash
    "signature replayed from ivan's last event": lambda conn: _replayed(
        _last_by(conn, "ivan")["signature"]),
}


@pytest.mark.parametrize("forge", FORGERS.values(), ids=FORGERS.keys())
def test_a_forged_unblinding_by_ivan_is_caught_at_itself(
    box: Box, forge: Callable[[Connection], Callable[[str], bytes | None]]
) -> None:
    pid = box.consented()
    conn = box.conn
    noted_head = events(conn)[-1]["hash"]
    seq = append(conn, forge(conn), user_name="ivan", role="investigator",
                 action="participant.unblind", entity="participant", entity_id=pid,
                 reason="suspected serious adverse reaction")
    for report in (verify_on(conn), verify_on(conn, expected_head=noted_head)):
        assert not report.ok
        assert report.bad_seq == seq
        assert report.problem is not None and report.problem.startswith(f"event {seq}: ")
        assert ("participant.unblind by ivan is not signed" in report.problem
                or NOT_MATCHING.format(who="ivan") in report.problem)


def test_a_public_key_swapped_in_the_user_table_does_not_make_a_forgery_verify(
    box: Box,
) -> None:
    """A DBA puts their own public key in ivan's row and signs a forged event with it:
    verify takes ivan's key from the trail (his activation event), not from his row."""
    pid = box.consented()
    conn = box.conn
    mine = Ed25519PrivateKey.generate()
    guards_off(conn)
    conn.execute(USERS.update().where(USERS.c.name == "ivan").values(
        signing_public_key=mine.public_key().public_bytes_raw()))
    assert conn.execute(select(USERS.c.signing_public_key).where(USERS.c.name == "ivan")
                        ).scalar_one() == mine.public_key().public_bytes_raw()
    seq = append(conn, lambda h: mine.sign(signed_message(h)), user_name="ivan",
                 role="investigator", action="participant.unblind", entity="participant",
                 entity_id=pid, reason="suspected serious adverse reaction")
    report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == seq
    assert report.problem == f"event {seq}: " + NOT_MATCHING.format(who="ivan")


def test_a_forged_key_change_for_ivan_is_caught_at_itself(box: Box) -> None:
    """The attacker records a new key for ivan in a forged 'user.passwd' signed with that
    new key, then signs as ivan with it: a key is replaced only by its owner's old key."""
    pid = box.consented()
    conn = box.conn
    mine = Ed25519PrivateKey.generate()
    last = [e for e in events(conn) if e["entity_id"] == "ivan" and e["after_json"]][-1]
    before = json.loads(last["after_json"])
    after = before | {"signing_key": mine.public_key().public_bytes_raw().hex()}
    as_json = json.dumps(after, sort_keys=True, separators=(",", ":"))
    seq = append(conn, lambda h: mine.sign(signed_message(h)), user_name="ivan",
                 role="investigator", action="user.passwd", entity="user", entity_id="ivan",
                 before_json=last["after_json"], after_json=as_json)
    append(conn, lambda h: mine.sign(signed_message(h)), user_name="ivan", role="investigator",
           action="participant.unblind", entity="participant", entity_id=pid)
    report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == seq
    assert report.problem == f"event {seq}: " + NOT_MATCHING.format(who="ivan")


def test_an_unsigned_failed_sign_in_cannot_carry_a_new_key(box: Box) -> None:
    """A refused sign-in is the one kind of event nobody signs (no key is unlocked); a
    forged one cannot be used to record a key."""
    conn = box.conn
    mine = Ed25519PrivateKey.generate()
    last = [e for e in events(conn) if e["entity_id"] == "ivan" and e["after_json"]][-1]
    after = json.loads(last["after_json"]) | {
        "signing_key": mine.public_key().public_bytes_raw().hex()}
    seq = append(conn, lambda _h: None, user_name="ivan", role="investigator",
                 action="login.fail", entity="user", entity_id="ivan",
                 after_json=json.dumps(after, sort_keys=True, separators=(",", ":")))
    report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == seq
    assert report.problem == f"event {seq}: an unsigned event changes ivan's signing key"


def test_every_event_of_the_trial_is_signed_but_refused_sign_ins(box: Box) -> None:
    conn = box.conn
    unsigned = {e["action"] for e in events(conn) if e["signature"] is None}
    assert unsigned <= {"login.fail", "login.refused", "user.activate_refused"}
    assert event(conn, 1)["signature"] is not None  # init's first event: the admin's
    assert verify_on(conn).ok


# --- a trail from before signing ----------------------------------------------------------


def _as_before_signing(engine: Engine) -> None:
    """The trail as trialkit wrote it before events were signed: schema 0010, no
    signature column."""
    with attack(engine) as conn:
        conn.execute(EVENTS.update().values(signature=None))
    cfg = Config()
    cfg.set_main_option("script_location", str(schema.MIGRATIONS))
    with schema.migrating(engine) as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")


def test_an_upgraded_trail_from_before_signing_verifies_and_is_signed_from_then_on(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    add_user(engine, admin, clock, "cora", Role.COORDINATOR, sites=["TWH"])
    _as_before_signing(engine)
    schema.upgrade(engine)
    with reader(engine).connect() as conn:
        old = events(conn)
    marker = old[-1]
    assert (marker["action"], marker["user_name"], marker["signature"]) == (
        "audit.signing_begins", "system", None)
    assert all(e["signature"] is None for e in old)
    assert verify(engine).ok
    later = SteppingClock(marker["at"] + timedelta(minutes=1))  # the upgrade ran on real time
    sign_in(engine, "cora", later)  # signed with the key her activation recorded
    with reader(engine).connect() as conn:
        assert events(conn)[-1]["signature"] is not None
    report = verify(engine)
    assert report.ok, report.problem


def test_stripping_every_signature_is_caught_at_the_first_event(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    add_user(engine, admin, clock, "cora", Role.COORDINATOR, sites=["TWH"])
    with attack(engine) as conn:
        conn.execute(EVENTS.update().values(signature=None))
    report = verify(engine)
    assert not report.ok
    assert report.bad_seq == 1
    assert report.problem == f"event 1: user.add by {ADMIN} is not signed"


def test_signing_cannot_begin_again_after_signed_events(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    """An attacker who strips the signatures from some point on and inserts the upgrade's
    marker there: signed events came before it."""
    with attack(engine) as conn:
        seq = append(conn, lambda _h: None, user_name="system", role="-",
                     action="audit.signing_begins", entity="audit_event",
                     entity_id="signature")
    report = verify(engine)
    assert not report.ok
    assert report.bad_seq == seq
    assert report.problem == f"event {seq}: signing cannot begin after signed events"


def test_a_refusal_is_signed_by_the_person_refused(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    add_user(engine, admin, clock, "cora", Role.COORDINATOR, sites=["TWH"])
    cora = sign_in(engine, "cora", clock)
    with pytest.raises(PermissionDenied), transaction(engine) as s:
        create_user(s, cora, name="eve", role=Role.ADMIN, sites=[], custodian=False,
                    clock=clock)
    with reader(engine).connect() as conn:
        refused = events(conn)[-1]
    assert (refused["action"], refused["user_name"]) == ("user.add.refused", "cora")
    assert refused["signature"] is not None
    report = verify(engine)
    assert report.ok, report.problem
