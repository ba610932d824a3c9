"""A process killed (SIGKILL) at any moment while randomizing leaves nothing half done, on
a SQLite file and on PostgreSQL: an envelope is bound if and only if its participant has a
randomization number and a ``participant.randomize`` audit event, the used envelopes of each
stratum stay a prefix without gap, the audit chain and the lists verify, SQLite's own
integrity check passes, and the next process carries on where the dead one stopped.

One database per backend is reused across all kills, with cohorts of consented participants
that have the baseline diary randomization asks for (a new cohort, some weeks later, when
the current one runs low). A worker (``tests/db/race_worker.py``,
forked by a multiprocessing forkserver that has already imported it, so that a new process
costs milliseconds) is handed every participant still waiting, signs in, says it is ready
and randomizes them back to back; the test kills it after a random delay within that busy
window (seeded, so the schedule of delays is reproducible; where in a transaction each kill
lands is up to the machine). The last worker is a fresh interpreter that finishes its batch.
"""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import time

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from tests.builders import eligible_answers, seal, staff
from tests.conftest import PASSWORD, SteppingClock
from tests.db.race_worker import (
    BASELINE_DAYS,
    ForkedWorker,
    Worker,
    check_allocation,
    consent_many,
    record_baselines,
)
from trialkit.services.actor import Actor
from trialkit.services.integrity import verification
from trialkit.store.db import read_only, sqlite_path
from trialkit.store.models import Participant

KILLS = 50
SEED = 20261121
DELAY = (0.0, 0.25)  # seconds after the worker is handed its participants
PER_STRATUM = 1000
STRATA = [("TWH", "CM"), ("TWH", "CDH"), ("SHS", "CM"), ("SHS", "CDH")]
COHORT = 250  # consented at once, spread over the four strata
LOW = 120  # a new cohort when fewer than this are left waiting in the current one


def _randomized(engine: Engine) -> set[str]:
    with read_only(engine) as s:
        return set(
            s.exec(
                select(Participant.id).where(col(Participant.randomization_number).is_not(None))
            ).all()
        )


@pytest.mark.slow
def test_killed_randomizers_leave_nothing_half_done(
    db_url: str, engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    started = time.monotonic()
    team = staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=PER_STRATUM)
    answers = eligible_answers()

    def new_cohort() -> tuple[list[str], str]:
        """Screen and consent a cohort today; the gate wants a baseline diary of the days
        before randomization, so the trial moves on until the cohort has one."""
        people = [STRATA[i % len(STRATA)] for i in range(COHORT)]
        pids = consent_many(engine, team["cora"], clock, people, answers, on=clock.now().date())
        clock.advance(days=BASELINE_DAYS)
        record_baselines(engine, team["cora"], clock, pids)
        return pids, clock.now().isoformat()

    cohort, at = new_cohort()
    rng = random.Random(SEED)
    prepared = time.monotonic()

    ctx = multiprocessing.get_context("forkserver")
    # A forked child re-runs the parent's main script (pytest's) before its target: with pytest
    # and the worker imported once in the server, a new worker costs milliseconds.
    ctx.set_forkserver_preload(["pytest", "tests.db.race_worker"])
    in_flight = 0  # kills that landed between "begin" and the commit being reported
    unacknowledged = 0  # ... of which the transaction had committed all the same
    reported = 0
    for kill in range(KILLS):
        waiting = sorted(set(cohort) - _randomized(engine))
        if len(waiting) < LOW:  # the rest of this cohort stays consented, never randomized
            cohort, at = new_cohort()
            waiting = sorted(cohort)
        rng.shuffle(waiting)  # strata interleaved, in a reproducible order
        worker = ForkedWorker.start(ctx, db_url, "cora", PASSWORD, at, waiting)
        try:
            worker.wait_ready()
            time.sleep(rng.uniform(*DELAY))
            alive = worker.kill()
        finally:
            worker.kill()
            lines = worker.finish(timeout=30)
        assert alive, f"kill {kill}: the worker ended by itself: {lines[-3:]}"
        assert worker.errors() == [], f"kill {kill}: {worker.errors()}"
        messages = worker.messages()
        reported += sum("number" in m for m in messages)
        if messages and "begin" in messages[-1]:
            in_flight += 1
            with read_only(engine) as s:
                last = s.get(Participant, messages[-1]["begin"])
                unacknowledged += last is not None and last.randomization_number is not None
    killed = time.monotonic()

    # The database is whole, and it is still usable: a last worker finishes some more.
    state = check_allocation(engine)
    assert len(state.number_of) >= reported  # every reported randomization is in the database
    last_batch = sorted(set(cohort) - _randomized(engine))[:20]
    final = Worker.spawn(db_url, "cora", PASSWORD, at)
    final.wait_ready()
    final.go(last_batch)
    final.finish(timeout=60)
    assert final.proc.returncode == 0 and final.lines[-1:] == ["done"], final.stderr
    after = check_allocation(engine)
    assert len(after.number_of) == len(state.number_of) + len(last_batch)

    path = sqlite_path(db_url)
    if path is not None:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with read_only(engine) as s:
        report = verification.verify(s)
    assert report.ok, report.problem
    # Most kills must land inside a randomization, or this proves little.
    assert in_flight >= KILLS // 4, f"only {in_flight} of {KILLS} kills landed mid-randomization"
    print(
        f"\n{db_url.split(':')[0]}: {KILLS} kills, {len(state.number_of)} randomized "
        f"({after.used}), {in_flight} kills mid-randomization, {unacknowledged} of them after "
        f"the commit; setup {prepared - started:.1f} s, kills {killed - prepared:.1f} s, "
        f"checks {time.monotonic() - killed:.1f} s"
    )
