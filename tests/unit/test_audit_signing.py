"""The signature rules of ``domain.audit_signing`` on generated trails (no database): a
trail its authors signed verifies; editing any event (every hash after it recomputed) or
copying a signature to another event is found at that event; a key changes only under the
old one."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from trialkit.domain.audit_chain import GENESIS, ChainFields, event_hash
from trialkit.domain.audit_signing import SignatureWalk, sign_event

Event = tuple[ChainFields, str, bytes | None]
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PEOPLE = ("ada", "cora", "ivan")


def _key_state(key: Ed25519PrivateKey) -> str:
    return json.dumps({"signing_key": key.public_key().public_bytes_raw().hex()})


def build(plan: list[tuple[int, str, str]]) -> list[Event]:
    """A trail: each person activates first (their new key signs it), then the plan's
    steps (who, what, a reason); ``passwd`` makes a new key signed under the old one."""
    keys: dict[str, Ed25519PrivateKey] = {}
    steps: list[tuple[str, str, str]] = [(p, "user.activate", "") for p in PEOPLE]
    steps += [(PEOPLE[who], what, why) for who, what, why in plan]
    trail: list[Event] = []
    prev = GENESIS
    for seq, (who, action, why) in enumerate(steps, start=1):
        signer = keys.get(who)
        after = None
        if action in ("user.activate", "user.passwd"):
            new = Ed25519PrivateKey.generate()
            after = _key_state(new)
            signer = signer or new
            keys[who] = new
        fields = ChainFields(
            seq=seq, at=START + timedelta(minutes=seq), user_name=who, role="investigator",
            action=action, entity="user" if after else "participant",
            entity_id=who if after else "TWH-001", before_json=None, after_json=after,
            reason=why or None, prev_hash=prev)
        prev = event_hash(fields)
        assert signer is not None
        trail.append((fields, prev, sign_event(signer, prev)))
    return trail


def walk(trail: list[Event], workers: int = 0) -> SignatureWalk:
    """The walk over ``trail``, checking signatures one by one; with ``workers`` 0 it also
    checks that the walk with two worker threads finds the same first break."""
    w = SignatureWalk(workers=workers)
    for fields, stored, signature in trail:
        w.step(fields, stored, signature)
    w.finish()
    if workers == 0:
        assert walk(trail, workers=2).first_break == w.first_break
    return w


def rechained(trail: list[Event], at: int, **change: object) -> list[Event]:
    """Event ``at`` changed and every hash from it on recomputed; signatures kept."""
    out = trail[:at]
    prev = out[-1][1] if out else GENESIS
    for i, (fields, _stored, signature) in enumerate(trail[at:], start=at):
        fields = replace(fields, prev_hash=prev, **(change if i == at else {}))
        prev = event_hash(fields)
        out.append((fields, prev, signature))
    return out


PLANS = st.lists(
    st.tuples(st.integers(0, len(PEOPLE) - 1),
              st.sampled_from(["participant.randomize", "diary.import", "user.passwd"]),
              st.text(alphabet="abc xyz", max_size=12)),
    min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(PLANS, st.data())
def test_a_signed_trail_verifies_and_any_edit_is_found_at_that_event(
    plan: list[tuple[int, str, str]], data: st.DataObject
) -> None:
    trail = build(plan)
    assert walk(trail).first_break is None
    at = data.draw(st.integers(0, len(trail) - 1))
    edited = rechained(trail, at, reason=(trail[at][0].reason or "") + " (corrected)")
    found = walk(edited).first_break
    assert found is not None and found.seq == at + 1
    assert "signature does not match" in found.why


@settings(max_examples=40, deadline=None)
@given(PLANS, st.data())
def test_a_signature_copied_from_another_event_is_found(
    plan: list[tuple[int, str, str]], data: st.DataObject
) -> None:
    trail = build(plan)
    at = data.draw(st.integers(0, len(trail) - 1))
    source = data.draw(st.integers(0, len(trail) - 1).filter(lambda i: i != at))
    fields, stored, _own = trail[at]
    copied = [*trail[:at], (fields, stored, trail[source][2]), *trail[at + 1:]]
    found = walk(copied).first_break
    assert found is not None and found.seq == at + 1


def test_a_new_key_signed_by_itself_does_not_replace_an_old_one() -> None:
    trail = build([])
    mine = Ed25519PrivateKey.generate()
    last = trail[-1]
    fields = ChainFields(
        seq=len(trail) + 1, at=last[0].at + timedelta(minutes=1), user_name="ivan",
        role="investigator", action="user.passwd", entity="user", entity_id="ivan",
        before_json=None, after_json=_key_state(mine), reason=None, prev_hash=last[1])
    stored = event_hash(fields)
    found = walk([*trail, (fields, stored, sign_event(mine, stored))]).first_break
    assert found is not None and found.seq == len(trail) + 1
    assert found.why == ("its signature does not match ivan's key: the event was changed "
                         "or forged")


def test_signatures_checked_in_threads_break_at_the_first_forgery_of_a_long_trail() -> None:
    """Thousands of events (several chunks for the worker threads, checked out of order):
    two forged events, far apart; the earlier one is the break."""
    steps = 3000
    trail = build([(i % len(PEOPLE), "participant.randomize", "") for i in range(steps)])
    assert walk(trail, workers=2).first_break is None
    first, second = 2600, 1800 + 3  # list positions; seq is position + 1
    for at in (first, second):
        fields, stored, _own = trail[at]
        trail[at] = (fields, stored, trail[at - 1][2])  # another event's signature
    found = walk(trail, workers=2).first_break
    assert found is not None and found.seq == second + 1
    assert "signature does not match" in found.why
