"""Signed audit checkpoints against an insider who holds the database (issue 12, finding 3):
whoever can write the file or is a superuser can delete events, rewrite the chain and
recompute every hash so that ``audit verify`` alone says OK. A checkpoint kept outside
the database catches each of these; rewriting the checkpoint itself breaks its signature.

Runs on the pharmacy world (both backends): staff, sealed lists, five participants
randomized; each test tampers inside a transaction that is rolled back."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, func, select
from sqlmodel import Session

from tests.conftest import ADMIN, PASSWORD
from tests.db.tampering import (
    EVENTS,
    delete_event,
    events,
    guards_off,
    guards_on,
    rehash,
    shift_events,
)
from tests.db.test_pharmacy import Box, arm_words, world  # noqa: F401 (the module's fixture)
from tests.db.test_pharmacy import box as pharmacy_box  # noqa: F401
from trialkit.domain.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from trialkit.domain.errors import (
    IntegrityFailure,
    InvalidInput,
    PermissionDenied,
    TrialkitError,
)
from trialkit.services.administration.users import change_password
from trialkit.services.integrity import verification
from trialkit.services.integrity.checkpoints import check_checkpoint, write_checkpoint
from trialkit.store.models import AuditEvent, User

WHERE = "kept.checkpoint.json"


@pytest.fixture
def box(pharmacy_box: Box) -> Iterator[Box]:  # noqa: F811
    yield pharmacy_box


def take(box: Box, who: str = "mona") -> Checkpoint:
    with box.tx() as s:
        return write_checkpoint(s, box.actor(who), clock=box.clock)


def check(box: Box, cp: Checkpoint) -> None:
    """What ``audit verify --checkpoint`` does: the checkpoint, then the whole verify."""
    with Session(bind=box.conn) as s:
        check_checkpoint(s, cp, WHERE)
        report = verification.verify(s)
    assert report.ok, report.problem


def plain_verify_ok(box: Box) -> bool:
    with Session(bind=box.conn) as s:
        report = verification.verify(s)
    assert report.ok, report.problem
    return True


def failure(box: Box, cp: Checkpoint, kind: type[TrialkitError] = IntegrityFailure) -> str:
    with pytest.raises(kind) as caught:
        check(box, cp)
    assert "\n" not in caught.value.message
    return caught.value.message


def rechain(conn: Connection, from_seq: int) -> None:
    """Recompute every link and hash from ``from_seq`` on, as an attacker would (the
    algorithm is no secret)."""
    rows = events(conn)
    prev = rows[from_seq - 2]["hash"] if from_seq > 1 else "0" * 64
    for row in rows[from_seq - 1:]:
        row["prev_hash"] = prev
        prev = rehash(row)
        conn.execute(EVENTS.update().where(EVENTS.c.seq == row["seq"])
                     .values(prev_hash=row["prev_hash"], hash=prev))


def count_and_head(conn: Connection) -> tuple[int, str]:
    count = conn.execute(select(func.count()).select_from(EVENTS)).scalar_one()
    head = conn.execute(select(EVENTS.c.hash).order_by(EVENTS.c.seq.desc()).limit(1)).scalar_one()
    return count, head


def test_a_checkpoint_counts_the_whole_trail_with_its_own_event_and_holds(box: Box) -> None:
    cp = take(box)
    count, head = count_and_head(box.conn)
    assert (cp.events, cp.head, cp.trial, cp.signer, cp.role) == (
        count, head, "KETHEAD", "mona", "monitor")
    last = box.events()[-1]
    assert (last.action, last.user_name, last.seq) == ("audit.checkpoint", "mona", count)
    assert cp.at == last.at
    # signed by the key the database holds for mona, checked here with the library alone
    with box.tx() as s:
        mona = s.exec(select(User).where(User.name == "mona")).scalar_one()  # type: ignore[call-overload]
    assert bytes.fromhex(cp.public_key) == mona.signing_public_key
    check(box, cp)


@pytest.mark.parametrize("who", ["cora", "phil", "ivan", ADMIN])
def test_any_signed_in_role_may_write_one_and_it_names_no_arm(box: Box, who: str) -> None:
    cp = take(box, who)
    assert not arm_words(cp.text())
    assert set(json.loads(cp.text())) == {"format", "trial", "first_event", "events", "head",
                                          "at", "signer", "role", "public_key", "signature"}
    check(box, cp)


@pytest.mark.parametrize("held", ["no key", "another user's key", "a key of one's own"])
def test_a_checkpoint_needs_the_key_the_sign_in_unlocked_and_a_refusal_is_audited(
    box: Box, held: str
) -> None:
    """Signed with the key the actor's sign-in unlocked (no password asked again): an actor
    holding no key (signed out, at the lock screen), or a key that is not the account's,
    writes nothing, and the refusal is recorded."""
    mona = box.actor("mona")
    actor = {
        "no key": mona.without_key(),
        "another user's key": dataclasses.replace(
            mona, signing_key=box.actor("phil").signing_key),
        "a key of one's own": dataclasses.replace(
            mona, signing_key=Ed25519PrivateKey.generate()),
    }[held]
    with pytest.raises(PermissionDenied) as caught, box.tx() as s:
        write_checkpoint(s, actor, clock=box.clock)
    assert "sign in again" in caught.value.message
    # store.db.transaction appended the refusal's record after rolling the work back
    assert caught.value.record_after is None
    assert box.events()[-1].action == "audit.checkpoint.refused"
    assert box.events("audit.checkpoint") == []


def test_deleting_the_last_events_is_caught_by_a_checkpoint(box: Box) -> None:
    box.dispense("TWH-001")  # phil opens an envelope: an envelope.open event
    cp = take(box)
    guards_off(box.conn)
    for seq in (cp.events, cp.events - 1):  # the checkpoint's own event, then the opening
        delete_event(box.conn, seq)
    guards_on(box.conn)  # and the guards back, so the schema looks untouched
    assert plain_verify_ok(box)  # the attack alone passes verify: the trail is consistent
    message = failure(box, cp)
    assert message == (f"verification failed: checkpoint {WHERE}: it counts {cp.events} events "
                       f"but the trail holds {cp.events - 2}: events after {cp.events - 2} "
                       "were removed")


@pytest.mark.parametrize("pad", [False, True], ids=["renumbered", "padded-to-count"])
def test_deleting_a_mid_chain_opening_and_recomputing_the_hashes_is_caught(
    box: Box, pad: bool
) -> None:
    box.dispense("TWH-001")
    [opening] = box.events("envelope.open")
    box.clock.advance(minutes=1)
    box.dispense("TWH-002")  # later work, then a checkpoint after both
    cp = take(box, "iris")
    guards_off(box.conn)
    delete_event(box.conn, opening.seq)
    shift_events(box.conn, opening.seq + 1, -1)
    if pad:  # a forged event appended so the trail has the checkpoint's count again
        forged = events(box.conn)[-1] | {"seq": cp.events, "reason": "padding",
                                         "hash": "f" * 64}  # rehashed below
        box.conn.execute(EVENTS.insert().values(**forged))
    rechain(box.conn, opening.seq)
    guards_on(box.conn)
    # The chain alone is consistent again, but the renumbered events' authors signed
    # their old hashes: signatures catch it too, the checkpoint says what was lost.
    with Session(bind=box.conn) as s:
        alone = verification.verify(s)
    assert not alone.ok
    assert alone.problem is not None and "signature does not match" in alone.problem
    message = failure(box, cp)
    if pad:
        assert message == (f"verification failed: checkpoint {WHERE}: event {cp.events} no "
                           f"longer has the head hash {cp.head[:16]} it signed: events up to "
                           "it were removed, added or rewritten")
    else:
        assert f"events after {cp.events - 1} were removed" in message


def test_a_checkpoint_taken_before_a_deletion_does_not_vouch_for_what_came_after(
    box: Box,
) -> None:
    """What a checkpoint covers is exactly its count: events after it are the chain's
    and the next checkpoint's to vouch for."""
    cp = take(box)
    box.dispense("TWH-001")
    [opening] = box.events("envelope.open")
    assert opening.seq > cp.events
    guards_off(box.conn)
    delete_event(box.conn, opening.seq)
    shift_events(box.conn, opening.seq + 1, -1)
    rechain(box.conn, opening.seq)
    guards_on(box.conn)
    check(box, cp)


