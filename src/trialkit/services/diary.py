"""The headache diary and the infusion: recording a day (a correction adds a version and
keeps the old one), importing a CSV file (all rows or none), the history of a day, the
infusion (day 0), the baseline gate randomization must pass, and each participant's
derived outcomes. Blinded throughout: nothing here reads or returns an arm.

Every write takes the audit-chain lock before any row lock, as ``randomize`` does, so two
services never wait on each other in opposite orders."""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlmodel import Session, col, select

from trialkit.domain.audit_chain import canonical_json
from trialkit.domain.clock import Clock
from trialkit.domain.diary import (
    Anchors,
    BaselineCheck,
    DiaryDay,
    WindowOutcome,
    allowed_range,
    check_baseline,
    check_day,
    date_problem,
    derive_outcomes,
    is_headache_day,
    read_day,
    study_day,
    window_of,
)
from trialkit.domain.errors import InvalidInput, Refused
from trialkit.domain.protocol import Diary
from trialkit.domain.roles import Permission
from trialkit.services import audit
from trialkit.services.actor import Actor, require
from trialkit.services.enrolment import (
    get_participant,
    participant_snapshot,
    status_of,
)
from trialkit.services.trial import ensure_unlocked, stored_protocol
from trialkit.store.models import DiaryEntry, Participant, Preparation

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


def diary_rules(session: Session) -> Diary:
    return stored_protocol(session).diary


def _anchors(p: Participant) -> Anchors:
    return Anchors(
        randomized_on=p.randomized_at.date() if p.randomized_at else None,
        infused_on=date.fromisoformat(p.infusion_date) if p.infusion_date else None,
    )


def _day_of(e: DiaryEntry) -> DiaryDay:
    return DiaryDay(
        date.fromisoformat(e.day), e.headache, e.severity, e.duration_hours, e.acute_medication
    )


def _utc_text(at: datetime) -> str:
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
        "recorded_at": _utc_text(e.recorded_at),
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
_BATCH = re.compile(r"\[batch ([0-9a-f]{16})\]$")
BatchRow = tuple[str, str, bool, str, float, bool]  # participant, date, the four values


def _batch_reason(source: str, batch: str) -> str:
    shown = " ".join(source.split())
    if len(shown) > 120:
        shown = "…" + shown[-119:]
    return f"{shown} [batch {batch}]"


def _batch_of(e: _Version) -> str | None:
    found = _BATCH.search(e.reason or "") if e.version == 1 else None
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
            at.add(_utc_text(first.recorded_at))
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


# --- recording one day ------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedDay:
    """What was stored (blinded)."""

    participant_id: str
    date: date
    version: int
    corrected: bool
    headache_day: bool
    window: str | None
    study_day: int | None


def _check_can_record(p: Participant, on: date, rules: Diary, today: date) -> None:
    if not p.eligible:
        raise Refused(f"{p.id} is not eligible: a screen failure keeps no diary")
    if p.withdrawn_at is not None and on > p.withdrawn_at.date():
        raise Refused(f"{p.id} withdrew on {p.withdrawn_at.date()}: no diary after that")
    anchors = _anchors(p)
    problem = date_problem(
        on,
        screened_on=p.screened_at.date(),
        infused_on=anchors.infused_on,
        today=today,
        rules=rules,
    )
    if problem:
        raise InvalidInput(f"{p.id}: {problem}")


def _versions(session: Session, pid: str, day: str) -> list[DiaryEntry]:
    stmt = (
        select(DiaryEntry)
        .where(DiaryEntry.participant_id == pid, DiaryEntry.day == day)
        .order_by(col(DiaryEntry.version))
    )
    return list(session.exec(stmt))


