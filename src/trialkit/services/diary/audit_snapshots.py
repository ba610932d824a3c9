"""What the audit trail records of the headache diary: the snapshot of one day (its current
version and every earlier one), the snapshot of a batch of days stored together, and the
digest of the state of every audited diary entity, which ``audit verify`` compares with its
last event."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from itertools import chain
from typing import Any, Protocol

from sqlalchemy import select as select_columns
from sqlmodel import Session

from trialkit.domain.audit_chain import canonical_json
from trialkit.store.models import DiaryEntry

DIARY = DiaryEntry.__table__  # type: ignore[attr-defined]


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


def _batch_digest(head: bytes, rows: bytes, count: int) -> bytes:
    """A batch's digest: how many rows it holds (4 bytes), then the SHA-256 of the digests
    of its state apart from the rows and of its rows."""
    return count.to_bytes(4, "big") + hashlib.sha256(head + rows).digest()


def batch_rows(digest: bytes) -> int | None:
    """How many rows the batch whose digest this is holds (None: not a batch's digest)."""
    return int.from_bytes(digest[:4], "big") if len(digest) == 36 else None


def recorded_diary_digest(entity_id: str, after_json: str) -> bytes:
    """The digest of a diary entity's state as its event recorded it, comparable with
    :func:`diary_digests`. A batch's digest covers its rows apart from who and when, so
    the rows can be hashed as they stream past, and says how many rows it holds, so the
    stream can close it at its last row."""
    if not entity_id.startswith("batch/"):
        return state_digest(after_json)
    doc = json.loads(after_json)
    if not isinstance(doc, dict):
        return state_digest(after_json)  # not a batch's state: it matches nothing
    rows = doc.pop("rows", None)
    count = len(rows) if isinstance(rows, list) and len(rows) < 2**32 else 0
    return _batch_digest(state_digest(canonical_json(doc)), state_digest(canonical_json(rows)),
                         count)


_TEXT = json.encoder.encode_basestring  # a str as canonical_json writes it (UTF-8 kept)


def batch_row_text(row: BatchRow) -> str:
    """``canonical_json(row)`` for a batch row, written directly when its values have the
    expected types (the common case, over a million rows at 20,000 participants)."""
    pid, day, headache, severity, hours, acute = row
    if (type(pid) is str and type(day) is str and type(headache) is bool
            and type(severity) is str and type(hours) is float and math.isfinite(hours)
            and type(acute) is bool):
        return (f"[{_TEXT(pid)},{_TEXT(day)},{'true' if headache else 'false'},"
                f"{_TEXT(severity)},{hours!r},{'true' if acute else 'false'}]")
    return canonical_json(row)


class _BatchDigest:
    """A batch's digest built row by row (rows arrive in ``batch_snapshot``'s order)."""

    def __init__(self) -> None:
        self.rows = hashlib.sha256(b"[")
        self.count = 0
        self.recorded_by: set[str] = set()
        self.recorded_at: set[datetime] = set()  # as text only at the end: rows share one

    def add(self, first: _Version) -> None:
        row = (first.participant_id, first.day.isoformat(), first.headache, first.severity,
               first.duration_hours, first.acute_medication)
        self.add_row(row, first.recorded_by, first.recorded_at)

    def add_row(self, row: BatchRow, recorded_by: str, recorded_at: datetime) -> None:
        self.rows.update((("," if self.count else "") + batch_row_text(row)).encode())
        self.count += 1
        self.recorded_by.add(recorded_by)
        self.recorded_at.add(recorded_at)

    def digest(self) -> bytes:
        head = batch_snapshot([], self.recorded_by, {utc_text(at) for at in self.recorded_at})
        del head["rows"]
        self.rows.update(b"]")
        return _batch_digest(state_digest(canonical_json(head)), self.rows.digest(), self.count)


def code_point_order(column: Any, dialect: str) -> Any:
    """``column`` to ORDER BY in Python's string order (PostgreSQL's collation may differ;
    SQLite compares bytes, which for UTF-8 is the same order)."""
    return column.collate("C") if dialect == "postgresql" else column


# Positions in a row of _Version's columns (in that order): a batch row is its columns
# participant_id, day (as ISO text), then headache to acute_medication.
_COLUMNS = list(_Version.__annotations__)
_PID, _DAY, _CURRENT = (_COLUMNS.index(c) for c in ("participant_id", "day", "current"))
_ROW_2, _ROW_3 = _COLUMNS.index("headache"), _COLUMNS.index("acute_medication") + 1
_BY, _AT = _COLUMNS.index("recorded_by"), _COLUMNS.index("recorded_at")


def diary_digests(session: Session, recorded: Callable[[str], bytes | None] | None = None,
                  *, rows_read: Callable[[int], None] | None = None
                  ) -> Iterator[tuple[str, bytes]]:
    """The digest of the state of every audited diary entity, keyed as its audit events are:
    each day entered or corrected on its own (``PID/DATE``) and each batch (``batch/ID``).
    Streams the versions in one query, participant by participant and day by day, holding
    one day's versions and the running hash of each batch still open, never the rows.
    ``recorded``: entity id -> the digest its event recorded, if any (see
    :func:`recorded_diary_digest` and :func:`batch_rows`), so that
    a batch is yielded, and forgotten, as soon as it holds as many rows as its event says;
    a batch that never gets there (a row removed) is yielded at the end, and a row of a
    batch already yielded (a row added) yields that batch again."""
    fields = [DIARY.c[name] for name in _COLUMNS]
    dialect = session.get_bind().dialect.name
    stmt = select_columns(*fields).order_by(
        code_point_order(DIARY.c.participant_id, dialect),
        DIARY.c.day,  # a date: ISO text's order, as the batch's rows are
        DIARY.c.version,
    ).execution_options(yield_per=5000)

    def rows_of(batch: str) -> int | None:
        digest = None if recorded is None else recorded(f"batch/{batch}")
        return None if digest is None else batch_rows(digest)

    batches: dict[str, tuple[_BatchDigest, int | None]] = {}

    def add_to_batch(batch: str, first: Any) -> tuple[str, bytes] | None:
        """Add a day's first version to its batch; the batch's digest once it is complete."""
        open_batch = batches.get(batch)
        if open_batch is None:
            open_batch = batches[batch] = (_BatchDigest(), rows_of(batch))
        digest, expected = open_batch
        row = (first[_PID], first[_DAY].isoformat(), *first[_ROW_2:_ROW_3])
        digest.add_row(row, first[_BY], first[_AT])
        if digest.count != expected:
            return None
        del batches[batch]
        return f"batch/{batch}", digest.digest()

    def day_state(rows: list[Any]) -> tuple[str, bytes]:
        """A day audited on its own: its current version and every earlier one. No current
        version (or two) is itself a change made outside trialkit."""
        current = [e for e in rows if e.current]
        shown = current[-1] if len(current) == 1 else rows[-1]
        state = diary_snapshot(shown, [e for e in rows if e is not shown])
        if len(current) != 1:
            state["current_versions"] = len(current)
        entity_id = f"{shown.participant_id}/{shown.day.isoformat()}"
        return entity_id, state_digest(canonical_json(state))

    versions = session.connection().execute(stmt)  # rows, not ORM objects: a million or more

    def chunks() -> Iterator[Sequence[Any]]:
        for chunk in versions.partitions():
            if rows_read is not None:
                rows_read(len(chunk))
            yield chunk

    day: list[Any] = []  # the versions of one participant's day, in version order
    for row in chain(chain.from_iterable(chunks()), [None]):  # None: the end
        if row is not None and day and row[_DAY] == day[0][_DAY] and row[_PID] == day[0][_PID]:
            day.append(row)
            continue
        if day:
            first = day[0]
            batch = _batch_of(first)
            done = None if batch is None else add_to_batch(batch, first)
            if done is not None:
                yield done
            if batch is None or len(day) > 1 or not first[_CURRENT]:
                yield day_state(day)  # else audited with its batch only
        day = [row]
    for batch, (digest, _rows) in batches.items():
        yield f"batch/{batch}", digest.digest()