def rewritten(box: Box, cp: Checkpoint, events_count: int) -> Checkpoint:
    """The checkpoint's count and head changed to another real point of the trail, as
    someone hiding what came after it would write them."""
    head = box.conn.execute(select(EVENTS.c.hash).where(EVENTS.c.seq == events_count)
                            ).scalar_one()
    return dataclasses.replace(cp, events=events_count, head=head)


def test_rewriting_a_checkpoints_count_and_head_breaks_its_signature(box: Box) -> None:
    cp = take(box)
    for forged in (rewritten(box, cp, cp.events - 2),
                   dataclasses.replace(cp, signer="ivan"),
                   dataclasses.replace(cp, at=cp.at.replace(year=2027))):
        assert failure(box, forged) == (f"verification failed: checkpoint {WHERE}: its "
                                        "signature does not hold: the file was changed after "
                                        "it was signed")
    # the same through the file's text
    doc = json.loads(cp.text())
    doc["events"] -= 1
    edited = parse_checkpoint(json.dumps(doc).encode(), WHERE)
    assert "signature does not hold" in failure(box, edited)


def test_a_checkpoint_signed_with_a_key_the_trail_never_gave_its_signer_is_refused(
    box: Box,
) -> None:
    """Someone who rewrote the tail signs a new checkpoint "as mona" with a key of their own."""
    cp = take(box)
    forged = sign_checkpoint(Ed25519PrivateKey.generate(), trial=cp.trial,
                             first_event=cp.first_event, events=cp.events, head=cp.head,
                             at=cp.at, signer="mona", role="monitor")
    message = failure(box, forged)
    assert message.startswith(f"verification failed: checkpoint {WHERE}: signed with key ")
    assert "but the trail records key " in message and "for 'mona' at event" in message


