"""The audit trail is append-only in the database, and ``audit verify`` catches whoever gets
past that: every edit, deletion, insertion or reordering of events, and every change made to
users or the trial without an event. Each case names the first bad event exactly.

The trail is built once per backend (``TRAIL``, 9 events); tests tamper with it inside
a transaction they roll back."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

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
from tests.db.tampering import (
    EVENTS,
    USERS,
    attack,
    audit_actions,
    delete_event,
    event,
    events,
    guards_on,
    reader,
    rehash,
    rehearse,
    set_event,
    shift_events,
    verify,
    verify_on,
)
from trialkit.domain.errors import AuthenticationFailed
from trialkit.domain.passwords import hash_password
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.users import set_disabled
from trialkit.services.integrity import verification
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.store.models import AuditEvent

# The trail every tamper test starts from, one event per line.
TRAIL = [
    "user.add",       # 1  alice, admin, running init (records alice and her signing key)
    "trial.create",   # 2  alice creates KETHEAD (records the trial state)
    "login",          # 3  alice signs in (no state change, no state recorded)
    "user.add",       # 4  carol, coordinator at TWH, waiting for activation
    "user.activate",  # 5  carol sets her password with her enrolment code
    "user.add",       # 6  mark, monitor
    "user.activate",  # 7  mark activates his account
    "login.fail",     # 8  carol mistypes her password (failed_logins 1)
    "login",          # 9  carol signs in (failed_logins back to 0)
    "login.fail",     # 10 someone tries the unknown name "mallory" (no state)
    "user.disable",   # 11 alice disables mark, reason "left the study"
]
# MARK_ADDED: the last event that records mark before he was disabled (his activation).
CAROL_LAST, MARK_ADDED, MARK_LAST, ALICE_LAST = 9, 7, 11, 1


@dataclass(frozen=True)
class Trail:
    engine: Engine
    backend: str
    head: str


@pytest.fixture(scope="module", params=BACKENDS)
def trail(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Trail]:
    with empty_database(request.param, tmp_path_factory.mktemp("trail"), "trail.db") as url:
        engine = make_engine(url, must_exist=False)
        clock = SteppingClock()
        initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
                   training=False, clock=clock)
        clock.advance(minutes=1)
        alice = sign_in(engine, ADMIN, clock)
        clock.advance(minutes=1)
        add_user(engine, alice, clock, "carol", Role.COORDINATOR, sites=["TWH"])
        clock.advance(minutes=1)
        add_user(engine, alice, clock, "mark", Role.MONITOR)
        clock.advance(minutes=1)
        with pytest.raises(AuthenticationFailed):
            sign_in(engine, "carol", clock, password="not-carols-password")
        clock.advance(minutes=1)
        sign_in(engine, "carol", clock)
        clock.advance(minutes=1)
        with pytest.raises(AuthenticationFailed):
            sign_in(engine, "mallory", clock)
        clock.advance(minutes=1)
        with transaction(engine) as s:
            set_disabled(s, alice, name="mark", disabled=True, reason="left the study",
                         clock=clock)
        assert audit_actions(engine) == TRAIL
        report = verify(engine)
        assert report.ok, report.problem
        yield Trail(engine, request.param, report.head)
        engine.dispose()


LAST = len(TRAIL)


def _count(engine: Engine) -> int:
    with reader(engine).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(EVENTS)).scalar_one())


# --- the database itself refuses ---------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET reason = 'nothing to see' WHERE seq = 9",
        "UPDATE audit_event SET hash = prev_hash WHERE seq = 1",
        "DELETE FROM audit_event WHERE seq = 5",
        "DELETE FROM audit_event WHERE seq = 9",
        "DELETE FROM audit_event",
    ],
)
def test_database_refuses_to_change_or_delete_audit_events(trail: Trail, statement: str) -> None:
    with pytest.raises(DBAPIError, match="append-only"), trail.engine.begin() as conn:
        conn.execute(text(statement))
    assert _count(trail.engine) == LAST
    assert verify(trail.engine).ok


def test_database_refuses_to_empty_the_audit_trail(trail: Trail) -> None:
    # TRUNCATE skips row triggers on PostgreSQL, so it has a guard of its own.
    # SQLite has no TRUNCATE: its "DELETE FROM" without WHERE is the same thing.
    statement = "DELETE FROM audit_event"
    if trail.backend == "postgresql":
        statement = "TRUNCATE audit_event"
    with pytest.raises(DBAPIError, match="append-only"), trail.engine.begin() as conn:
        conn.execute(text(statement))
    assert _count(trail.engine) == LAST


def test_database_refuses_an_orm_edit_of_an_audit_event(trail: Trail) -> None:
    with pytest.raises(DBAPIError, match="append-only"), Session(trail.engine) as s:
        e = s.get(AuditEvent, 4)
        assert e is not None
        e.reason = "backdated"
        s.commit()
    assert verify(trail.engine).ok


# --- an untouched trail ------------------------------------------------------------------


def test_untampered_trail_verifies(trail: Trail) -> None:
    report = verify(trail.engine, expected_head=trail.head[:16])
    assert report.ok, report.problem
    assert report.events == LAST
    assert report.bad_seq is None and report.problem is None
    with reader(trail.engine).connect() as conn:
        assert report.head == event(conn, LAST)["hash"]


# --- editing events ----------------------------------------------------------------------

Edit = Callable[[dict[str, Any]], Any]
EDITS: list[tuple[str, int, Edit]] = [
    ("reason", 9, lambda row: "routine clean-up"),
    ("user_name", 3, lambda row: "bob"),
    ("after_json", 4, lambda row: row["after_json"].replace('"coordinator"', '"admin"')),
    ("at", 6, lambda row: row["at"] - timedelta(hours=1)),
    ("action", 8, lambda row: "login"),
    ("before_json", 9, lambda row: None),
    ("entity_id", 1, lambda row: "OTHER"),
]


@pytest.mark.parametrize(("field", "seq", "edit"), EDITS, ids=[f"{f}@{s}" for f, s, _ in EDITS])
def test_an_edited_event_is_caught_at_that_event(
    trail: Trail, field: str, seq: int, edit: Edit
) -> None:
    with rehearse(trail.engine) as conn:
        new = edit(event(conn, seq))
        assert new != event(conn, seq)[field]
        set_event(conn, seq, **{field: new})
        report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == seq
    assert report.problem == f"event {seq}: its content was changed after it was written"


def _changed(field: str, old: Any) -> Any:
    if field == "at":
        return old + timedelta(microseconds=1)
    if field in ("hash", "prev_hash"):
        return old[:-1] + ("0" if old[-1] != "0" else "1")
    if field == "signature":  # a signature where there was none, or one bit of it flipped
        return bytes(64) if old is None else old[:-1] + bytes([old[-1] ^ 1])
    if old is None:
        return "{}" if field.endswith("_json") else "x"
    return old + "x"


def test_any_field_of_any_event_edited_is_caught_at_that_event(trail: Trail) -> None:
    fields = [c.name for c in EVENTS.columns if c.name != "seq"]
    assert len(fields) == 12
    missed = []
    for seq in range(1, LAST + 1):
        for field in fields:
            with rehearse(trail.engine) as conn:
                set_event(conn, seq, **{field: _changed(field, event(conn, seq)[field])})
                report = verify_on(conn)
            if report.ok or report.bad_seq != seq:
                missed.append((seq, field, report.bad_seq))
    assert missed == []


# --- deleting events ---------------------------------------------------------------------


@pytest.mark.parametrize("seq", [1, 5, 8])
def test_a_deleted_event_is_caught_at_the_gap(trail: Trail, seq: int) -> None:
    with rehearse(trail.engine) as conn:
        delete_event(conn, seq)
        report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == seq
    assert report.problem is not None and "missing" in report.problem


def test_deleting_the_last_event_shows_in_the_user_it_changed(trail: Trail) -> None:
    # Event 11 disabled mark. Without it, mark's row contradicts his last surviving event.
    with rehearse(trail.engine) as conn:
        delete_event(conn, LAST)
        report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == MARK_ADDED
    assert report.problem is not None and "'mark'" in report.problem


def test_erasing_the_last_action_and_its_event_is_caught_against_a_noted_head(
    trail: Trail,
) -> None:
    with rehearse(trail.engine) as conn:
        conn.execute(text("UPDATE app_user SET disabled = false WHERE name = 'mark'"))
        delete_event(conn, LAST)
        guards_on(conn)  # and puts the triggers back, as a careful attacker would
        # Nothing left contradicts anything: this is what a noted head (--head) is for.
        assert verify_on(conn).ok
        report = verify_on(conn, expected_head=trail.head[:16])
    assert not report.ok
    assert report.bad_seq == LAST
    assert report.problem is not None and trail.head[:16] in report.problem


# --- inserting, reordering and rewriting events ------------------------------------------


def _forged_after(conn: Connection, seq: int, **overrides: Any) -> dict[str, Any]:
    """A well-formed event that links to event ``seq - 1`` and carries a correct hash."""
    row = dict(event(conn, 3)) | {"seq": seq, "prev_hash": event(conn, seq - 1)["hash"]}
    row |= {"at": event(conn, seq - 1)["at"] + timedelta(seconds=1)} | overrides
    row["hash"] = rehash(row)
    return row


def test_an_inserted_event_is_caught_where_the_renumbered_events_start(trail: Trail) -> None:
    with rehearse(trail.engine) as conn:
        forged = _forged_after(conn, 4, reason="signed in from the ward")
        shift_events(conn, 4, by=1)
        conn.execute(EVENTS.insert().values(**forged))
        assert [r["seq"] for r in events(conn)] == list(range(1, LAST + 2))
        report = verify_on(conn)
    assert not report.ok
    # The forged event 4 links and hashes correctly, but the signature it copied from
    # event 3 signs event 3's hash, not its own.
    assert report.bad_seq == 4
    assert report.problem == (
        f"event 4: its signature does not match {ADMIN}'s key: the event was changed or forged"
    )


def test_an_appended_event_about_a_user_who_does_not_exist_is_caught_at_itself(
    trail: Trail,
) -> None:
    with rehearse(trail.engine) as conn:
        after = json.loads(event(conn, 4)["after_json"]) | {"name": "eve", "role": "admin"}
        forged = _forged_after(
            conn, LAST + 1, action="user.add", entity_id="eve",
            after_json=json.dumps(after, sort_keys=True, separators=(",", ":")),
        )
        conn.execute(EVENTS.insert().values(**forged))
        report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == LAST + 1
    assert report.problem is not None and "signature does not match" in report.problem


@pytest.mark.parametrize(("first", "second"), [(6, 7), (2, 8), (1, LAST)])
def test_two_swapped_events_are_caught_at_the_first(trail: Trail, first: int, second: int) -> None:
    with rehearse(trail.engine) as conn:
        a, b = event(conn, first), event(conn, second)
        delete_event(conn, first)
        delete_event(conn, second)
        conn.execute(EVENTS.insert().values(**(b | {"seq": first})))
        conn.execute(EVENTS.insert().values(**(a | {"seq": second})))
        report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == first


def test_a_rewritten_event_with_a_correct_hash_is_caught_at_itself(trail: Trail) -> None:
    # Its hash is right, but alice's signature signs the hash she wrote.
    with rehearse(trail.engine) as conn:
        row = event(conn, 4)
        row["after_json"] = row["after_json"].replace('"coordinator"', '"admin"')
        set_event(conn, 4, after_json=row["after_json"], hash=rehash(row))
        report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == 4
    assert report.problem == (
        f"event 4: its signature does not match {ADMIN}'s key: the event was changed or forged"
    )


def test_a_rewritten_newest_event_is_caught_without_a_noted_head(trail: Trail) -> None:
    # Nothing follows it to break the link, but its author's signature no longer fits.
    with rehearse(trail.engine) as conn:
        row = event(conn, LAST) | {"reason": "asked by the sponsor"}
        set_event(conn, LAST, reason=row["reason"], hash=rehash(row))
        report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == LAST
    assert report.problem is not None and "signature does not match" in report.problem


def test_a_consistent_rewrite_of_history_is_caught_at_its_first_event(trail: Trail) -> None:
    """The strongest attack without anyone's password: carol becomes admin in her row and
    in every event that recorded her, and every hash from event 4 on is recomputed and
    relinked. The signatures still sign the old hashes."""
    with rehearse(trail.engine) as conn:
        conn.execute(text("UPDATE app_user SET role = 'admin' WHERE name = 'carol'"))
        rows = events(conn)
        for i in range(3, LAST):
            row = rows[i]
            if row["entity_id"] == "carol":
                for field in ("before_json", "after_json"):
                    if row[field]:
                        row[field] = row[field].replace('"coordinator"', '"admin"')
            row["prev_hash"] = rows[i - 1]["hash"]
            row["hash"] = rehash(row)
            set_event(conn, row["seq"], **{k: v for k, v in row.items() if k != "seq"})
        guards_on(conn)  # the triggers back, as a careful attacker would put them
        report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == 4
    assert report.problem is not None and "signature does not match" in report.problem


# --- changing users and the trial without an event ---------------------------------------

DIRECT_EDITS = {
    "coordinator made admin": (["UPDATE app_user SET role = 'admin' WHERE name = 'carol'"],
                               CAROL_LAST, "carol"),
    "disabled user enabled": (["UPDATE app_user SET disabled = false WHERE name = 'mark'"],
                              MARK_LAST, "mark"),
    "monitor made custodian": (["UPDATE app_user SET custodian = true WHERE name = 'mark'"],
                               MARK_LAST, "mark"),
    "failure count changed": (["UPDATE app_user SET failed_logins = 3 WHERE name = 'carol'"],
                              CAROL_LAST, "carol"),
    "coordinator given a second site": (
        ["INSERT INTO user_site (user_id, site_code) "
         "SELECT id, 'SHS' FROM app_user WHERE name = 'carol'"], CAROL_LAST, "carol"),
    "training flag flipped": (["UPDATE trial SET training = true"], 2, "KETHEAD"),
    "protocol hash replaced": (["UPDATE trial SET protocol_sha256 = 'feed'"], 2, "KETHEAD"),
    "site target changed": (["UPDATE site SET target = 99 WHERE code = 'TWH'"], 2, "KETHEAD"),
    "site added": (["INSERT INTO site (code, name, target) VALUES ('ZZZ', 'Rogue', 5)"],
                   2, "KETHEAD"),
    "user deleted": (["DELETE FROM app_user WHERE name = 'mark'"], MARK_LAST, "mark"),
}


@pytest.mark.parametrize(("statements", "bad_seq", "who"), DIRECT_EDITS.values(),
                         ids=DIRECT_EDITS.keys())
def test_a_change_made_outside_trialkit_is_caught_at_the_last_event_recording_it(
    trail: Trail, statements: list[str], bad_seq: int, who: str
) -> None:
    with rehearse(trail.engine) as conn:
        for statement in statements:
            conn.execute(text(statement))
        report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == bad_seq
    assert report.problem is not None and f"'{who}'" in report.problem


def test_a_password_hash_swapped_in_directly_is_caught(trail: Trail) -> None:
    known = hash_password("attacker-knows-this")
    with rehearse(trail.engine) as conn:
        conn.execute(USERS.update().where(USERS.c.name == ADMIN).values(password_hash=known))
        report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == ALICE_LAST


def test_a_user_added_outside_trialkit_is_caught_after_the_last_event(trail: Trail) -> None:
    with rehearse(trail.engine) as conn:
        alice = conn.execute(select(USERS).where(USERS.c.name == ADMIN)).one()
        conn.execute(USERS.insert().values(dict(alice._mapping) | {"id": 99, "name": "eve"}))
        report = verify_on(conn)
    assert not report.ok
    assert report.bad_seq == LAST + 1
    assert report.problem is not None
    assert "'eve' exists but no audit event records it" in report.problem


# --- tampering for real, with the guards put back ----------------------------------------


def test_committed_tampering_is_caught_by_a_fresh_connection_and_guards_stay(
    engine: Engine, db_url: str
) -> None:
    with attack(engine) as conn:
        set_event(conn, 2, user_name="sponsor")
    engine.dispose()
    fresh = make_engine(db_url)
    try:
        report = verify(fresh)
        assert not report.ok
        assert report.bad_seq == 2
        with pytest.raises(DBAPIError, match="append-only"), fresh.begin() as conn:
            delete_event(conn, 1)
    finally:
        fresh.dispose()


def test_an_edited_protocol_text_fails_verification(engine: Engine) -> None:
    from sqlalchemy import update as _update

    from trialkit.store.models import Trial as _Trial

    with transaction(engine) as s:
        s.execute(
            _update(_Trial).values(protocol_text=_Trial.protocol_text + "\n# block_sizes = [2]")
        )
    with read_only(engine) as s:
        report = verification.verify(s)
    assert not report.ok
    assert report.bad_seq == 2  # trial.create, which stored the protocol
    assert "protocol text" in (report.problem or "")
