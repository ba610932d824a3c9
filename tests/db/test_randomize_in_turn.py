"""Randomizing in turn (what the CLI and the TUI call): one short write transaction on the
bare driver when the participant is simply ready, else the full ``randomize``. It must
answer exactly as the full path does, number, bind and audit alike, and take nothing
whenever it leaves the answer to the full path. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, func, select

from tests.builders import (
    baseline_days,
    consented,
    ready_to_randomize,
    record_baseline,
    seal,
    staff,
)
from tests.conftest import SteppingClock
from trialkit.domain.errors import TrialkitError
from trialkit.services import randomization, trial
from trialkit.services.actor import Actor
from trialkit.services.diary import record_day
from trialkit.services.enrolment import participant_snapshot, randomize, withdraw
from trialkit.services.integrity import verify
from trialkit.services.randomization import claim, randomize_in_turn
from trialkit.store.db import read_only, transaction
from trialkit.store.models import AuditEvent, Envelope, Participant


@pytest.fixture
def team(engine: Engine, admin: Actor, clock: SteppingClock) -> dict[str, Actor]:
    people = staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=3)
    return people


def _written(engine: Engine) -> tuple[int, int]:
    """(audit events, bound envelopes): what a claim that takes nothing leaves alone."""
    with read_only(engine) as s:
        events = s.exec(select(func.count()).select_from(AuditEvent)).one()
        bound = s.exec(
            select(func.count()).select_from(Envelope).where(col(Envelope.participant_id).is_not(None))
        ).one()
    return events, bound


def test_in_turn_numbers_binds_and_audits_as_the_full_path_does(
    engine: Engine, team: dict[str, Actor], clock: SteppingClock
) -> None:
    cora = team["cora"]
    first, second = (consented(engine, cora, clock).id for _ in range(2))
    record_baseline(engine, cora, clock, first, second)
    with transaction(engine) as s:
        full = randomize(s, cora, first, clock=clock)
    fast = claim(engine, cora, second, clock=clock)
    assert fast is not None  # ready: the short way took it

    assert (full.randomization_number, fast.randomization_number) == ("R0001", "R0002")
    assert fast.participant_id == second and not fast.already
    with read_only(engine) as s:
        held = dict(s.exec(select(Envelope.participant_id, Envelope.seq).where(
            col(Envelope.participant_id).is_not(None))).all())
        p = s.get(Participant, second)
        assert p is not None
        assert (p.randomization_number, p.label_code) == ("R0002", fast.label_code)
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "participant.randomize")
                        .order_by(col(AuditEvent.seq))).all()
        # the event says what the full path's snapshot of the participant says, key for key
        assert json.loads(events[1].after_json or "") == participant_snapshot(s, p)
        assert json.loads(events[1].before_json or "")["randomization_number"] is None
        assert sorted(json.loads(events[0].after_json or "")) == sorted(
            json.loads(events[1].after_json or ""))
        assert [e.entity_id for e in events] == [first, second]
        report = verify(s)
    assert held == {first: 1, second: 2}
    assert report.ok, report.problem


def _not_consented(engine: Engine, cora: Actor, clock: SteppingClock) -> str:
    from tests.builders import eligible_answers
    from trialkit.services.enrolment import screen

    with transaction(engine) as s:
        return screen(s, cora, site="TWH", age=40, sex="F", weight_kg=70.0,
                      factors={"headache_type": "CM"}, answers=eligible_answers(),
                      clock=clock).id


def _no_baseline(engine: Engine, cora: Actor, clock: SteppingClock) -> str:
    return consented(engine, cora, clock).id


def _other_site(engine: Engine, cora: Actor, clock: SteppingClock) -> str:
    return ready_to_randomize(engine, cora, clock, site="SHS").id


def _withdrawn(engine: Engine, cora: Actor, clock: SteppingClock) -> str:
    pid = ready_to_randomize(engine, cora, clock).id
    with transaction(engine) as s:
        withdraw(s, cora, pid, reason="moved away", clock=clock)
    return pid


def _short_baseline(engine: Engine, cora: Actor, clock: SteppingClock) -> str:
    pid = consented(engine, cora, clock).id
    record_baseline(engine, cora, clock, pid, headache_days=3)
    return pid


def _randomized(engine: Engine, cora: Actor, clock: SteppingClock) -> str:
    pid = ready_to_randomize(engine, cora, clock).id
    randomize_in_turn(engine, cora, pid, clock=clock)
    return pid


def _exhausted(engine: Engine, cora: Actor, clock: SteppingClock) -> str:
    people = [consented(engine, cora, clock).id for _ in range(4)]
    record_baseline(engine, cora, clock, *people)
    for pid in people[:3]:  # three envelopes sealed per stratum
        randomize_in_turn(engine, cora, pid, clock=clock)
    return people[3]


NOT_READY = [_not_consented, _no_baseline, _short_baseline, _withdrawn, _other_site,
             _exhausted, _randomized, lambda *_: "TWH-999"]


@pytest.mark.parametrize("make", NOT_READY)
def test_the_short_way_takes_nothing_unless_simply_ready(
    engine: Engine, team: dict[str, Actor], clock: SteppingClock,
    make: Callable[[Engine, Actor, SteppingClock], str],
) -> None:
    pid = make(engine, team["cora"], clock)
    before = _written(engine)
    assert claim(engine, team["tess"], pid, clock=clock) is None
    assert _written(engine) == before


def test_the_short_way_needs_the_protocol_parsed_and_the_full_path_parses_it(
    engine: Engine, team: dict[str, Actor], clock: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = (consented(engine, team["cora"], clock).id for _ in range(2))
    record_baseline(engine, team["cora"], clock, first, second)
    monkeypatch.setattr(trial, "_PARSED", {})  # as in a process that has not read it yet
    assert claim(engine, team["cora"], first, clock=clock) is None
    assert randomize_in_turn(engine, team["cora"], first, clock=clock).randomization_number == (
        "R0001")
    fast = claim(engine, team["cora"], second, clock=clock)
    assert fast is not None and fast.randomization_number == "R0002"


@pytest.mark.parametrize("make", NOT_READY)
def test_a_refusal_in_turn_is_the_full_paths_refusal_and_changes_nothing(
    engine: Engine, team: dict[str, Actor], clock: SteppingClock,
    make: Callable[[Engine, Actor, SteppingClock], str],
) -> None:
    pid = make(engine, team["cora"], clock)
    tess = team["tess"]  # a coordinator of TWH only
    before = _written(engine)
    try:
        in_turn: Any = randomize_in_turn(engine, tess, pid, clock=clock)
    except TrialkitError as exc:
        in_turn = (type(exc), exc.message)
    after_in_turn = _written(engine)
    try:
        with transaction(engine) as s:
            full: Any = randomize(s, tess, pid, clock=clock)
    except TrialkitError as exc:
        full = (type(exc), exc.message)
    assert in_turn == full
    assert after_in_turn[1] == before[1]  # no envelope taken


def test_asking_again_in_turn_answers_with_the_same_randomization(
    engine: Engine, team: dict[str, Actor], clock: SteppingClock
) -> None:
    cora = team["cora"]
    pid = ready_to_randomize(engine, cora, clock).id
    first = randomize_in_turn(engine, cora, pid, clock=clock)
    bound = _written(engine)[1]
    again = randomize_in_turn(engine, cora, pid, clock=clock)
    assert (again.randomization_number, again.label_code, again.already) == (
        first.randomization_number, first.label_code, True)
    assert _written(engine)[1] == bound


def _withdraw_it(engine: Engine, cora: Actor, pid: str, clock: SteppingClock) -> None:
    with transaction(engine) as s:
        withdraw(s, cora, pid, reason="moved away", clock=clock)


def _add_a_diary_day(engine: Engine, cora: Actor, pid: str, clock: SteppingClock) -> None:
    # Today, after the baseline window: the gate still passes, but the diary changed.
    with transaction(engine) as s:
        record_day(s, cora, pid, baseline_days(clock.now().date(), days=1)[0], clock=clock)


def _next_day(engine: Engine, cora: Actor, pid: str, clock: SteppingClock) -> None:
    clock.advance(days=1)


@pytest.mark.parametrize("change", [_withdraw_it, _add_a_diary_day, _next_day])
def test_a_change_after_the_checks_leaves_the_answer_to_the_full_path(
    engine: Engine, team: dict[str, Actor], clock: SteppingClock,
    monkeypatch: pytest.MonkeyPatch, change: Callable[[Engine, Actor, str, SteppingClock], None],
) -> None:
    """SQLite makes its checks before taking the lock: whatever changes in between must be
    seen under the lock. PostgreSQL reads and checks under the lock only."""
    cora = team["cora"]
    pid = ready_to_randomize(engine, cora, clock).id
    looked: list[str] = []
    real_look = randomization._look

    def look_then_change(*args: Any) -> Any:
        found = real_look(*args)
        looked.append(pid)
        change(engine, cora, pid, clock)
        return found

    monkeypatch.setattr(randomization, "_look", look_then_change)
    if engine.dialect.name == "postgresql":
        assert claim(engine, cora, pid, clock=clock) is not None
        assert looked == []  # no check outside the lock to go stale
        return
    before = _written(engine)
    assert claim(engine, cora, pid, clock=clock) is None
    assert looked == [pid]
    assert _written(engine)[1] == before[1]  # no envelope taken
    with read_only(engine) as s:
        p = s.get(Participant, pid)
        assert p is not None and p.randomization_number is None
