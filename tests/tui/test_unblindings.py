"""The emergency-unblinding report in the TUI: the monitor and the investigator read who,
when, why and which participant, never the arm; a coordinator has no such key."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from tests.builders import ready_to_randomize
from tests.conftest import PASSWORD, SteppingClock, add_user
from tests.conftest import sign_in as service_sign_in
from tests.tui.conftest import app_for, arm_words, press, screen_text, sign_in, table_rows
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.enrolment.participants import randomize
from trialkit.services.pharmacy.unblinding import unblind
from trialkit.store.db import transaction
from trialkit.tui.screens.home import HomeScreen
from trialkit.tui.screens.unblindings import UnblindingsScreen


@pytest.fixture
def randomized_one(engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock) -> str:
    """One participant randomized at TWH; its id."""
    v = ready_to_randomize(engine, enrolling["cora"], clock, site="TWH")
    with transaction(engine) as s:
        randomize(s, enrolling["cora"], v.id, clock=clock)
    return v.id


@pytest.mark.parametrize("reader", [("mona", Role.MONITOR), ("iris", Role.INVESTIGATOR)])
async def test_readers_see_who_when_why_and_never_the_arm(
    engine: Engine, randomized_one: str, admin: Actor, clock: SteppingClock,
    reader: tuple[str, Role],
) -> None:
    name, role = reader
    add_user(engine, admin, clock, name, role)
    phil = service_sign_in(engine, "phil", clock)
    pid = randomized_one
    with transaction(engine) as s:
        unblind(s, phil, pid, reason="anaphylaxis in the emergency department",
                password=PASSWORD, clock=clock)
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await sign_in(pilot, name)
        await press(pilot, "u")
        assert isinstance(app.screen, UnblindingsScreen)
        rows = [[str(c) for c in r] for r in table_rows(app, "#unblindings")]
        assert [r[1:3] + r[4:] for r in rows] == [
            [pid, "TWH", "phil", "pharmacist", "unblinded",
             "anaphylaxis in the emergency department"]]
        text = screen_text(app)
        assert "Emergency unblindings: 1 (participants: 1)" in text
        assert not arm_words(text)


async def test_a_coordinator_has_no_unblinding_report(
    engine: Engine, randomized_one: str, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await sign_in(pilot, "cora")
        await press(pilot, "escape")
        if isinstance(app.screen, HomeScreen):
            await press(pilot, "u")
        assert not isinstance(app.screen, UnblindingsScreen)
        ids = {a.binding.id for a in app.screen.active_bindings.values() if a.enabled}
        assert "unblindings" not in ids
