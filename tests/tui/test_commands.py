"""Every action has a binding with an id and a command-palette entry for where it applies."""

from __future__ import annotations

from sqlalchemy import Engine
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot

from tests.conftest import SteppingClock
from tests.tui.conftest import app_for, press, settle, sign_in
from trialkit.services.actor import Actor
from trialkit.tui.app import TrialkitApp
from trialkit.tui.commands import ALL_COMMANDS, APP_COMMANDS
from trialkit.tui.dialogs.dialog import Dialog
from trialkit.tui.screens.allocation_lists import AllocationListsScreen
from trialkit.tui.screens.audit_review import AuditReviewScreen
from trialkit.tui.screens.home import HomeScreen
from trialkit.tui.screens.lock import LockScreen
from trialkit.tui.screens.participants import ParticipantsScreen
from trialkit.tui.screens.screening import ScreeningScreen
from trialkit.tui.widgets.criterion_row import CriterionRow

BOUND = (
    TrialkitApp, HomeScreen, ParticipantsScreen, ScreeningScreen, CriterionRow,
    AllocationListsScreen, Dialog, AuditReviewScreen,
)


async def palette_entries(pilot: Pilot[None]) -> list[str]:
    """Open the command palette and read the entries it offers before any typing."""
    await pilot.press("ctrl+p")
    await settle(pilot)
    assert isinstance(pilot.app.screen, CommandPalette)
    options = pilot.app.screen.query_one(CommandList)
    prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
    return [prompt.splitlines()[0] for prompt in prompts]  # the title, not the help line


def test_every_binding_has_an_id_and_a_palette_entry() -> None:
    for owner in BOUND:
        for binding in owner.BINDINGS:
            assert not isinstance(binding, tuple)
            assert binding.id in ALL_COMMANDS, (owner.__name__, binding)
            command = ALL_COMMANDS[binding.id]
            # a screen binds the session's keys to the app's own action (quiet_session_keys)
            app_action = f"app.{command.action}" if command in APP_COMMANDS else None
            assert binding.action in (command.action, app_action), (owner.__name__, binding)


async def test_palette_on_home_offers_lock_sign_out_refresh_and_quit(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        entries = await palette_entries(pilot)
        assert entries == ["Allocation lists", "Audit review", "Emergency unblindings",
                           "Lock screen", "Quit", "Refresh", "Sign out", "Users"]


async def test_palette_on_participants_offers_every_enrolment_step(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "cora")
        await press(pilot, "p")
        entries = await palette_entries(pilot)
        assert entries == [
            "Back", "Import diary file", "Lock screen", "Quit", "Refresh",
            "Screen a participant", "Search participants", "Sign out",
        ]  # consent, randomize, infusion, withdraw, outcomes: once a participant is listed


async def test_palette_entry_opens_the_screening_form(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "cora")
        await press(pilot, "p")
        await palette_entries(pilot)
        await press(pilot, *"screen a", "enter")
        assert isinstance(app.screen, ScreeningScreen)


async def test_palette_before_sign_in_offers_only_quit(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert await palette_entries(pilot) == ["Quit"]


async def test_palette_on_the_lock_screen_cannot_get_past_it(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert await palette_entries(pilot) == ["Quit", "Sign out"]


async def test_lock_screen_entry_locks(engine: Engine, clock: SteppingClock) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        await palette_entries(pilot)
        await pilot.press(*"lock", "enter")
        await settle(pilot)
        assert isinstance(app.screen, LockScreen)


async def test_quit_entry_quits(engine: Engine, clock: SteppingClock) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot)
        await palette_entries(pilot)
        await pilot.press(*"quit", "enter")
        await settle(pilot)
        assert app.return_code == 0
