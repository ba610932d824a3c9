"""The TUI shows text as it is: what a service says may quote what someone typed, so a
notification never reads it as markup and never passes a control character on."""

from __future__ import annotations

from sqlalchemy import Engine

from tests.conftest import SteppingClock
from tests.tui.conftest import app_for, notifications, settle


async def test_a_notification_shows_markup_and_escapes_literally(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.notify("no participant '[b]TWH-9[/b]\x1b[2J'", severity="error")
        await settle(pilot)
        assert notifications(app) == ["no participant '[b]TWH-9[/b]\\x1b[2J'"]
        assert not any(n.markup for n in app._notifications)
