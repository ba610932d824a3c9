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


class ChainWalk:
    """Walks the chain one event at a time, in stored order, holding only the previous
    hash: ``step`` each event; ``first_break`` is the first one that did not fit, and
    ``count`` and ``head`` keep counting past it (the trail as stored)."""

    def __init__(self) -> None:
        self.count = 0
        self.head = GENESIS
        self.first_break: ChainBreak | None = None

    def step(self, fields: ChainFields, stored: str) -> ChainBreak | None:
        """Check one event against the one before it; its break, if it is the first."""
        expected_seq, expected_prev = self.count + 1, self.head
        self.count += 1
        self.head = stored
        if self.first_break is not None:
            return None
        found: ChainBreak | None = None
        if fields.seq != expected_seq:
            if fields.seq > expected_seq:
                why = f"missing: the trail jumps from {expected_seq - 1} to {fields.seq}"
                found = ChainBreak(expected_seq, why)
            else:
                found = ChainBreak(fields.seq, f"out of order: found after {expected_seq - 1}")
        elif fields.prev_hash != expected_prev:
            found = ChainBreak(fields.seq, "does not link to the event before it")
        elif event_hash(fields) != stored:
            found = ChainBreak(fields.seq, "its content was changed after it was written")
        self.first_break = found
        return found


def first_break(events: Iterable[tuple[ChainFields, str]]) -> ChainBreak | None:
    """Walk events (fields, stored hash) in stored order; the first one that does not fit."""
    walk = ChainWalk()
    for fields, stored in events:
        if walk.step(fields, stored) is not None:
            return walk.first_break
    return None


class TimeWalk:
    """Walks events' times in stored order (see :func:`first_time_reversal`), one at a time:
    ``first_reversal`` is the first event recorded earlier than the one before it."""

    def __init__(self) -> None:
        self._previous: tuple[int, datetime] | None = None
        self.first_reversal: ChainBreak | None = None

    def step(self, seq: int, at: datetime) -> ChainBreak | None:
        """Check one event's time; its reversal, if it is the first."""
        previous, self._previous = self._previous, (seq, at)
        if self.first_reversal is not None or previous is None or at >= previous[1]:
            return None
        self.first_reversal = ChainBreak(
            seq,
            f"recorded at {at.astimezone(UTC).isoformat()}, earlier than event "
            f"{previous[0]} ({previous[1].astimezone(UTC).isoformat()}): a clock went "
            "back or events were rewritten",
        )
        return self.first_reversal


def first_time_reversal(times: Iterable[tuple[int, datetime]]) -> ChainBreak | None:
    """The first event (seq, at in stored order) recorded earlier than the one before it:
    in a live trial events are appended one at a time under a lock, so time only goes
    forward along the chain unless a clock went back or events were rewritten."""
    walk = TimeWalk()
    for seq, at in times:
        if walk.step(seq, at) is not None:
            return walk.first_reversal
    return None
