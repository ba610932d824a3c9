"""The audit trail's hash chain: canonical JSON and SHA-256, no database involved.

Each event's hash covers its own fields and the previous event's hash, so editing,
deleting, inserting or reordering any event breaks every hash after it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """One exact text for a JSON value: sorted keys, no spaces, UTF-8 kept. (One encoder for
    every call: ``json.dumps`` with options builds a new one each time.)"""
    return _CANONICAL.encode(value)


@dataclass(frozen=True)
class ChainFields:
    """What an audit event's hash covers."""

    seq: int
    at: datetime
    user_name: str
    role: str
    action: str
    entity: str
    entity_id: str
    before_json: str | None
    after_json: str | None
    reason: str | None
    prev_hash: str


def event_hash(f: ChainFields) -> str:
    """SHA-256 over the canonical JSON of the event's fields, previous hash included."""
    payload = {
        "seq": f.seq,
        "at": f.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "user": f.user_name,
        "role": f.role,
        "action": f.action,
        "entity": f.entity,
        "entity_id": f.entity_id,
        "before": f.before_json,
        "after": f.after_json,
        "reason": f.reason,
        "prev": f.prev_hash,
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    why: str


def first_break(events: list[tuple[ChainFields, str]]) -> ChainBreak | None:
    """Walk events (fields, stored hash) in stored order; the first one that does not fit."""
    expected_prev = GENESIS
    expected_seq = 1
    for fields, stored in events:
        if fields.seq != expected_seq:
            if fields.seq > expected_seq:
                why = f"missing: the trail jumps from {expected_seq - 1} to {fields.seq}"
                return ChainBreak(expected_seq, why)
            return ChainBreak(fields.seq, f"out of order: found after {expected_seq - 1}")
        if fields.prev_hash != expected_prev:
            return ChainBreak(fields.seq, "does not link to the event before it")
        if event_hash(fields) != stored:
            return ChainBreak(fields.seq, "its content was changed after it was written")
        expected_prev = stored
        expected_seq += 1
    return None


def first_time_reversal(times: Iterable[tuple[int, datetime]]) -> ChainBreak | None:
    """The first event (seq, at in stored order) recorded earlier than the one before it:
    in a live trial events are appended one at a time under a lock, so time only goes
    forward along the chain unless a clock went back or events were rewritten."""
    previous: tuple[int, datetime] | None = None
    for seq, at in times:
        if previous is not None and at < previous[1]:
            return ChainBreak(
                seq,
                f"recorded at {at.astimezone(UTC).isoformat()}, earlier than event "
                f"{previous[0]} ({previous[1].astimezone(UTC).isoformat()}): a clock went "
                "back or events were rewritten",
            )
        previous = (seq, at)
    return None
