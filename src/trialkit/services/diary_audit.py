"""What the audit trail records of the headache diary: the snapshot of one day (its current
version and every earlier one), the snapshot of a batch of days stored together, and the
digest of the state of every audited diary entity, which ``audit verify`` compares with its
last event."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from itertools import groupby
from typing import Any, Protocol

from sqlmodel import Session, col, select

from trialkit.domain.audit_chain import canonical_json
from trialkit.store.models import DiaryEntry


def utc_text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class _Version(Protocol):
    """A stored diary version: a ``DiaryEntry`` or a row of its columns."""

    participant_id: str
    day: date
    version: int
    headache: bool
    severity: str
    duration_hours: float
    acute_medication: bool
    recorded_by: str
    recorded_at: datetime
    reason: str | None
    current: bool


def _version_fields(e: _Version) -> dict[str, Any]:
    return {
        "version": e.version,
        "headache": e.headache,
        "severity": e.severity,
        "duration_hours": e.duration_hours,
        "acute_medication": e.acute_medication,
        "recorded_by": e.recorded_by,
        "recorded_at": utc_text(e.recorded_at),
        "reason": e.reason,
    }


def diary_snapshot(current: _Version, earlier: Sequence[_Version]) -> dict[str, Any]:
    """A diary day as the audit trail records it: the current version and every earlier
    one, so a changed or removed old version is caught by ``audit verify`` too."""
    return {
        "participant": current.participant_id,
        "date": current.day.isoformat(),
        **_version_fields(current),
        "earlier": [_version_fields(e) for e in sorted(earlier, key=lambda e: e.version)],
    }


# Days stored together (a file import, a paper diary typed in at once) are audited by one
# event for the batch, which records every row: one event per day would cost more than the
# rows themselves. Their first versions carry the batch in their reason.
BATCH_MARK = re.compile(r"\[batch ([0-9a-f]{16})\]$")
BatchRow = tuple[str, str, bool, str, float, bool]  # participant, date, the four values


def batch_reason(source: str, batch: str) -> str:
    shown = " ".join(source.split())
    if len(shown) > 120:
        shown = "…" + shown[-119:]
    return f"{shown} [batch {batch}]"


def _batch_of(e: _Version) -> str | None:
    found = BATCH_MARK.search(e.reason or "") if e.version == 1 else None
    return found[1] if found else None


def batch_snapshot(rows: Iterable[BatchRow], recorded_by: set[str], recorded_at: set[str]
                   ) -> dict[str, Any]:
    """A batch of days as the audit trail records it: who, when, and every row."""
    return {
        "recorded_by": sorted(recorded_by),
        "recorded_at": sorted(recorded_at),
        "rows": [list(r) for r in sorted(rows)],
    }


def state_digest(text: str) -> bytes:
    """What ``audit verify`` holds of a recorded or current state: its SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def recorded_diary_digest(entity_id: str, after_json: str) -> bytes:
    """The digest of a diary entity's state as its event recorded it, comparable with
    :func:`diary_digests`. A batch's digest covers its rows apart from who and when, so
    the rows can be hashed as they stream past."""
    if not entity_id.startswith("batch/"):
        return state_digest(after_json)
    doc = json.loads(after_json)
    if not isinstance(doc, dict):
        return state_digest(after_json)  # not a batch's state: it matches nothing
    rows = doc.pop("rows", None)
    return state_digest(canonical_json(doc)) + state_digest(canonical_json(rows))


class _BatchDigest:
    """A batch's digest built row by row (rows arrive in ``batch_snapshot``'s order)."""

    def __init__(self) -> None:
        self.rows = hashlib.sha256(b"[")
        self.empty = True
        self.recorded_by: set[str] = set()
        self.recorded_at: set[datetime] = set()  # as text only at the end: rows share one

    def add(self, first: _Version) -> None:
        row = (first.participant_id, first.day.isoformat(), first.headache, first.severity,
               first.duration_hours, first.acute_medication)
        self.rows.update(("" if self.empty else ",").encode() + canonical_json(row).encode())
        self.empty = False
        self.recorded_by.add(first.recorded_by)
        self.recorded_at.add(first.recorded_at)

    def digest(self) -> bytes:
        head = batch_snapshot([], self.recorded_by, {utc_text(at) for at in self.recorded_at})
        del head["rows"]
        self.rows.update(b"]")
        return state_digest(canonical_json(head)) + self.rows.digest()


def code_point_order(column: Any, dialect: str) -> Any:
    """``column`` to ORDER BY in Python's string order (PostgreSQL's collation may differ;
    SQLite compares bytes, which for UTF-8 is the same order)."""
    return column.collate("C") if dialect == "postgresql" else column


def diary_digests(session: Session) -> Iterator[tuple[str, bytes]]:
    """The digest of the state of every audited diary entity, keyed as its audit events are:
    each day entered or corrected on its own (``PID/DATE``) and each batch (``batch/ID``).
    Streams the versions in one query, participant by participant and day by day, holding
    one day's versions and each batch's running hash, never the rows."""
    fields = [getattr(DiaryEntry, name) for name in _Version.__annotations__]
    dialect = session.get_bind().dialect.name
    stmt = select(*fields).order_by(
        code_point_order(col(DiaryEntry.participant_id), dialect),
        col(DiaryEntry.day),  # a date: ISO text's order, as the batch's rows are
        col(DiaryEntry.version),
    ).execution_options(yield_per=5000)
    batches: dict[str, _BatchDigest] = {}
    for (pid, day), group in groupby(session.exec(stmt), key=lambda e: (e.participant_id, e.day)):
        rows: list[_Version] = list(group)
        first, current = rows[0], [e for e in rows if e.current]
        batch = _batch_of(first)
        if batch is not None:
            batches.setdefault(batch, _BatchDigest()).add(first)
            if len(rows) == 1 and first.current:
                continue  # audited with its batch only
        # No current version (or two) is itself a change made outside trialkit.
        shown = current[-1] if len(current) == 1 else rows[-1]
        state = diary_snapshot(shown, [e for e in rows if e is not shown])
        if len(current) != 1:
            state["current_versions"] = len(current)
        yield f"{pid}/{day.isoformat()}", state_digest(canonical_json(state))
    for batch, digest in batches.items():
        yield f"batch/{batch}", digest.digest()
