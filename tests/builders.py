"""Builders for tests that need a trial further along: sealed lists, consented participants."""

from __future__ import annotations

import random
from datetime import date

from sqlalchemy import Engine

from trialkit.domain.eligibility import answered_criteria
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.allocation import SealResult, seal_lists
from trialkit.services.enrolment import ParticipantView, consent, screen
from trialkit.store.db import transaction

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
        return consent(s, coordinator, v.id, on=clock.now().date(), form_version="2.0", clock=clock)


def today(clock: SteppingClock) -> date:
    return clock.now().date()
