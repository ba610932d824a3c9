"""A training trial's stated time (TRIALKIT_CLOCK) only moves forward: a time earlier than
the trial's last audit event is refused with exit 1, before anyone signs in, so the audit
trail stays in time order. The same time, or any later one, is accepted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.cli.test_cli import assert_refused, state_of, trialkit
from tests.conftest import ADMIN, KETHEAD, PASSWORD
from tests.db.tampering import reader
from trialkit.domain.clock import FixedClock
from trialkit.domain.protocol import load_protocol
from trialkit.services.administration.setup import initialize
from trialkit.store.db import make_engine

CREATED = datetime(2027, 1, 5, 10, 0, tzinfo=UTC)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.fixture
def training(db_url: str) -> Iterator[Engine]:
    """A training trial whose two audit events (created, admin added) happened at CREATED."""
    engine = make_engine(db_url, must_exist=False)
    initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
               training=True, clock=FixedClock(CREATED))
    yield engine
    engine.dispose()


def event_times(engine: Engine) -> list[datetime]:
    with reader(engine).connect() as conn:
        rows = conn.execute(text("SELECT at FROM audit_event ORDER BY seq")).scalars().all()
    times = [r if isinstance(r, datetime) else datetime.fromisoformat(r) for r in rows]
    # SQLite hands the stored UTC text back without its zone.
    return [t if t.tzinfo else t.replace(tzinfo=UTC) for t in times]


@pytest.mark.parametrize("back", [timedelta(seconds=1), timedelta(hours=5), timedelta(days=30)])
def test_a_clock_before_the_last_event_is_refused_and_nothing_is_recorded(
    training: Engine, db_url: str, tmp_path: Path, back: timedelta
) -> None:
    before = state_of(training)
    run = trialkit("user", "list", db=db_url, cwd=tmp_path, clock=iso(CREATED - back))
    assert_refused(run, 1, "TRIALKIT_CLOCK", "earlier than", "2027-01-05 10:00:00")
    assert state_of(training) == before


def test_the_clock_moves_forward_and_then_cannot_go_back(
    training: Engine, db_url: str, tmp_path: Path
) -> None:
    same = trialkit("user", "list", db=db_url, cwd=tmp_path, clock=iso(CREATED))
    assert same.code == 0, same.err
    later = CREATED + timedelta(days=2)
    moved = trialkit("user", "list", db=db_url, cwd=tmp_path, clock=iso(later))
    assert moved.code == 0, moved.err
    # The sign-in of that command is now the last event: the day in between is the past.
    back = trialkit("user", "list", db=db_url, cwd=tmp_path,
                    clock=iso(CREATED + timedelta(days=1)))
    assert back.code == 1
    times = event_times(training)
    assert times == sorted(times)
    assert times[-1] == later
