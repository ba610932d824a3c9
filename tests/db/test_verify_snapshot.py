"""`audit verify` reads one consistent snapshot (PostgreSQL: REPEATABLE READ, READ ONLY; SQLite:
a read transaction in WAL mode): a change committed while it reads is not half seen (its
event missed by the chain walk, its row found by the state pass, which would look like a
change made outside trialkit). Ordering, not timing: the change is committed from verify's
own progress callback, after verify has begun reading. Its progress counts rows and ends
at the total it announced: every audit event and every row of the audited tables, counted
here with plain SQL."""

from __future__ import annotations

from sqlalchemy import Engine, text

from tests.builders import consented, record_baseline, seal, staff
from tests.conftest import SteppingClock
from trialkit.application.trial_database import TrialDatabase
from trialkit.services.actor import Actor
from trialkit.store.db import make_engine

# audit_event and every table verify compares with the trail
_TABLES = ("audit_event", "app_user", "trial", "participant", "allocation_list", "diary_entry",
           "preparation")


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_verify_reads_one_snapshot_and_its_progress_ends_at_its_total(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    team = staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=4)
    pids = [consented(engine, team["cora"], clock, site=site).id for site in ("TWH", "SHS")]
    record_baseline(engine, team["cora"], clock, *pids)  # diary batches: many rows, one event
    rows = {table: _count(engine, table) for table in _TABLES}
    assert rows["diary_entry"] > rows["participant"]
    total = sum(rows.values())
    other = make_engine(engine.url.render_as_string(hide_password=False))
    seen: list[tuple[int, int]] = []

    def progress(done: int, of: int) -> None:
        if not seen:  # verify has begun reading: commit a change from another connection
            consented(other, team["cora"], clock, site="TWH")
        seen.append((done, of))

    try:
        report = TrialDatabase(engine=engine, clock=clock, label="test").verify_audit(
            progress=progress)
    finally:
        other.dispose()
    assert report.ok, report.problem
    assert report.events == rows["audit_event"]  # the trail as it was when verify began
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert all(a <= b <= total for (a, _), (b, _) in zip(seen, seen[1:], strict=False))
    assert _count(engine, "participant") == rows["participant"] + 1  # the change was made
    again = TrialDatabase(engine=engine, clock=clock, label="test").verify_audit(
        progress=lambda _done, _of: None)
    assert again.ok and again.events > report.events
