"""Each randomized participant's diary summarised per window (``DiaryWindowSummary``), kept
current in the same transaction as every change it depends on, so the status report, the
dashboard and CONSORT count in the database at any trial size instead of reading every
diary row into Python.

What is stored is computed by the one rule, ``domain.diary.derive_outcomes``: per window,
its dates, the days recorded from consent on and whether its prorated headache days are
missing. None of that depends on today. What does (the days expected so far, a window
being over, a participant being overdue) is counted by :func:`window_counts`,
:func:`closing_counts` and :func:`overdue_rows` as of the caller's today, per site, with
the same definition as ``derive_outcomes`` (days of the window from consent to yesterday,
or to the withdrawal date if earlier).

Who keeps it current: :func:`refresh` is called by every service that changes what the
summary depends on (recording or correcting a diary day, a diary import, randomization,
infusion, withdrawal); the demo generator and the migration that added the table call
:func:`rebuild`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Integer, and_, case, delete, false, func, insert, literal, true
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from trialkit.domain.diary import Anchors, DiaryDay, derive_outcomes
from trialkit.domain.protocol import Protocol
from trialkit.services.administration.trial import stored_protocol
from trialkit.store.models import DiaryEntry, DiaryWindowSummary, Participant

BATCH = 500
S = DiaryWindowSummary

_PEOPLE = (col(Participant.id), col(Participant.site_code), col(Participant.consent_date),
           col(Participant.randomized_at), col(Participant.infusion_date),
           col(Participant.withdrawn_at))
_DAYS = (col(DiaryEntry.participant_id), col(DiaryEntry.day), col(DiaryEntry.headache),
         col(DiaryEntry.severity), col(DiaryEntry.duration_hours),
         col(DiaryEntry.acute_medication))


def _date(value: date | str | None) -> date | None:
    """A stored date. Migration 0010 builds the summaries on the schema of its day, when
    PostgreSQL held dates as ISO text (schema 0013 made them dates)."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def _ord(d: date | None) -> int | None:
    return None if d is None else d.toordinal()


def _rows_of(people: Sequence[Any], days: dict[str, list[DiaryDay]],
             protocol: Protocol) -> list[dict[str, Any]]:
    rules = protocol.diary
    rows: list[dict[str, Any]] = []
    for pid, site, consent, randomized_at, infusion, withdrawn_at in people:
        local = protocol.site_time(site)
        anchors = Anchors(local.date_of(randomized_at), _date(infusion))
        consented = _date(consent) or date.max
        left = local.date_of(withdrawn_at) if withdrawn_at else None
        mine = days.get(pid, [])
        # today only sets the days expected, which are counted at read time: any date will do
        windows = derive_outcomes(mine, anchors, rules, today=date.max, first_day=consented,
                                  last_day=left)
        last = max((d.day for d in mine), default=None)
        for w in windows:
            rows.append({
                "participant_id": pid, "window": w.window, "site_code": site,
                "is_primary": w.primary, "is_baseline": w.window == rules.baseline_window.code,
                "randomized_day": _ord(anchors.randomized_on), "start_day": _ord(w.start),
                "end_day": _ord(w.end), "since_day": consented.toordinal(),
                "withdrawn_day": _ord(left), "infused": infusion is not None,
                # the first and last day that can be expected, as of no particular today
                "first_day": None if w.start is None else max(w.start, consented).toordinal(),
                "last_day": None if w.end is None else min(w.end, left or w.end).toordinal(),
                "days_recorded": w.days_recorded, "prorated": w.headache_days_28 is not None,
                "last_recorded_day": _ord(last),
            })
    return rows


def refresh(session: Session, ids: Iterable[str]) -> None:
    """Recompute these participants' summaries (those not randomized have none)."""
    wanted = sorted(set(ids))
    if not wanted:
        return
    protocol = stored_protocol(session)
    conn = session.connection()
    for i in range(0, len(wanted), BATCH):
        chunk = wanted[i:i + BATCH]
        conn.execute(delete(S).where(col(S.participant_id).in_(chunk)))
        people = conn.execute(sa_select(*_PEOPLE).where(
            col(Participant.id).in_(chunk),
            col(Participant.randomized_at).is_not(None))).all()
        if not people:
            continue
        rows = conn.execute(sa_select(*_DAYS).where(
            col(DiaryEntry.current).is_(true()),
            col(DiaryEntry.participant_id).in_([p[0] for p in people]))).all()
        days: dict[str, list[DiaryDay]] = {}
        for pid, day, headache, severity, hours, acute in rows:
            days.setdefault(pid, []).append(DiaryDay(
                _date(day) or date.min, bool(headache), severity, hours, bool(acute)))
        values = _rows_of(people, days, protocol)
        if values:
            conn.execute(insert(S), values)


def _randomized_ids(session: Session) -> Iterator[list[str]]:
    last = ""
    while True:
        ids = list(session.connection().execute(
            sa_select(col(Participant.id))
            .where(col(Participant.randomized_at).is_not(None), col(Participant.id) > last)
            .order_by(col(Participant.id)).limit(BATCH)).scalars())
        if ids:
            yield ids
        if len(ids) < BATCH:
            return
        last = ids[-1]


def rebuild(session: Session) -> None:
    """Recompute every summary from the records (the migration that added the table, the
    demo generator)."""
    session.connection().execute(delete(S))
    for ids in _randomized_ids(session):
        refresh(session, ids)


# --- counting as of today, in the database ----------------------------------------------------


def _least(a: Any, b: Any) -> ColumnElement[Any]:
    return case((a < b, a), else_=b)


