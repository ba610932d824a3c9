"""Many processes randomize at once, on a SQLite file and on PostgreSQL: no envelope is
used twice, no participant gets two, no envelope is skipped, and randomization numbers
follow the order in which the envelopes were taken.

Eight OS processes (``tests/db/race_worker.py``), each with its own engine and signed-in
coordinator, randomize 208 consented participants of one stratum (TWH-CM, 224 sealed
envelopes), each with the baseline diary the randomization gate asks for. Each process
owns a disjoint slice of 20 participants and also asks for all 48 participants of a shared
pool, so the "already randomized" path races too. Nothing is retried: a lock timeout,
deadlock or serialization failure fails the test."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from tests.builders import eligible_answers, seal, staff
from tests.conftest import PASSWORD, SteppingClock
from tests.db.race_worker import (
    BASELINE_DAYS,
    Worker,
    check_allocation,
    consent_many,
    record_baselines,
)
from trialkit.services.actor import Actor
from trialkit.services.enrolment.allocation import extend_list, stratum_usage
from trialkit.services.enrolment.participants import randomize, withdraw
from trialkit.services.integrity import verification
from trialkit.store.db import make_engine, read_only, transaction

WORKERS = 8
OWN = 20  # participants only one worker asks for
SHARED = 48  # participants every worker asks for
PARTICIPANTS = WORKERS * OWN + SHARED  # 208
ENVELOPES = 224  # per stratum: some are left over, so "prefix" means something
STRATUM = "TWH-CM"
SEED = 20261121


@pytest.mark.slow
def test_racing_processes_take_each_envelope_once_in_order(
    db_url: str, engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    started = time.monotonic()
    team = staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=ENVELOPES)
    pids = consent_many(
        engine, team["cora"], clock, [("TWH", "CM")] * PARTICIPANTS, eligible_answers(),
        on=clock.now().date(),
    )
    clock.advance(days=BASELINE_DAYS)
    record_baselines(engine, team["cora"], clock, pids)
    rng = random.Random(SEED)
    own, shared = pids[: WORKERS * OWN], pids[WORKERS * OWN :]
    plans: list[list[str]] = []
    for i in range(WORKERS):
        plan = own[i * OWN : (i + 1) * OWN] + shared
        rng.shuffle(plan)
        plans.append(plan)
    prepared = time.monotonic()

    workers = [
        Worker.spawn(db_url, ("cora", "tess")[i % 2], PASSWORD, clock.now().isoformat())
        for i in range(WORKERS)
    ]
    try:
        for w in workers:
            w.wait_ready()
        for w, plan in zip(workers, plans, strict=True):  # as close to together as pipes go
            w.go(plan)
        for w in workers:
            w.finish(timeout=120)
    finally:
        for w in workers:
            w.kill()
    raced = time.monotonic()

    failures = [
        f"worker {i} ({w.user}) exit {w.proc.returncode}: {w.errors() or w.stderr[-2000:]}"
        for i, w in enumerate(workers)
        if w.proc.returncode != 0 or w.errors() or w.lines[-1:] != ["done"]
    ]
    assert not failures, "\n".join(failures)

    # What the workers were told: one fresh randomization per participant, the same answer
    # to everyone who asked, and every process asked what it planned to ask.
    answers: dict[str, set[tuple[str, str]]] = defaultdict(set)
    fresh: dict[str, int] = defaultdict(int)
    for w, plan in zip(workers, plans, strict=True):
        results = [m for m in w.messages() if "pid" in m and "begin" not in m]
        assert [m["pid"] for m in results] == plan
        for m in results:
            answers[m["pid"]].add((m["number"], m["label"]))
            fresh[m["pid"]] += not m["already"]
    assert set(answers) == set(pids)
    assert {pid: n for pid, n in fresh.items() if n != 1} == {}
    assert {pid: a for pid, a in answers.items() if len(a) != 1} == {}
    # Who won the shared pool is only reported: SQLite's busy handler is not fair (it sleeps
    # and retries), so one process may take most of it while the others wait.
    winners = Counter(
        i
        for i, w in enumerate(workers)
        for m in w.messages()
        if m.get("pid") in set(shared) and m.get("already") is False
    )

    # What the database says.
    state = check_allocation(engine)
    assert state.used == {STRATUM: PARTICIPANTS}
    assert {pid: state.envelope_of[pid][1] for pid in pids} == {
        pid: int(state.number_of[pid][1:]) for pid in pids
    }  # one stratum: envelope k went with randomization number k
    assert {pid: next(iter(answers[pid]))[0] for pid in pids} == state.number_of
    with read_only(engine) as s:
        report = verification.verify(s)
        usage = {u.stratum: (u.used, u.left) for u in stratum_usage(s, admin)}
    assert report.ok, report.problem
    assert usage[STRATUM] == (PARTICIPANTS, ENVELOPES - PARTICIPANTS)
    calls = sum(len(p) for p in plans)
    waits = sorted(m["ms"] for w in workers for m in w.messages() if "ms" in m)
    print(
        f"\n{db_url.split(':')[0]}: {WORKERS} processes, {calls} randomize calls for "
        f"{PARTICIPANTS} participants: setup {prepared - started:.1f} s, "
        f"race {raced - prepared:.1f} s, checks {time.monotonic() - raced:.1f} s; "
        f"shared pool won per process: {dict(sorted(winners.items()))}; one call took "
        f"{waits[len(waits) // 2]:.0f} ms (median), {waits[-1]:.0f} ms at most"
    )


# --- lock order: randomize against the other services that lock a row it needs ----------
#
# ``randomize`` takes the audit-chain lock first, then the participant row, then the
# stratum row. Any service that locks one of those rows and only then appends its audit
# event (which takes the chain lock) can close a cycle with it. The tests below stop the
# other service just before its first chain-lock statement, start a randomize in a thread,
# wait until that randomize is blocked on a lock (or done), and let the other service go
# on. Both must complete. On SQLite every write transaction holds the database's write lock
# from BEGIN IMMEDIATE, so no such cycle exists there; these are PostgreSQL tests.


def _ready_to_randomize(engine: Engine, coordinator: Actor, clock: SteppingClock) -> str:
    """One consented TWH-CM participant with a baseline diary; the clock on the day after."""
    (pid,) = consent_many(
        engine, coordinator, clock, [("TWH", "CM")], eligible_answers(), on=clock.now().date()
    )
    clock.advance(days=BASELINE_DAYS)
    record_baselines(engine, coordinator, clock, [pid])
    return pid


# Row locks and the write lock are distinct only on PostgreSQL: these run there alone.
on_postgresql = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _race_with_randomize(
    db_url: str,
    other: Callable[[Engine], object],
    randomizer: Actor,
    pid: str,
    clock: SteppingClock,
) -> list[str]:
    """Run ``other`` on its own engine, pausing it at its first chain-lock statement while a
    randomize of ``pid`` starts on another connection; the errors of both, as text."""
    tag = f"trialkit-race-{uuid.uuid4().hex[:8]}"
    first = make_engine(db_url)
    second = make_engine(db_url, connect_args={"application_name": tag})
    monitor = make_engine(db_url, isolation_level="AUTOCOMMIT")
    errors: list[str] = []
    done = threading.Event()
    started = threading.Event()

    def randomize_now() -> None:
        try:
            with transaction(second) as s:
                randomize(s, randomizer, pid, clock=clock)
        except Exception as exc:
            errors.append(f"randomize {pid}: {type(exc).__name__}: {exc}".splitlines()[0])
        finally:
            done.set()

    racer = threading.Thread(target=randomize_now)

    def pause(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        # The write lock is tried first (pg_try_advisory_xact_lock), then waited for.
        if "advisory_xact_lock" not in statement or started.is_set() or done.is_set():
            return
        started.set()
        racer.start()
        deadline = time.monotonic() + 10
        while not done.is_set() and time.monotonic() < deadline:
            with monitor.connect() as conn:
                blocked = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE application_name = :tag AND wait_event_type = 'Lock'"
                    ),
                    {"tag": tag},
                ).scalar_one()
            if blocked:
                return
            time.sleep(0.02)

    event.listen(first, "before_cursor_execute", pause)
    try:
        try:
            other(first)
        except Exception as exc:
            errors.append(f"other: {type(exc).__name__}: {exc}".splitlines()[0])
        if racer.is_alive() or done.is_set():
            racer.join(timeout=60)
    finally:
        for e in (first, second, monitor):
            e.dispose()
    assert started.is_set(), "no race: the other transaction never reached the write lock"
    return errors


@pytest.mark.slow
@on_postgresql
def test_randomize_and_withdraw_of_one_participant_do_not_deadlock(
    db_url: str, engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    team = staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=10)
    pid = _ready_to_randomize(engine, team["cora"], clock)

    def withdraw_it(eng: Engine) -> None:
        with transaction(eng) as s:
            withdraw(s, team["tess"], pid, reason="moved away", clock=clock)

    errors = _race_with_randomize(db_url, withdraw_it, team["cora"], pid, clock)
    assert errors == []
    check_allocation(engine)
    with read_only(engine) as s:
        assert verification.verify(s).ok


@pytest.mark.slow
@on_postgresql
def test_randomize_while_its_stratum_is_extended_does_not_deadlock(
    db_url: str, engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    team = staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=10)
    pid = _ready_to_randomize(engine, team["cora"], clock)

    def extend_it(eng: Engine) -> None:
        with transaction(eng) as s:
            extend_list(s, admin, stratum=STRATUM, count=10, block_sizes=None, clock=clock)

    errors = _race_with_randomize(db_url, extend_it, team["cora"], pid, clock)
    assert errors == []
    state = check_allocation(engine)
    assert state.used == {STRATUM: 1}
    with read_only(engine) as s:
        assert verification.verify(s).ok
