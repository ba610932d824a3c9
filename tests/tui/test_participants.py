"""The coordinator's participants screen: their own sites only, filters, consent, randomize
(confirmed, a number and a label code, never an arm) and withdraw (a reason required)."""

from __future__ import annotations

import re

from sqlalchemy import Engine
from textual.pilot import Pilot
from textual.widgets import Input, Select

from tests.builders import consented, ready_to_randomize, record_baseline
from tests.conftest import SteppingClock
from tests.tui.conftest import (
    app_for,
    arm_words,
    notifications,
    press,
    screen_text,
    screened,
    sign_in,
    table_rows,
)
from trialkit.domain.codes import label_code
from trialkit.services.actor import Actor
from trialkit.tui.dialogs.confirm import ConfirmDialog
from trialkit.tui.dialogs.consent import ConsentDialog
from trialkit.tui.dialogs.randomized import RandomizedDialog
from trialkit.tui.dialogs.withdraw import WithdrawDialog
from trialkit.tui.screens.home import HomeScreen
from trialkit.tui.screens.participants import ParticipantsScreen


async def open_participants(pilot: Pilot[None], name: str) -> ParticipantsScreen:
    """Sign in and open the participants screen from home."""
    await sign_in(pilot, name)
    assert isinstance(pilot.app.screen, HomeScreen)
    await press(pilot, "p")
    screen = pilot.app.screen
    assert isinstance(screen, ParticipantsScreen)
    return screen


def ids(pilot: Pilot[None]) -> list[str]:
    return [row[0] for row in table_rows(pilot.app, "#participants")]  # type: ignore[arg-type]


def row_of(pilot: Pilot[None], pid: str) -> list[object]:
    return next(r for r in table_rows(pilot.app, "#participants") if r[0] == pid)  # type: ignore[arg-type]


async def select_row(pilot: Pilot[None], pid: str) -> None:
    from textual.widgets import DataTable

    table = pilot.app.screen.query_one("#participants", DataTable)
    table.move_cursor(row=table.get_row_index(pid))
    table.focus()
    await press(pilot)