def test_a_checkpoint_of_another_trial_is_refused(box: Box) -> None:
    cp = take(box)
    renamed = dataclasses.replace(cp, trial="MIGRAINE2")
    assert failure(box, renamed, InvalidInput) == (
        f"{WHERE} is a checkpoint of trial 'MIGRAINE2', not of 'KETHEAD': nothing was "
        "checked against it")
    # another trial with the same code (its first event differs), soundly signed by its
    # own user (the CLI test checks one from a real second database)
    elsewhere = sign_checkpoint(Ed25519PrivateKey.generate(), trial="KETHEAD",
                                first_event="ab" * 32, events=cp.events, head=cp.head,
                                at=cp.at, signer="alice", role="admin")
    assert failure(box, elsewhere) == (
        f"verification failed: checkpoint {WHERE}: the trail's first event is not the one it "
        "records: it is another trial's checkpoint, or the trail was rewritten from its start")


def test_after_a_new_password_the_checkpoint_still_holds_and_says_the_key_changed(
    box: Box,
) -> None:
    cp = take(box)
    with box.tx() as s:
        change_password(s, box.actor("mona"), current_password=PASSWORD,
                        new_password="a-quite-different-passphrase-41", clock=box.clock)
    with Session(bind=box.conn) as s:
        held = check_checkpoint(s, cp, WHERE)
    assert held.note is not None and "the database now records key" in held.note
    assert "for 'mona', not the checkpoint's" in held.note


def test_the_checkpoint_event_is_in_the_trail_it_counts(box: Box) -> None:
    """Removing the checkpoint's own event is removing an event it counts."""
    cp = take(box)
    with box.tx() as s:
        event = s.get(AuditEvent, cp.events)
    assert event is not None and event.action == "audit.checkpoint"
    assert event.reason == "signed checkpoint (on request)"
