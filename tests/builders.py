"""Builders for tests that need a trial further along: sealed lists, consented participants."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from trialkit.domain.diary import DiaryDay
from trialkit.domain.eligibility import answered_criteria
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.diary.file_import import record_days
from trialkit.services.enrolment.allocation import SealResult, seal_lists
from trialkit.services.enrolment.participants import ParticipantView, consent, screen
from trialkit.store.db import transaction
from trialkit.store.models import Participant

from .conftest import KETHEAD, PASSWORD, SteppingClock, add_user, sign_in

PROTOCOL = load_protocol(KETHEAD).protocol


class SeededRandom:
    """A deterministic RandomSource for reproducible lists in tests."""

    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)

    def randbelow(self, n: int) -> int:
        return self._r.randrange(n)


def eligible_answers() -> dict[str, str]:
    """Answers that meet every criterion the coordinator answers."""
    return {c.id: "yes" if c.kind == "inclusion" else "no" for c in answered_criteria(PROTOCOL)}


def staff(engine: Engine, admin: Actor, clock: SteppingClock) -> dict[str, Actor]:
    """Add a pharmacist (phil), coordinators for both sites (cora: TWH+SHS, tess: TWH) and
    sign them in."""
    add_user(engine, admin, clock, "phil", Role.PHARMACIST)
    add_user(engine, admin, clock, "cora", Role.COORDINATOR, sites=["TWH", "SHS"])
    add_user(engine, admin, clock, "tess", Role.COORDINATOR, sites=["TWH"])
    return {n: sign_in(engine, n, clock, PASSWORD) for n in ("phil", "cora", "tess")}


def seal(
    engine: Engine, admin: Actor, clock: SteppingClock, per_stratum: int, seed: int | None = 1
) -> SealResult:
    with transaction(engine) as s:
        return seal_lists(
            s,
            admin,
            per_stratum=per_stratum,
            block_sizes=None,
            clock=clock,
            rng=SeededRandom(seed) if seed is not None else None,
        )


def consented(
    engine: Engine,
    coordinator: Actor,
    clock: SteppingClock,
    *,
    site: str = "TWH",
    headache_type: str = "CM",
    age: int = 40,
    weight_kg: float = 70.0,
) -> ParticipantView:
    """Screen an eligible participant and record their consent today."""
    with transaction(engine) as s:
        v = screen(
            s,
            coordinator,
            site=site,
            age=age,
            sex="F",
            weight_kg=weight_kg,
            factors={"headache_type": headache_type},
            answers=eligible_answers(),
            clock=clock,
        )
    with transaction(engine) as s:
        return consent(s, coordinator, v.id, on=PROTOCOL.site_time(site).today(clock.now()),
                       form_version="2.0", clock=clock)


def today(clock: SteppingClock) -> date:
    return clock.now().date()


# --- the baseline diary randomization needs ---------------------------------------------------


def baseline_days(first: date, *, days: int | None = None,
                  headache_days: int | None = None) -> list[DiaryDay]:
    """``days`` consecutive diary days from ``first`` (default: the whole baseline window),
    the first ``headache_days`` of them headache days (default: a few more than the
    protocol's minimum), the rest without a headache day.

    Varied as real diaries are, so that no outcome can pass by confusing headache days
    with moderate/severe days: headache days cycle through every severity, long ones and
    short ones treated with acute medication; among the other days every third has a short
    moderate headache, untreated (a headache, but no headache day)."""
    rules = PROTOCOL.diary
    window = rules.baseline_window
    count = window.end - window.start + 1 if days is None else days
    aching = rules.baseline_min_headache_days + 5 if headache_days is None else headache_days
    none, *levels = rules.severity_levels
    long_ = float(rules.headache_day_min_hours) + 2
    short = float(rules.headache_day_min_hours) / 2
    out: list[DiaryDay] = []
    for i in range(count):
        on = first + timedelta(days=i)
        if i < aching:
            treated_short = i % 4 == 3 and rules.headache_day_if_acute_medication
            out.append(DiaryDay(on, True, levels[i % len(levels)],
                                short if treated_short else long_, treated_short))
        elif (i - aching) % 3 == 1:
            out.append(DiaryDay(on, True, rules.moderate_severe_levels[0], short, False))
        else:
            out.append(DiaryDay(on, False, none, 0.0, False))
    return out


def record_baseline(engine: Engine, coordinator: Actor, clock: SteppingClock, *pids: str,
                    days: int | None = None, headache_days: int | None = None) -> None:
    """Record an eligible baseline diary for each participant (see ``baseline_in``)."""
    with transaction(engine) as s:
        baseline_in(s, coordinator, clock, *pids, days=days, headache_days=headache_days)


def baseline_in(session: Session, coordinator: Actor, clock: SteppingClock, *pids: str,
                days: int | None = None, headache_days: int | None = None) -> None:
    """Record an eligible baseline diary for each participant, in ``session``: every day of
    the baseline window before today. The diary starts at consent, so the clock first
    moves on (never back) until the window starts on or after the latest of their
    consents."""
    keys = [pid.strip().upper() for pid in pids]
    consented = [p.consent_date for p in
                 session.exec(select(Participant).where(col(Participant.id).in_(keys)))
                 if p.consent_date]
    # the site's date (Toronto is behind UTC: after midnight UTC it is still yesterday there)
    start = PROTOCOL.site_time("TWH").today(clock.now()) + timedelta(
        days=PROTOCOL.diary.baseline_window.start)
    if consented and start < max(consented):
        clock.advance(days=(max(consented) - start).days)
        start = max(consented)
    for pid in keys:
        record_days(session, coordinator, pid,
                    baseline_days(start, days=days, headache_days=headache_days), clock=clock)


def ready_to_randomize(engine: Engine, coordinator: Actor, clock: SteppingClock,
                       **screening: Any) -> ParticipantView:
    """Screen and consent an eligible participant, then record their baseline diary (the
    clock moves on by the baseline window)."""
    v = consented(engine, coordinator, clock, **screening)
    record_baseline(engine, coordinator, clock, v.id)
    return v