def record_day(
    session: Session,
    actor: Actor,
    pid: str,
    day: DiaryDay,
    *,
    clock: Clock,
    reason: str | None = None,
) -> RecordedDay:
    """Record a diary day. If the date already has one, this is a correction: it needs a
    reason, adds a version and keeps the old one."""
    require(actor, Permission.RECORD_DIARY)
    ensure_unlocked(session)
    rules = diary_rules(session)
    audit.lock_chain(session)
    p = get_participant(session, actor, pid, lock=True)
    _check_can_record(p, day.day, rules, clock.now().date())
    check_day(day, rules)
    why = " ".join((reason or "").split()) or None
    if why and _BATCH.search(why):
        raise InvalidInput("a reason may not end with '[batch …]': that marks imported days")
    key = day.day.isoformat()
    earlier = _versions(session, p.id, key)
    current = next((e for e in earlier if e.current), None)
    if current is not None:
        if _day_of(current) == day:
            raise Refused(f"{p.id} {key}: no change (version {current.version} says the same)")
        if why is None:
            raise InvalidInput(
                f"{p.id} already has a diary day for {key} (version {current.version}): "
                "give a reason (--reason) to correct it"
            )
    before = diary_snapshot(current, [e for e in earlier if e is not current]) if current else None
    entry = DiaryEntry(
        participant_id=p.id,
        day=key,
        version=(earlier[-1].version + 1) if earlier else 1,
        headache=day.headache,
        severity=day.severity,
        duration_hours=float(day.duration_hours),
        acute_medication=day.acute_medication,
        recorded_by=actor.name,
        recorded_at=clock.now(),
        reason=why,
        current=True,
    )
    if current is not None:
        current.current = False
        session.add(current)
    session.add(entry)
    session.flush()
    audit.record(
        session,
        actor,
        action="diary.correct" if current else "diary.record",
        entity="diary",
        entity_id=f"{p.id}/{key}",
        before=before,
        after=diary_snapshot(entry, earlier),
        reason=why,
        clock=clock,
    )
    anchors = _anchors(p)
    w = window_of(day.day, anchors, rules)
    return RecordedDay(
        participant_id=p.id,
        date=day.day,
        version=entry.version,
        corrected=current is not None,
        headache_day=is_headache_day(day, rules),
        window=w.code if w else None,
        study_day=study_day(day.day, anchors.infused_on),
    )


# --- importing a file -------------------------------------------------------------------------


