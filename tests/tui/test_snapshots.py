"""SVG snapshots of the main screens at 80x24 (update with ``pytest --snapshot-update``).

Deterministic by construction: SQLite only, the stepping clock, no clock in the header,
nothing random on screen."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine
from textual.pilot import Pilot

from tests.conftest import SteppingClock
from tests.tui.conftest import app_for, sign_in
from trialkit.tui.screens.home import HomeScreen


def test_home_screen(
    snap_compare: Callable[..., bool], sqlite_engine: Engine, clock: SteppingClock
) -> None:
    async def signed_in(pilot: Pilot[None]) -> None:
        await sign_in(pilot)
        assert isinstance(pilot.app.screen, HomeScreen)

    app = app_for(sqlite_engine, clock)
    assert snap_compare(app, terminal_size=(80, 24), run_before=signed_in)