async def test_coordinator_of_twh_sees_only_twh_participants(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    cora = enrolling["cora"]
    screened(engine, cora, clock, site="TWH")
    screened(engine, cora, clock, site="SHS")
    screened(engine, cora, clock, site="TWH", age=17)
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_participants(pilot, "tess")
        assert ids(pilot) == ["TWH-001", "TWH-002"]
        site_filter = app.screen.query_one("#site-filter", Select)
        assert [value for _, value in site_filter._options if isinstance(value, str)] == ["TWH"]
        assert "SHS" not in screen_text(app)


async def test_filters_by_site_and_status_and_search_by_id(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    cora = enrolling["cora"]
    consented(engine, cora, clock, site="TWH")
    screened(engine, cora, clock, site="SHS")
    screened(engine, cora, clock, site="SHS", age=90)
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_participants(pilot, "cora")
        assert ids(pilot) == ["SHS-001", "SHS-002", "TWH-001"]
        app.screen.query_one("#site-filter", Select).value = "SHS"
        await press(pilot)
        assert ids(pilot) == ["SHS-001", "SHS-002"]
        app.screen.query_one("#status-filter", Select).value = "ineligible"
        await press(pilot)
        assert ids(pilot) == ["SHS-002"]
        assert "failed I1_age" in screen_text(app)

        app.screen.query_one("#site-filter", Select).clear()
        app.screen.query_one("#status-filter", Select).clear()
        await press(pilot, "slash")
        assert app.focused is app.screen.query_one("#search", Input)
        await press(pilot, *"twh")
        assert ids(pilot) == ["TWH-001"]
        assert row_of(pilot, "TWH-001")[2] == "consented"


async def test_consent_takes_todays_date_and_the_protocols_form(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    screened(engine, enrolling["cora"], clock, site="TWH")
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_participants(pilot, "tess")
        await press(pilot, "c")
        assert isinstance(app.screen, ConsentDialog)
        assert app.screen.query_one("#consent-date", Input).value == "2026-03-02"
        assert app.screen.query_one("#consent-version", Select).value == "2.0"
        await press(pilot, "enter")
        assert isinstance(app.screen, ParticipantsScreen)
        assert row_of(pilot, "TWH-001")[2] == "consented"
        assert "consented 2026-03-02" in screen_text(app)
        assert "TWH-001 consented." in notifications(app)


async def test_consent_in_the_future_is_refused_with_a_message(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    screened(engine, enrolling["cora"], clock, site="TWH")
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_participants(pilot, "tess")
        await press(pilot, "c")
        app.screen.query_one("#consent-date", Input).value = "2026-03-09"
        await press(pilot, "enter")
        assert isinstance(app.screen, ParticipantsScreen)
        assert row_of(pilot, "TWH-001")[2] == "eligible"
        assert any("is in the future" in n for n in notifications(app))


async def test_randomize_asks_first_then_shows_number_and_label_code_never_an_arm(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    ready_to_randomize(engine, enrolling["cora"], clock, site="TWH")
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_participants(pilot, "tess")
        await press(pilot, "r")
        assert isinstance(app.screen, ConfirmDialog)
        assert "cannot be undone" in screen_text(app)
        await press(pilot, "enter")
        assert isinstance(app.screen, RandomizedDialog)
        result = app.screen.randomization
        text = screen_text(app)
        assert "Randomization number  R0001" in text
        assert f"Label code            {result.label_code}" in text
        assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]",
                            result.label_code)
        assert label_code(result.label_code.replace("-", "")[:8]) == result.label_code
        assert arm_words(text) == []
        await press(pilot, "enter")
        assert isinstance(app.screen, ParticipantsScreen)
        assert row_of(pilot, "TWH-001")[2:] == ["randomized", "R0001", result.label_code]
        assert arm_words(screen_text(app)) == []


async def test_randomizing_twice_shows_the_same_number(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    ready_to_randomize(engine, enrolling["cora"], clock, site="TWH")
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_participants(pilot, "tess")
        await press(pilot, "r", "enter")
        first = app.screen
        assert isinstance(first, RandomizedDialog)
        await press(pilot, "enter", "r")
        again = app.screen
        assert isinstance(again, RandomizedDialog)  # no confirmation: no envelope is used
        assert again.randomization.already
        assert again.randomization.randomization_number == "R0001"
        assert again.randomization.label_code == first.randomization.label_code
        assert "already randomized; no envelope was used" in screen_text(app)


async def test_cancelling_randomize_changes_nothing(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    consented(engine, enrolling["cora"], clock, site="TWH")
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_participants(pilot, "tess")
        await press(pilot, "r", "escape")
        assert isinstance(app.screen, ParticipantsScreen)
        assert row_of(pilot, "TWH-001")[2:] == ["consented", "", ""]


async def test_randomize_without_a_baseline_diary_is_refused_as_a_notification(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    consented(engine, enrolling["cora"], clock, site="TWH")
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_participants(pilot, "tess")
        await press(pilot, "r", "enter")
        assert isinstance(app.screen, ParticipantsScreen)
        assert any("cannot be randomized yet: the baseline diary" in n for n in notifications(app))
        assert row_of(pilot, "TWH-001")[2:] == ["consented", "", ""]


async def test_randomize_before_consent_is_explained_not_attempted(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    screened(engine, enrolling["cora"], clock, site="TWH")
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_participants(pilot, "tess")
        await press(pilot, "r")
        assert isinstance(app.screen, ParticipantsScreen)
        assert "TWH-001 is eligible: randomize after consent." in notifications(app)


async def test_no_envelope_left_is_a_notification_not_a_traceback(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    cora = enrolling["cora"]
    # Four envelopes in TWH-CM: the fifth participant finds none.
    pids = [consented(engine, cora, clock, site="TWH").id for _ in range(5)]
    record_baseline(engine, cora, clock, *pids)
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_participants(pilot, "tess")
        for pid in ("TWH-001", "TWH-002", "TWH-003", "TWH-004"):
            await select_row(pilot, pid)
            await press(pilot, "r", "enter", "enter")
        await select_row(pilot, "TWH-005")
        await press(pilot, "r", "enter")
        assert isinstance(app.screen, ParticipantsScreen)
        assert app.return_code is None
        assert any("no sealed envelope left" in n for n in notifications(app))
        assert row_of(pilot, "TWH-005")[2] == "consented"


async def test_withdraw_requires_a_reason(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    consented(engine, enrolling["cora"], clock, site="TWH")
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_participants(pilot, "tess")
        await press(pilot, "w")
        assert isinstance(app.screen, WithdrawDialog)
        await press(pilot, "enter")
        assert isinstance(app.screen, WithdrawDialog)
        assert "A reason is required" in screen_text(app)

        app.screen.query_one("#withdraw-reason", Input).value = "moved away"
        await press(pilot, "enter")
        assert isinstance(app.screen, ParticipantsScreen)
        assert row_of(pilot, "TWH-001")[2] == "withdrawn"
        await press(pilot, "r")
        assert "TWH-001 has withdrawn." in notifications(app)


async def test_monitor_reads_the_list_but_gets_no_enrolment_keys(
    engine: Engine, admin: Actor, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    from tests.conftest import add_user
    from trialkit.domain.roles import Role

    add_user(engine, admin, clock, "mona", Role.MONITOR)
    consented(engine, enrolling["cora"], clock, site="SHS")
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_participants(pilot, "mona")
        assert ids(pilot) == ["SHS-001"]
        assert screen.check_action("randomize", ()) is False
        await press(pilot, "r")
        assert isinstance(app.screen, ParticipantsScreen)
        assert "Randomize" not in screen_text(app).splitlines()[-1]


async def test_steps_the_status_does_not_allow_are_greyed_out_and_say_why(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    """The same rules as the services: an eligible person may consent or withdraw, not be
    randomized; a consented one may be randomized or withdraw, not consent again; a screen
    failure takes no step (issue 9 item 13)."""
    cora = enrolling["cora"]
    screened(engine, cora, clock, site="TWH")  # TWH-001: eligible
    consented(engine, cora, clock, site="TWH")  # TWH-002: consented
    screened(engine, cora, clock, site="TWH", age=17)  # TWH-003: screen failure
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_participants(pilot, "tess")
        offered = {}
        for pid in ("TWH-001", "TWH-002", "TWH-003"):
            await select_row(pilot, pid)
            offered[pid] = {a for a in ("record_consent", "randomize", "withdraw")
                            if screen.check_action(a, ()) is True}
        assert offered == {"TWH-001": {"record_consent", "withdraw"},
                           "TWH-002": {"randomize", "withdraw"},
                           "TWH-003": set()}
        assert screen.check_action("withdraw", ()) is None  # greyed, not hidden
        await press(pilot, "w")
        assert isinstance(app.screen, ParticipantsScreen)  # no dialog opened
        assert ("TWH-003 is a screen failure: there is no participation to withdraw."
                in notifications(app))
        await select_row(pilot, "TWH-002")
        await press(pilot, "c")
        assert isinstance(app.screen, ParticipantsScreen)
        assert ("TWH-002 is already consented: consent is recorded once, for an eligible "
                "participant." in notifications(app))