class ImportRejected(InvalidInput):
    """A diary file with problems: nothing of it was stored. ``problems`` lists each one
    with its line number."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(
            f"{source}: {count}, nothing was imported:\n" + "\n".join(f"  {p}" for p in problems)
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
    for cells in reader:
        if "".join(cells).strip():
            yield line, cells
        line = reader.line_num + 1


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
        stmt = select(DiaryEntry.participant_id, DiaryEntry.day).where(
            col(DiaryEntry.participant_id).in_(ordered[i : i + _CHUNK]),
            col(DiaryEntry.current).is_(True),
        )
        days.update((pid, day) for pid, day in session.exec(stmt))
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


def _window_for(actor: Actor, p: Participant | None, pid: str, rules: Diary,
                today: date) -> _Window:
    if p is None:
        return _Window(f"unknown participant {pid!r}" if pid else "participant_id is empty")
    if (actor.sites or actor.role.value == "coordinator") and p.site_code not in actor.sites:
        mine = ", ".join(sorted(actor.sites)) or "no site"
        return _Window(f"{p.id} is a participant of {p.site_code}; {actor.name} records for "
                       f"{mine}")
    if not p.eligible:
        return _Window(f"{p.id} is not eligible: a screen failure keeps no diary")
    infused = _anchors(p).infused_on
    first, last = allowed_range(screened_on=p.screened_at.date(), infused_on=infused,
                                today=today, rules=rules)
    withdrawn = p.withdrawn_at.date() if p.withdrawn_at else None
    return _Window(None, p.id, first, last, withdrawn, infused)


Values = tuple[bool, str, float, bool]


class _FileCheck:
    """Checks the rows of one file, remembering what it has seen: participants, dates and
    values repeat, so each is looked at once. A good row takes the short way through."""

    def __init__(self, session: Session, actor: Actor, rules: Diary, today: date,
                 columns: dict[str, int], raw: list[tuple[int, list[str]]]) -> None:
        self.rules, self.today = rules, today
        at = columns.__getitem__
        self.index = (at("participant_id"), at("date"), at("headache"), at("severity"),
                      at("duration_hours"), at("acute_medication"))
        named = {cells[self.index[0]].strip().upper() for _line, cells in raw}
        people = _load_participants(session, named)
        self.windows = {pid: _window_for(actor, people.get(pid), pid, rules, today)
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
            problems.append(date_problem(on, screened_on=window.first, infused_on=window.infused,
                                         today=self.today, rules=self.rules)
                            or f"date {on} is not allowed")
        elif window.withdrawn is not None and on > window.withdrawn:
            problems.append(f"{pid} withdrew on {window.withdrawn}: no diary after that")
        seen = self.seen.setdefault((pid, key), line)
        if seen != line:
            problems.append(f"{pid} {key} is also on line {seen} (a date appears once)")
        if (pid, key) in self.recorded:
            problems.append(f"{pid} already has a diary day for {key}: correct it with "
                            f"`trialkit diary record {pid} --date {key} ... --reason TEXT`")
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


def _check_file(session: Session, actor: Actor, text: str, rules: Diary, today: date
                ) -> tuple[list[BatchRow], list[str]]:
    records = _records(text)
    first = next(records, None)
    if first is None:
        return [], ["line 1: the file is empty (it needs a header line: "
                    f"{','.join(IMPORT_COLUMNS)})"]
    columns, problems = _header(first[1])
    if problems:
        return [], problems
    width = len(first[1])
    raw = list(records)
    if not raw:
        return [], ["the file has a header but no diary rows"]
    check = _FileCheck(session, actor, rules, today, columns,
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


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a file is read and stored: its passes over
    the hundreds of thousands of fresh tuples (which hold no cycles) cost more than the
    import itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def import_diary(
    session: Session, actor: Actor, data: bytes, *, source: str, clock: Clock
) -> ImportResult:
    """Store every row of a diary CSV file, or none: any problem raises ``ImportRejected``
    naming each one with its line number. The file is audited as one batch."""
    require(actor, Permission.RECORD_DIARY)
    ensure_unlocked(session)
    rules = diary_rules(session)
    text = _decode(data, source)
    audit.lock_chain(session)
    with _gc_paused():
        rows, problems = _check_file(session, actor, text, rules, clock.now().date())
        if problems:
            raise ImportRejected(source, problems)
        sha256 = hashlib.sha256(data).hexdigest()
        batch = sha256[:16]
        _store_batch(session, actor, rows, batch=batch, source=Path(source).name,
                     note=f"sha256 {sha256}", clock=clock)
    return ImportResult(source, sha256, batch, len(rows), len({r[0] for r in rows}))


def _store_batch(session: Session, actor: Actor, rows: Sequence[BatchRow], *, batch: str,
                 source: str, note: str, clock: Clock) -> None:
    """Insert first versions of many days with one audit event for them all. The rows go
    to the driver as they are (one INSERT, executemany): SQLAlchemy's per-row parameter
    handling would cost more than the database does."""
    now = clock.now()
    reason = _batch_reason(source, batch)
    conn = session.connection()
    table = DiaryEntry.__table__  # type: ignore[attr-defined]
    to_db = table.c.recorded_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    at = to_db(now) if to_db else now
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    names = ("participant_id", "day", "version", "headache", "severity", "duration_hours",
             "acute_medication", "recorded_by", "recorded_at", "reason", "current")
    sql = (f"INSERT INTO {table.name} ({', '.join(names)}) "
           f"VALUES ({', '.join([mark] * len(names))})")
    by = actor.name
    conn.exec_driver_sql(sql, [(pid, day, 1, headache, severity, hours, acute, by, at,
                                reason, True)
                               for pid, day, headache, severity, hours, acute in rows])
    audit.record(
        session,
        actor,
        action="diary.import",
        entity="diary",
        entity_id=f"batch/{batch}",
        after=batch_snapshot(rows, {by}, {_utc_text(now)}),
        reason=f"{reason}; {len(rows)} days; {note}",
        clock=clock,
    )


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
    today = clock.now().date()
    for d in days:
        _check_can_record(p, d.day, rules, today)
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


# --- reading the diary ------------------------------------------------------------------------


@dataclass(frozen=True)
class DiaryVersion:
    """One version of one diary day, as the history shows it (blinded)."""

    participant_id: str
    date: date
    version: int
    current: bool
    headache: bool
    severity: str
    duration_hours: float
    acute_medication: bool
    headache_day: bool
    window: str | None
    study_day: int | None
    recorded_by: str
    recorded_at: datetime
    reason: str | None


def history(
    session: Session, actor: Actor, pid: str, *, on: date | None = None
) -> list[DiaryVersion]:
    """Every version of the participant's diary days (or of one date), oldest first."""
    require(actor, Permission.READ_STATUS)
    p = get_participant(session, actor, pid)
    rules = diary_rules(session)
    anchors = _anchors(p)
    stmt = select(DiaryEntry).where(DiaryEntry.participant_id == p.id)
    if on is not None:
        stmt = stmt.where(DiaryEntry.day == on.isoformat())
    stmt = stmt.order_by(col(DiaryEntry.day), col(DiaryEntry.version))
    out: list[DiaryVersion] = []
    for e in session.exec(stmt):
        d = _day_of(e)
        w = window_of(d.day, anchors, rules)
        out.append(
            DiaryVersion(
                participant_id=p.id,
                date=d.day,
                version=e.version,
                current=e.current,
                headache=e.headache,
                severity=e.severity,
                duration_hours=e.duration_hours,
                acute_medication=e.acute_medication,
                headache_day=is_headache_day(d, rules),
                window=w.code if w else None,
                study_day=study_day(d.day, anchors.infused_on),
                recorded_by=e.recorded_by,
                recorded_at=e.recorded_at,
                reason=e.reason,
            )
        )
    return out


