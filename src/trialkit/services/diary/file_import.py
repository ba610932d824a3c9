"""Importing a headache diary CSV file, all rows or none: decoding it, reading its header,
checking every line (participant, date, values, days already recorded), and storing the
rows as one audited batch. ``record_days`` stores many days of one participant the same way
(e.g. a paper diary typed in at once).

Every write takes the audit-chain lock before any row lock, as ``randomize`` does, so two
services never wait on each other in opposite orders."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session, col, select

from trialkit.domain.audit_chain import canonical_json
from trialkit.domain.clock import Clock
from trialkit.domain.diary import (
    DiaryDay,
    allowed_range,
    check_day,
    date_problem,
    read_day,
)
from trialkit.domain.errors import InvalidInput, Refused
from trialkit.domain.participant_status import keeps_diary
from trialkit.domain.protocol import Diary, Protocol
from trialkit.domain.roles import Permission
from trialkit.domain.text import plain_text
from trialkit.services.actor import Actor, require
from trialkit.services.administration.trial import ensure_unlocked, site_time, stored_protocol
from trialkit.services.diary import window_summary
from trialkit.services.diary.audit_snapshots import BatchRow, batch_reason, batch_snapshot, utc_text
from trialkit.services.diary.entries import (
    anchors_of,
    check_can_record,
    consented_on,
    diary_rules,
    no_diary,
    withdrawn_on,
)
from trialkit.services.enrolment.participants import facts_of, get_participant
from trialkit.services.integrity import audit
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.store.models import DiaryEntry, Participant

# The columns of an import file (names as in the exported diary.csv; other columns of that
# export are ignored, so an export can be read back).
IMPORT_COLUMNS = (
    "participant_id",
    "date",
    "headache",
    "severity",
    "duration_hours",
    "acute_medication",
)
_CHUNK = 500  # ids per IN (...) list: well inside every backend's parameter limit
# A bad file lists this many problems and the total: a million bad rows are one mistake.
SHOWN_PROBLEMS = 100


class ImportRejected(InvalidInput):
    """A diary file with problems: nothing of it was stored. ``problems`` lists each one
    with its line number."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.total = len(problems)
        self.problems = list(problems[:SHOWN_PROBLEMS])
        count = f"{self.total} problem{'s' if self.total != 1 else ''}"
        more = self.total - len(self.problems)
        tail = [f"  … and {more} more (the first {SHOWN_PROBLEMS} are listed)"] if more else []
        super().__init__(
            f"{source}: {count}, nothing was imported:\n"
            + "\n".join([f"  {p}" for p in self.problems] + tail),
            details={"problems": self.problems, "total": self.total},
        )


@dataclass(frozen=True)
class ImportResult:
    source: str
    sha256: str
    batch: str
    rows: int
    participants: int


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise ImportRejected(
            source,
            [f"line {line}: not UTF-8 text (byte 0x{data[err.start]:02x} at column {column}); "
             "save the file as UTF-8 CSV"],
        ) from None


