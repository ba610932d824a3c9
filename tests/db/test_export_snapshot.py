"""An export reads one consistent snapshot and holds no write lock while it reads: a
randomization at another site, made while the export is half written, goes through at
once (it would wait for the export, then fail, if the export held the lock), and the
export shows the trial as it was when it began. Ordering, not timing: the randomization
runs inside the export's own progress callback, between two of its batches."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text

from tests.builders import consented, record_baseline, seal, staff
from tests.conftest import SteppingClock, add_user, sign_in
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.enrolment.participants import randomize
from trialkit.services.exports.datasets import ExportFiles, export_snapshot
from trialkit.store.db import make_engine, transaction


def _no_endless_wait(engine: Engine) -> Engine:
    """A second engine on the same database whose wait for a lock ends in an error (on
    PostgreSQL an advisory lock would otherwise wait for ever: the export and the
    randomization run in one thread)."""
    other = make_engine(engine.url.render_as_string(hide_password=False))
    if other.dialect.name == "postgresql":
        @event.listens_for(other, "connect")
        def _timeout(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute("SET lock_timeout = '20s'")
            dbapi_conn.commit()
    return other


def test_randomization_goes_through_while_an_export_is_reading(
    engine: Engine, admin: Actor, clock: SteppingClock, tmp_path: Path
) -> None:
    team = staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=8)
    add_user(engine, admin, clock, "iris", Role.INVESTIGATOR)
    early = [consented(engine, team["cora"], clock, site="TWH").id for _ in range(3)]
    late = consented(engine, team["cora"], clock, site="SHS").id
    record_baseline(engine, team["cora"], clock, *early, late)
    for pid in early:
        with transaction(engine) as s:
            randomize(s, team["cora"], pid, clock=clock)
    iris = sign_in(engine, "iris", clock)
    other = _no_endless_wait(engine)
    seen: list[tuple[int, int]] = []
    randomized: list[str] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 1:  # one participant written, the others still to read
            with transaction(other) as s:
                randomized.append(randomize(s, team["cora"], late, clock=clock)
                                  .randomization_number)

    files = ExportFiles(tmp_path / "outcomes.csv")
    with files:
        result = export_snapshot(engine, iris, "outcomes", files, clock=clock,
                                 progress=progress, batch=1)
        files.publish()
    other.dispose()
    assert randomized == ["R0004"]  # it went through, mid-export
    assert seen[0] == (1, 3) and seen[-1] == (3, 3)
    with (tmp_path / "outcomes.csv").open(newline="", encoding="utf-8") as f:
        exported = {r["participant_id"] for r in csv.DictReader(f)}
    assert exported == set(early)  # the snapshot: as the trial was when the export began
    assert result.participants == 3
    with engine.connect() as conn:
        order = conn.execute(text(
            "SELECT action FROM audit_event WHERE action IN "
            "('participant.randomize', 'export.outcomes') ORDER BY seq")).scalars().all()
    assert order[-2:] == ["participant.randomize", "export.outcomes"]