def current_days(session: Session, pid: str) -> list[DiaryDay]:
    """The current version of every recorded day of a participant, by date."""
    stmt = (
        select(DiaryEntry)
        .where(DiaryEntry.participant_id == pid, col(DiaryEntry.current).is_(True))
        .order_by(col(DiaryEntry.day))
    )
    return [_day_of(e) for e in session.exec(stmt)]


# --- the baseline gate ------------------------------------------------------------------------


def baseline_check(session: Session, p: Participant, randomize_on: date) -> BaselineCheck:
    """The baseline window before ``randomize_on`` as the gate sees it."""
    return check_baseline(current_days(session, p.id), randomize_on, diary_rules(session))


def require_baseline(session: Session, p: Participant, randomize_on: date) -> None:
    """Refuse randomization unless the baseline diary meets the protocol's minimums."""
    check = baseline_check(session, p, randomize_on)
    if not check.passed:
        raise Refused(
            f"{p.id} cannot be randomized yet: the baseline diary ({check.start} to "
            f"{check.end}) has {' and '.join(check.shortfalls)}"
        )


# --- the infusion -----------------------------------------------------------------------------


def infuse(session: Session, actor: Actor, pid: str, *, on: date, clock: Clock) -> date:
    """Record the infusion (day 0) of a randomized participant whose infusion the pharmacy
    has prepared."""
    require(actor, Permission.ENROL)
    ensure_unlocked(session)
    audit.lock_chain(session)
    p = get_participant(session, actor, pid, lock=True)
    today = clock.now().date()
    if p.withdrawn_at is not None:
        raise Refused(f"{p.id} has withdrawn")
    if p.randomized_at is None:
        raise Refused(f"{p.id} has not been randomized yet")
    if p.infusion_date is not None:
        raise Refused(f"{p.id} was already infused on {p.infusion_date}")
    if on > today:
        raise InvalidInput(f"infusion date {on} is in the future (today is {today})")
    if on < p.randomized_at.date():
        raise InvalidInput(
            f"infusion date {on} is before randomization ({p.randomized_at.date()})"
        )
    prep = session.get(Preparation, p.id)
    if prep is None:
        raise Refused(f"{p.id} has no dispensed infusion yet: the pharmacy records it first")
    if on < prep.prepared_at.date():
        raise InvalidInput(f"infusion date {on} is before the pharmacy prepared it "
                           f"({prep.prepared_at.date()})")
    if on > prep.expires_at.date():
        raise Refused(f"{p.id}'s prepared infusion expired at {prep.expires_at:%Y-%m-%d %H:%M} "
                      "UTC: ask the pharmacy for a new one")
    before = participant_snapshot(session, p)
    p.infusion_date = on.isoformat()
    session.add(p)
    session.flush()
    audit.record(
        session,
        actor,
        action="participant.infuse",
        entity="participant",
        entity_id=p.id,
        before=before,
        after=participant_snapshot(session, p),
        clock=clock,
    )
    return on


# --- derived outcomes -------------------------------------------------------------------------


@dataclass(frozen=True)
class ParticipantOutcomes:
    """A participant's outcomes per window (blinded). Before randomization the baseline
    window is the one randomizing today would use (``provisional``)."""

    participant_id: str
    site: str
    status: str
    randomization_number: str | None
    randomized_on: date | None
    infused_on: date | None
    provisional: bool
    windows: list[WindowOutcome]


def outcomes(session: Session, actor: Actor, pid: str, *, clock: Clock) -> ParticipantOutcomes:
    """Counts, proration and change from baseline in every window of the protocol."""
    require(actor, Permission.READ_STATUS)
    p = get_participant(session, actor, pid)
    if not p.eligible:
        raise Refused(f"{p.id} is a screen failure: no outcomes")
    today = clock.now().date()
    anchors = _anchors(p)
    provisional = anchors.randomized_on is None
    if provisional:
        anchors = Anchors(randomized_on=today, infused_on=None)
    windows = derive_outcomes(
        current_days(session, p.id),
        anchors,
        diary_rules(session),
        today=today,
        last_day=p.withdrawn_at.date() if p.withdrawn_at else None,
    )
    return ParticipantOutcomes(
        participant_id=p.id,
        site=p.site_code,
        status=status_of(p),
        randomization_number=p.randomization_number,
        randomized_on=None if provisional else anchors.randomized_on,
        infused_on=anchors.infused_on,
        provisional=provisional,
        windows=windows,
    )

