"""What the audit trail records of the headache diary: the snapshot of one day (its current
version and every earlier one), the snapshot of a batch of days stored together, and the
state of every audited diary entity, which ``audit verify`` compares with its last event."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlmodel import Session, col, select

from trialkit.store.models import DiaryEntry


def utc_text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class _Version(Protocol):
    """A stored diary version: a ``DiaryEntry`` or a row of its columns."""

    participant_id: str
    day: str
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
        "date": current.day,
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


def diary_states(session: Session) -> dict[str, dict[str, Any]]:
    """The state of every audited diary entity, keyed as its audit events are: each day
    entered or corrected on its own (``PID/DATE``) and each batch (``batch/ID``)."""
    fields = [getattr(DiaryEntry, name) for name in _Version.__annotations__]
    stmt = select(*fields).order_by(
        col(DiaryEntry.participant_id), col(DiaryEntry.day), col(DiaryEntry.version)
    )
    versions: dict[tuple[str, str], list[_Version]] = {}
    for e in session.exec(stmt):
        versions.setdefault((e.participant_id, e.day), []).append(e)
    states: dict[str, dict[str, Any]] = {}
    batches: dict[str, tuple[list[BatchRow], set[str], set[str]]] = {}
    for (pid, day), rows in versions.items():
        first, current = rows[0], [e for e in rows if e.current]
        batch = _batch_of(first)
        if batch is not None:
            held, by, at = batches.setdefault(batch, ([], set(), set()))
            held.append((pid, day, first.headache, first.severity, first.duration_hours,
                         first.acute_medication))
            by.add(first.recorded_by)
            at.add(utc_text(first.recorded_at))
            if len(rows) == 1 and first.current:
                continue  # audited with its batch only
        # No current version (or two) is itself a change made outside trialkit.
        shown = current[-1] if len(current) == 1 else rows[-1]
        state = diary_snapshot(shown, [e for e in rows if e is not shown])
        if len(current) != 1:
            state["current_versions"] = len(current)
        states[f"{pid}/{day}"] = state
    for batch, (held, by, at) in batches.items():
        states[f"batch/{batch}"] = batch_snapshot(held, by, at)
    return states