def _greatest(a: Any, b: Any) -> ColumnElement[Any]:
    return case((a > b, a), else_=b)


def _expected(yesterday: int) -> ColumnElement[Any]:
    """Days of the window expected so far: from consent (or the window's start, if later)
    to yesterday (or the withdrawal date, or the window's end, if earlier) —
    ``derive_outcomes``' definition."""
    y = literal(yesterday, Integer)
    last = _least(col(S.last_day), y)
    return case((col(S.first_day).is_(None), 0), (last < col(S.first_day), 0),
                else_=last - col(S.first_day) + 1)


def _by_yesterday(today: dict[str, date]) -> dict[int, list[str]]:
    """The sites grouped by their "yesterday" (a day number): one query per group, with the
    day bound as a value (most trials have one group; a trial across the date line, two)."""
    groups: dict[int, list[str]] = {}
    for code, d in sorted(today.items()):
        groups.setdefault((d - timedelta(days=1)).toordinal(), []).append(code)
    return groups


def _of_sites(sites: list[str], today: dict[str, date]) -> ColumnElement[bool]:
    """The rows of these sites (every row, when they are all the trial's sites)."""
    return true() if set(sites) == set(today) else col(S.site_code).in_(sites)


@dataclass(frozen=True)
class WindowCounts:
    participants: int  # with at least one day of the window over
    days_expected: int
    days_recorded: int  # per participant at most the days expected
    elapsed: int  # whose whole window is over
    prorated: int


def window_counts(session: Session, today: dict[str, date]) -> dict[str, WindowCounts]:
    """Per window, over the randomized participants, as of each site's ``today``."""
    totals: dict[str, list[int]] = {}
    for y, sites in _by_yesterday(today).items():
        expected = _expected(y)
        over = and_(col(S.end_day).is_not(None), col(S.end_day) <= y)
        stmt = sa_select(
            col(S.window),
            func.sum(case((expected > 0, 1), else_=0)),
            func.sum(expected),
            func.sum(_least(col(S.days_recorded), expected)),
            func.sum(case((over, 1), else_=0)),
            func.sum(case((col(S.prorated), 1), else_=0)),
        ).where(_of_sites(sites, today)).group_by(col(S.window))
        for w, *values in session.connection().execute(stmt):
            counts = totals.setdefault(str(w), [0] * 5)
            for i, v in enumerate(values):
                counts[i] += int(v or 0)
    return {w: WindowCounts(*counts) for w, counts in totals.items()}


@dataclass(frozen=True)
class Closing:
    """Of one window, among the randomized: ``completed``, its last date is over and the
    participant had not withdrawn before it; ``prorated``, its outcome is not missing;
    ``lost``, over, not withdrawn, and its outcome missing (lost to follow-up)."""

    completed: int
    prorated: int
    lost: int


def closing_counts(session: Session, today: dict[str, date], windows: Sequence[str]
                   ) -> dict[str, Closing]:
    """How each of these windows closed for the randomized participants (``Closing``), in
    one grouped query (per group of sites sharing a day)."""
    totals = {w: [0, 0, 0] for w in windows}
    for y, sites in _by_yesterday(today).items():
        over = and_(col(S.end_day).is_not(None), col(S.end_day) <= y)
        stmt = sa_select(
            col(S.window),
            func.sum(case((and_(over, col(S.last_day) == col(S.end_day)), 1), else_=0)),
            func.sum(case((col(S.prorated), 1), else_=0)),
            func.sum(case((and_(over, col(S.withdrawn_day).is_(None),
                                col(S.prorated).is_(false())), 1), else_=0)),
        ).where(col(S.window).in_(list(windows)), _of_sites(sites, today)
                ).group_by(col(S.window))
        for w, *values in session.connection().execute(stmt):
            counts = totals[str(w)]
            for i, v in enumerate(values):
                counts[i] += int(v or 0)
    return {w: Closing(*counts) for w, counts in totals.items()}


def randomized_per_day(session: Session) -> list[tuple[date, str, int]]:
    """How many were randomized on each day (at their site), per site."""
    stmt = (sa_select(col(S.randomized_day), col(S.site_code), func.count())
            .where(col(S.is_primary).is_(true()))
            .group_by(col(S.randomized_day), col(S.site_code)))
    return [(date.fromordinal(d), str(site), int(n))
            for d, site, n in session.connection().execute(stmt)]


@dataclass(frozen=True)
class Behind:
    participant_id: str
    site_code: str
    window: str
    missing_days: int
    last_recorded: date | None
    length: int  # days in the window


def overdue_rows(session: Session, today: dict[str, date],
                 sites: frozenset[str] | set[str] | None) -> list[Behind]:
    """Infused participants still in the trial, inside a window after the baseline, with
    fewer days recorded than days over so far."""
    behind: list[Behind] = []
    for y, codes in _by_yesterday(today).items():
        if sites is not None:
            codes = [c for c in codes if c in sites]
        missing = _expected(y) - col(S.days_recorded)  # still in the trial: to the end
        stmt = sa_select(col(S.participant_id), col(S.site_code), col(S.window), missing,
                         col(S.last_recorded_day), col(S.end_day) - col(S.start_day) + 1).where(
            col(S.site_code).in_(codes), col(S.infused).is_(true()),
            col(S.withdrawn_day).is_(None), col(S.is_baseline).is_(False),
            col(S.start_day) <= y, col(S.end_day) >= y, missing > 0)
        behind += [Behind(str(pid), str(site), str(w), int(m),
                          None if last is None else date.fromordinal(last), int(n))
                   for pid, site, w, m, last, n in session.connection().execute(stmt)]
    return behind