def _header(fields: list[str]) -> tuple[dict[str, int], list[str]]:
    names = [f.strip().lower() for f in fields]
    problems = [f"line 1: column {n!r} appears twice" for i, n in enumerate(names)
                if n and n in names[:i]]
    missing = [c for c in IMPORT_COLUMNS if c not in names]
    if missing:
        problems.append(
            f"line 1: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(the columns are {', '.join(IMPORT_COLUMNS)})"
        )
    return {n: names.index(n) for n in IMPORT_COLUMNS if n in names}, problems


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every non-blank record."""
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 1
    try:
        for cells in reader:
            if "".join(cells).strip():
                yield line, cells
            line = reader.line_num + 1
    except csv.Error as err:  # a value over the csv module's 128 KiB limit, a stray NUL
        raise _Unreadable(f"line {line}: {err}: is this a diary CSV file?") from None


class _Unreadable(Exception):
    """The file cannot be read as CSV past this point."""


def _load_participants(session: Session, ids: Iterable[str]) -> dict[str, Participant]:
    found: dict[str, Participant] = {}
    ordered = sorted(ids)
    for i in range(0, len(ordered), _CHUNK):
        stmt = (
            select(Participant)
            .where(col(Participant.id).in_(ordered[i : i + _CHUNK]))
            .with_for_update()
        )
        found.update({p.id: p for p in session.exec(stmt)})
    return found


def _recorded_days(session: Session, ids: Iterable[str]) -> set[tuple[str, str]]:
    ordered = sorted(ids)
    days: set[tuple[str, str]] = set()
    for i in range(0, len(ordered), _CHUNK):
        stmt = select(col(DiaryEntry.participant_id), col(DiaryEntry.day)).where(
            col(DiaryEntry.participant_id).in_(ordered[i : i + _CHUNK]),
            col(DiaryEntry.current).is_(True),
        )
        days.update((pid, day.isoformat()) for pid, day in session.exec(stmt))
    return days


@dataclass(frozen=True)
class _Window:
    """The dates one participant may have diary days for, or why none."""

    problem: str | None
    pid: str = ""
    first: date = date.min
    last: date = date.max
    withdrawn: date | None = None
    infused: date | None = None
    today: date = date.max  # at the participant's site


def _window_for(actor: Actor, p: Participant | None, pid: str, protocol: Protocol,
                now: datetime) -> _Window:
    if p is None:
        return _Window(f"unknown participant {pid!r}" if pid else "participant_id is empty")
    if not actor.works_at(p.site_code):
        mine = ", ".join(sorted(actor.sites)) or "no site"
        return _Window(f"{p.id} is a participant of {p.site_code}; {actor.name} records for "
                       f"{mine}")
    consented = consented_on(p)
    if not keeps_diary(facts_of(p, dispensed=False)) or consented is None:
        return _Window(no_diary(p))
    local = protocol.site_time(p.site_code)
    today, infused = local.today(now), anchors_of(p, local).infused_on
    first, last = allowed_range(consented_on=consented, infused_on=infused,
                                today=today, rules=protocol.diary)
    return _Window(None, p.id, first, last, withdrawn_on(p, local), infused, today)


Values = tuple[bool, str, float, bool]


class _FileCheck:
    """Checks the rows of one file, remembering what it has seen: participants, dates and
    values repeat, so each is looked at once. A good row takes the short way through."""

    def __init__(self, session: Session, actor: Actor, rules: Diary, now: datetime,
                 columns: dict[str, int], raw: list[tuple[int, list[str]]]) -> None:
        self.rules = rules
        protocol = stored_protocol(session)
        at = columns.__getitem__
        self.index = (at("participant_id"), at("date"), at("headache"), at("severity"),
                      at("duration_hours"), at("acute_medication"))
        named = {cells[self.index[0]].strip().upper() for _line, cells in raw}
        people = _load_participants(session, named)
        self.windows = {pid: _window_for(actor, people.get(pid), pid, protocol, now)
                        for pid in named}
        self.recorded = _recorded_days(session, people)
        self.dates: dict[str, date | None] = {}
        self.values: dict[tuple[str, str, str, str], Values | list[str]] = {}
        self.seen: dict[tuple[str, str], int] = {}

    def row(self, line: int, cells: list[str]) -> BatchRow | list[str]:
        i_pid, i_date, i_h, i_sev, i_dur, i_acute = self.index
        window = self.windows[cells[i_pid].strip().upper()]
        day_text = cells[i_date].strip()
        on = self.dates.get(day_text, date.min)
        if on is date.min:
            on = self.dates[day_text] = _parse_date(day_text)
        key = (cells[i_h], cells[i_sev], cells[i_dur], cells[i_acute])
        values = self.values.get(key)
        if values is None:
            values = self.values[key] = self._values(*key)
        place = (window.pid, day_text)
        if (
            window.problem is None
            and on is not None
            and window.first <= on <= window.last
            and (window.withdrawn is None or on <= window.withdrawn)
            and isinstance(values, tuple)
            and place not in self.seen
            and place not in self.recorded
        ):
            self.seen[place] = line
            return (window.pid, day_text, *values)
        return self._problems(line, window, on, day_text, values)

    def _problems(self, line: int, window: _Window, on: date | None, key: str,
                  values: Values | list[str]) -> list[str]:
        problems: list[str] = [window.problem] if window.problem else []
        if on is None:
            problems.append(f"date {key!r} is not a date like 2026-03-01")
        elif window.problem is None:
            problems.extend(self._date_problems(line, window, on, key))
        if isinstance(values, list):
            problems.extend(values)
        return problems

    def _date_problems(self, line: int, window: _Window, on: date, key: str) -> list[str]:
        pid, problems = window.pid, []
        if not window.first <= on <= window.last:
            problems.append(date_problem(on, consented_on=window.first, infused_on=window.infused,
                                         today=window.today, rules=self.rules)
                            or f"date {on} is not allowed")
        elif window.withdrawn is not None and on > window.withdrawn:
            problems.append(f"{pid} withdrew on {window.withdrawn}: no diary after that")
        seen = self.seen.setdefault((pid, key), line)
        if seen != line:
            problems.append(f"{pid} {key} is also on line {seen} (a date appears once)")
        if (pid, key) in self.recorded:
            problems.append(f"{pid} already has a diary day for {key}: correct that day "
                            "on its own, with a reason (a file adds new days only)")
        return problems

    def _values(self, headache: str, severity: str, hours: str, acute: str
                ) -> Values | list[str]:
        day, problems = read_day(date.min, headache=headache, severity=severity,
                                 duration_hours=hours, acute_medication=acute, rules=self.rules)
        if day is None:
            return problems
        return day.headache, day.severity, day.duration_hours, day.acute_medication


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _check_file(session: Session, actor: Actor, text: str, rules: Diary, now: datetime
                ) -> tuple[list[BatchRow], list[str]]:
    records = _records(text)
    try:
        first = next(records, None)
        if first is None:
            return [], ["line 1: the file is empty (it needs a header line: "
                        f"{','.join(IMPORT_COLUMNS)})"]
        columns, problems = _header(first[1])
        if problems:
            return [], problems
        raw = list(records)
    except _Unreadable as err:
        return [], [str(err)]
    width = len(first[1])
    if not raw:
        return [], ["the file has a header but no diary rows"]
    check = _FileCheck(session, actor, rules, now, columns,
                       [(line, cells) for line, cells in raw if len(cells) == width])
    rows: list[BatchRow] = []
    for line, cells in raw:
        if len(cells) != width:
            problems.append(f"line {line}: {len(cells)} values for {width} columns")
            continue
        found = check.row(line, cells)
        if isinstance(found, tuple):
            rows.append(found)
        else:
            problems.extend(f"line {line}: {p}" for p in found)
    return rows, problems


@audits_refusals("diary.import", entity="diary", entity_id="source")
def import_diary(
    session: Session, actor: Actor, data: bytes, *, source: str, clock: Clock
) -> ImportResult:
    """Store every row of a diary CSV file, or none: any problem raises ``ImportRejected``
    naming each one with its line number. The file is audited as one batch."""
    require(actor, Permission.RECORD_DIARY)
    ensure_unlocked(session)
    rules = diary_rules(session)
    plain_text(source, "the file name")
    text = _decode(data, source)
    audit.lock_chain(session)
    rows, problems = _check_file(session, actor, text, rules, clock.now())
    if problems:
        raise ImportRejected(source, problems)
    sha256 = hashlib.sha256(data).hexdigest()
    batch = sha256[:16]
    _store_batch(session, actor, rows, batch=batch, source=Path(source).name,
                 note=f"sha256 {sha256}", clock=clock)
    return ImportResult(source, sha256, batch, len(rows), len({r[0] for r in rows}))


def _store_batch(session: Session, actor: Actor, rows: Sequence[BatchRow], *, batch: str,
                 source: str, note: str, clock: Clock) -> None:
    """Insert first versions of many days with one audit event for them all (one Core
    INSERT with many parameter sets: SQLAlchemy batches them, insertmanyvalues)."""
    now = clock.now()
    reason = batch_reason(source, batch)
    by = actor.name
    if rows:
        session.connection().execute(insert(DiaryEntry), [
            {"participant_id": pid, "day": date.fromisoformat(day), "version": 1,
             "headache": headache, "severity": severity, "duration_hours": hours,
             "acute_medication": acute,
             "recorded_by": by, "recorded_at": now, "reason": reason, "current": True}
            for pid, day, headache, severity, hours, acute in rows])
        window_summary.refresh(session, {row[0] for row in rows})
    audit.record(
        session,
        actor,
        action="diary.import",
        entity="diary",
        entity_id=f"batch/{batch}",
        after=batch_snapshot(rows, {by}, {utc_text(now)}),
        reason=f"{reason}; {len(rows)} days; {note}",
        clock=clock,
    )


@audits_refusals("diary.record", entity="participant", entity_id="pid")
def record_days(
    session: Session,
    actor: Actor,
    pid: str,
    days: Sequence[DiaryDay],
    *,
    clock: Clock,
    source: str = "diary entered in one go",
) -> int:
    """Record many new days of one participant at once (e.g. a paper diary typed in), as
    one batch. Every day is checked as ``record_day`` checks it; any day already recorded
    refuses them all."""
    require(actor, Permission.RECORD_DIARY)
    ensure_unlocked(session)
    rules = diary_rules(session)
    audit.lock_chain(session)
    p = get_participant(session, actor, pid, lock=True)
    local = site_time(session, p.site_code)
    today = local.today(clock.now())
    for d in days:
        check_can_record(p, d.day, rules, local, today)
        check_day(d, rules)
    keys = [d.day.isoformat() for d in days]
    if len(set(keys)) != len(keys):
        raise InvalidInput(f"{p.id}: the same date twice")
    already = sorted(day for _pid, day in _recorded_days(session, [p.id]) if day in set(keys))
    if already:
        raise Refused(f"{p.id} already has a diary day for {', '.join(already)}")
    if days:
        rows = [(p.id, k, d.headache, d.severity, float(d.duration_hours), d.acute_medication)
                for k, d in zip(keys, days, strict=True)]
        content = canonical_json([p.id, clock.now().isoformat(), [list(r) for r in rows]])
        batch = hashlib.sha256(content.encode()).hexdigest()[:16]
        _store_batch(session, actor, rows, batch=batch, source=source, note=p.id, clock=clock)
    return len(days)
