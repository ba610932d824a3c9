"""The status report's diary counts (completeness per window, the participants behind with
their diary, CONSORT's completed and analysed, the enrolment curve) are counted by the
database from per-window summaries the services keep current (``services.diary.window_summary``).
Here, on SQLite and PostgreSQL, varied diaries (mixed severities and durations, acute
medication, corrections, days before consent or after withdrawal refused), withdrawals at
every point of the follow-up and the clock moving on, and every count must equal an
independent computation from the protocol's words over the records themselves:

- a window's dates count from its anchor (randomization or infusion, at the site); the diary
  starts at consent: a day before it counts nowhere and is never expected;
- a day is expected once it is over (before the site's today), and not after a withdrawal;
- a window is prorated when at least ``proration_min_days`` of its days are recorded;
- the primary window is completed when it is over and the participant had not withdrawn
  before its last day (the last window, day 84, likewise); CONSORT analyses everyone
  randomized (intention to treat) and counts those whose primary window is not prorated as
  missing it; lost to follow-up: the primary window over, not withdrawn, not prorated;
- overdue: infused, still in the trial, inside a window after the baseline, fewer days
  recorded than days over; at risk when the window can no longer reach the proration
  minimum.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from tests.builders import PROTOCOL
from tests.conftest import BACKENDS
from tests.db.test_export import RANDOMIZED, build_export_world
from tests.db.test_pharmacy import World, window
from trialkit.domain.diary import DiaryDay
from trialkit.domain.errors import InvalidInput, Refused
from trialkit.services.diary.entries import record_day
from trialkit.services.enrolment.participants import withdraw
from trialkit.services.exports.status import TrialStatus, trial_status
from trialkit.store.models import DiaryEntry, Participant

RULES = PROTOCOL.diary
LEVELS = RULES.severity_levels


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    with build_export_world(request.param, tmp_path_factory.mktemp("counts")) as w:
        yield w


# --- the independent computation -----------------------------------------------------------------


def _between(first: date, last: date) -> int:
    return max(0, (last - first).days + 1)


def expected_counts(session: Session, now: Any) -> dict[str, Any]:
    people = session.exec(select(Participant).where(
        col(Participant.randomized_at).is_not(None))).all()
    days: dict[str, set[date]] = {}
    for e in session.exec(select(DiaryEntry).where(col(DiaryEntry.current).is_(True))):
        days.setdefault(e.participant_id, set()).add(e.day)
    windows = {w.code: [0, 0, 0, 0, 0] for w in RULES.windows}
    completed = prorated_primary = lost = completed_last = 0
    overdue = []
    curve: Counter[tuple[date, str]] = Counter()
    for p in people:
        local = PROTOCOL.site_time(p.site_code)
        today = local.today(now)
        yesterday = today - timedelta(days=1)
        assert p.randomized_at is not None and p.consent_date is not None
        randomized = local.date_of(p.randomized_at)
        curve[(randomized, p.site_code)] += 1
        infused = p.infusion_date
        consented = p.consent_date
        left = local.date_of(p.withdrawn_at) if p.withdrawn_at else None
        mine = {d for d in days.get(p.id, set()) if d >= consented}
        for w in RULES.windows:
            anchor = randomized if w.relative_to == "randomization" else infused
            counts = windows[w.code]
            if anchor is None:
                continue
            start, end = anchor + timedelta(days=w.start), anchor + timedelta(days=w.end)
            recorded = sum(start <= d <= end for d in mine)
            until = yesterday if left is None else min(yesterday, left)
            expected = _between(max(start, consented), min(end, until))
            prorated = recorded >= RULES.proration_min_days
            if expected:
                counts[0] += 1
                counts[1] += expected
                counts[2] += min(recorded, expected)
            counts[3] += end < today
            counts[4] += prorated
            if w.primary:
                completed += end < today and (left is None or left >= end)
                prorated_primary += prorated
                lost += end < today and left is None and not prorated
            if w.code == RULES.windows[-1].code:
                completed_last += end < today and (left is None or left >= end)
            behind = _between(max(start, consented), min(end, yesterday)) - recorded
            if (infused is not None and left is None and w.code != RULES.baseline_window.code
                    and start <= yesterday <= end and behind > 0):
                length = (end - start).days + 1
                overdue.append((p.id, p.site_code, w.code, behind, max(days[p.id])
                                if days.get(p.id) else None,
                                length - behind < RULES.proration_min_days))
    return {"windows": {k: tuple(v) for k, v in windows.items()}, "completed": completed,
            "analysed": len(people), "primary missing": len(people) - prorated_primary,
            "lost": lost, "completed last": completed_last, "overdue": sorted(overdue),
            "curve": curve}


def reported(status: TrialStatus) -> dict[str, Any]:
    curve: Counter[tuple[date, str]] = Counter()
    running: dict[str, int] = {}
    for point in status.curve:
        for site, n in point.by_site:
            if n - running.get(site, 0):
                curve[(point.day, site)] += n - running.get(site, 0)
            running[site] = n
    return {
        "windows": {c.window: (c.participants, c.days_expected, c.days_recorded, c.elapsed,
                               c.prorated) for c in status.completeness},
        "completed": status.consort.completed_primary,
        "analysed": status.consort.analysed,
        "primary missing": status.consort.primary_missing,
        "lost": status.consort.lost_to_follow_up,
        "completed last": status.consort.completed_last,
        "overdue": sorted((o.participant_id, o.site, o.window, o.missing_days,
                           o.last_recorded, o.at_risk) for o in status.overdue),
        "curve": curve,
    }


# --- varied histories ----------------------------------------------------------------------------

A_DAY = st.one_of(
    st.tuples(st.just(False), st.just(LEVELS[0]), st.just(0.0), st.booleans()),
    st.tuples(st.just(True), st.sampled_from(LEVELS[1:]),
              st.sampled_from([0.5, 1.0, 3.5, 4.0, 12.0, 24.0]), st.booleans()),
)
STEP = st.one_of(
    st.tuples(st.just("record"), st.sampled_from(RANDOMIZED), st.integers(-45, 95), A_DAY),
    st.tuples(st.just("advance"), st.integers(1, 30)),
    st.tuples(st.just("withdraw"), st.sampled_from(RANDOMIZED)),
)


def _apply(box: Any, step: tuple[Any, ...], day0: date) -> None:
    kind = step[0]
    if kind == "advance":
        box.clock.advance(days=step[1])
        return
    try:
        if kind == "withdraw":
            with box.tx() as s:
                withdraw(s, box.actor("cora"), step[1], reason="moved away", clock=box.clock)
            return
        _kind, pid, offset, (headache, severity, hours, acute) = step
        day = DiaryDay(day0 + timedelta(days=offset), headache, severity, hours, acute)
        try:
            with box.tx() as s:
                record_day(s, box.actor("cora"), pid, day, clock=box.clock)
        except InvalidInput as exc:
            if "give a reason" not in exc.message:
                raise
            with box.tx() as s:  # the day has a version already: a correction
                record_day(s, box.actor("cora"), pid, day, clock=box.clock,
                           reason="participant corrected the paper diary")
    except (Refused, InvalidInput):
        pass  # refused steps change nothing (a future day, after withdrawal, ...)


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, max_size=30))
def test_the_diary_counts_equal_the_protocols_definitions(
        world: World, tmp_path: Path, steps: list[tuple[Any, ...]]) -> None:
    with window(world) as box:
        day0 = box.clock.now().date() - timedelta(days=37)
        for step in steps:
            _apply(box, step, day0)
        with box.tx() as s:
            got = reported(trial_status(s, box.actor("ivan"), clock=box.clock))
        with box.tx() as s:
            want = expected_counts(s, box.clock.now())
        assert got == want
