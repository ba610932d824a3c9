"""The screening form: the protocol's criteria as a yes/no checklist, eligibility worked out
live as it is filled in, and a submit that screens the participant."""

from __future__ import annotations

from sqlalchemy import Engine
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static

from tests.builders import PROTOCOL
from tests.conftest import SteppingClock
from tests.tui.conftest import (
    app_for,
    notifications,
    press,
    screen_text,
    sign_in,
    table_rows,
)
from trialkit.domain.eligibility import answered_criteria
from trialkit.services.actor import Actor
from trialkit.tui.dialogs.confirm import ConfirmDialog
from trialkit.tui.screens.participants import ParticipantsScreen
from trialkit.tui.screens.screening import ScreeningScreen
from trialkit.tui.widgets.criterion_row import CriterionRow

ANSWERED = answered_criteria(PROTOCOL)


async def open_form(pilot: Pilot[None], name: str = "cora") -> ScreeningScreen:
    """Sign in, open the participants screen, then the screening form."""
    await sign_in(pilot, name)
    await press(pilot, "p")
    await press(pilot, "n")
    form = pilot.app.screen
    assert isinstance(form, ScreeningScreen)
    return form


def fill(
    form: ScreeningScreen, *, site: str | None = "TWH", age: str = "40", sex: str = "F",
    weight: str = "70", headache_type: str = "CM",
) -> None:
    """Fill in the fields (not the checklist) as a coordinator would."""
    if site is not None:
        form.query_one("#site", Select).value = site
    form.query_one("#age", Input).value = age
    form.query_one("#sex", Select).value = sex
    form.query_one("#weight", Input).value = weight
    form.query_one("#factor-headache_type", Select).value = headache_type


def answer_all(form: ScreeningScreen, **overrides: bool) -> None:
    """Answer every criterion so that it is met, except the ones overridden."""
    for c in ANSWERED:
        row = form.query_one(f"#criterion-{c.id}", CriterionRow)
        row.answer = overrides.get(c.id, c.kind == "inclusion")


def live(form: ScreeningScreen) -> str:
    return str(form.query_one("#live-eligibility", Static).render())


async def test_form_lists_every_criterion_with_the_age_check_automatic(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot)
        rows = list(form.query(CriterionRow))
        assert [r.criterion.id for r in rows] == [c.id for c in PROTOCOL.eligibility.criteria]
        age_row = form.query_one("#criterion-I1_age", CriterionRow)
        assert age_row.automatic and not age_row.can_focus
        assert all(r.can_focus for r in rows if r is not age_row)
        assert "I1_age (in) Age within the protocol range" in screen_text(app)
        assert live(form).startswith("Eligible so far")


async def test_live_eligibility_follows_the_keys(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot)
        total = len(PROTOCOL.eligibility.criteria)
        assert live(form) == f"Eligible so far — {total} of the criteria still unanswered"

        form.query_one("#age", Input).value = "17"
        await press(pilot)
        assert live(form).startswith("NOT ELIGIBLE — fails I1_age")
        assert f"{total - 1} of the criteria still unanswered" in live(form)
        form.query_one("#age", Input).value = "44"
        await press(pilot)
        assert live(form).startswith("Eligible so far")

        form.query_one("#criterion-I2_cdh", CriterionRow).focus()
        await press(pilot, "y", "y", "y")  # I2 yes, I3 yes, E01 (pregnancy) yes: fails
        assert form.query_one("#criterion-E01_pregnancy", CriterionRow).met is False
        assert live(form).startswith("NOT ELIGIBLE — fails E01_pregnancy")
        assert "✗ E01_pregnancy" in screen_text(app)

        form.query_one("#criterion-E01_pregnancy", CriterionRow).focus()
        await press(pilot, *"n" * (len(ANSWERED) - 2))
        assert live(form) == "ELIGIBLE — every criterion is met"


async def test_screening_an_eligible_participant_shows_the_id_and_eligibility(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot)
        fill(form)
        answer_all(form)
        await press(pilot, "ctrl+s")
        assert isinstance(app.screen, ParticipantsScreen)
        assert "Screened TWH-001 (TWH-CM): eligible" in notifications(app)
        assert table_rows(app, "#participants") == [["TWH-001", "TWH-CM", "eligible", "", ""]]
        assert "TWH-001 · eligible · 40 y, F, 70 kg" in screen_text(app)


async def test_screening_an_ineligible_participant_names_the_failed_criteria(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot)
        fill(form, site="SHS", age="80", headache_type="CDH")
        answer_all(form, E09_glaucoma=True)
        await press(pilot)
        assert live(form).startswith("NOT ELIGIBLE — fails I1_age, E09_glaucoma")
        await press(pilot, "ctrl+s")
        assert isinstance(app.screen, ParticipantsScreen)
        assert "Screened SHS-001: NOT eligible (failed I1_age, E09_glaucoma)" in notifications(app)
        assert table_rows(app, "#participants") == [["SHS-001", "SHS-CDH", "ineligible", "", ""]]


async def test_an_unanswered_criterion_keeps_the_form_open(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot)
        fill(form)
        answer_all(form)
        form.query_one("#criterion-E05_cerebrovascular", CriterionRow).answer = None
        await press(pilot, "ctrl+s")
        assert app.screen is form
        assert app.focused is form.query_one("#criterion-E05_cerebrovascular")
        assert any("1 unanswered (E05_cerebrovascular)" in n for n in notifications(app))


async def test_a_missing_field_is_named_and_focused(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot)
        fill(form, weight="")
        answer_all(form)
        await press(pilot, "ctrl+s")
        assert app.screen is form
        assert app.focused is form.query_one("#weight")
        assert "Enter the weight in kg." in notifications(app)


async def test_implausible_input_is_refused_by_the_service_as_a_notification(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot)
        fill(form, weight="900")
        answer_all(form)
        await press(pilot, "ctrl+s")
        assert app.screen is form
        assert any("weight 900 kg is outside" in n for n in notifications(app))
        assert app.return_code is None


async def test_sites_offered_are_the_coordinators_own(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot, "tess")
        site = form.query_one("#site", Select)
        assert site.value == "TWH"  # her only site, chosen for her
        assert app.focused is form.query_one("#age")


async def test_leaving_a_started_form_asks_first(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot, "tess")
        form.query_one("#age", Input).value = "40"
        await press(pilot, "escape")
        assert isinstance(app.screen, ConfirmDialog)
        await press(pilot, "escape")
        assert app.screen is form
        await press(pilot, "escape", "enter")
        assert isinstance(app.screen, ParticipantsScreen)
        assert table_rows(app, "#participants") == []
