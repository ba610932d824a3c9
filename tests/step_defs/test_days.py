"""Steps for ``features/coordinators_day.feature`` and ``features/pharmacists_day.feature``:
each step drives the TUI (Textual's Pilot) as its user, signed in afresh; nothing between
the steps uses the CLI or a service. Runs on SQLite and, with TRIALKIT_TEST_PG_URL, on
PostgreSQL. Expected numbers are the feature's, worked out from the protocol's words."""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader
from pytest_bdd import given, parsers, scenarios, then, when
from sqlalchemy import Engine
from textual.pilot import Pilot
from textual.widgets import Input, Static

from tests.builders import seal
from tests.conftest import PASSWORD, SteppingClock, add_user
from tests.tui.conftest import (
    app_for,
    arm_words,
    notifications,
    press,
    screen_text,
    settle,
    sign_in,
    table_rows,
)
from tests.tui.test_days import (
    BLINDED_PRODUCT,
    HEADER,
    PROTOCOL,
    diary_file,
    import_diary,
    wait_for,
)
from tests.tui.test_screening import answer_all, fill
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.tui.app import TrialkitApp
from trialkit.tui.dialogs.confirm import ConfirmDialog
from trialkit.tui.dialogs.consent import ConsentDialog
from trialkit.tui.dialogs.diary_import import ImportProblemsDialog
from trialkit.tui.dialogs.infusion import InfuseDialog, ScheduleDialog
from trialkit.tui.dialogs.labels import LabelPreviewDialog
from trialkit.tui.dialogs.outcomes import OutcomesDialog
from trialkit.tui.dialogs.password import PasswordDialog
from trialkit.tui.dialogs.randomized import RandomizedDialog
from trialkit.tui.dialogs.reprint import ReprintDialog
from trialkit.tui.screens.dispense_queue import DispenseQueueScreen
from trialkit.tui.screens.home import HomeScreen
from trialkit.tui.screens.participants import ParticipantsScreen
from trialkit.tui.screens.preparation import PreparationScreen
from trialkit.tui.screens.screening import ScreeningScreen

scenarios("coordinators_day.feature", "pharmacists_day.feature")

Step = Callable[[TrialkitApp, Pilot[None]], Awaitable[None]]


@dataclass
class Day:
    engine: Engine
    clock: SteppingClock
    folder: Path
    pid: str = "TWH-001"
    consented_on: date | None = None
    infused_on: date | None = None
    told: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)
    previews: list[str] = field(default_factory=list)
    outcomes: dict[str, list[object]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    summary: str = ""

    def as_user(self, name: str, step: Step, *, participants: bool = False) -> None:
        """Sign ``name`` in to a fresh TUI, (open the participants,) take the step, and
        keep what the screen said."""

        async def run() -> None:
            app = app_for(self.engine, self.clock)
            async with app.run_test(size=(120, 36)) as pilot:
                await sign_in(pilot, name)
                if participants:
                    await press(pilot, "p")
                    assert isinstance(app.screen, ParticipantsScreen)
                await step(app, pilot)
                self.shown.append(screen_text(app))
                self.told.extend(notifications(app))

        asyncio.run(run())


@pytest.fixture(autouse=True)
def day(engine: Engine, clock: SteppingClock, tmp_path: Path) -> Day:
    """Autouse, so that every scenario is collected once per backend."""
    return Day(engine, clock, tmp_path)


# --- given ---------------------------------------------------------------------------------


@given(parsers.parse('the KetHead trial with the coordinator "{coordinator}" at TWH and the '
                     'pharmacists "{first}" and "{second}"'))
def trial_staffed(engine: Engine, admin: Actor, clock: SteppingClock, coordinator: str,
                  first: str, second: str) -> None:
    add_user(engine, admin, clock, coordinator, Role.COORDINATOR, sites=["TWH"])
    for name in (first, second):
        add_user(engine, admin, clock, name, Role.PHARMACIST)
    seal(engine, admin, clock, per_stratum=4)


@given("the labels folder is set for the pharmacy")
def labels_folder(day: Day, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIALKIT_LABEL_DIR", str(day.folder))


@given(parsers.parse("the coordinator has randomized a participant weighing {kg:g} kg"))
def randomized_participant(day: Day, kg: float) -> None:
    screen_and_consent(day, weight=f"{kg:g}")
    day.clock.advance(days=28)
    baseline_file(day, 28, 17)
    randomize_and_plan(day)


# --- the coordinator -----------------------------------------------------------------------


@when("the coordinator screens an eligible participant and records their consent")
def screen_and_consent(day: Day, weight: str = "70") -> None:
    async def step(app: TrialkitApp, pilot: Pilot[None]) -> None:
        await press(pilot, "n")
        form = app.screen
        assert isinstance(form, ScreeningScreen)
        fill(form, weight=weight)
        answer_all(form)
        await press(pilot, "ctrl+s")
        assert table_rows(app, "#participants")[0][:3] == [day.pid, "TWH-CM", "eligible"]
        await press(pilot, "c")
        assert isinstance(app.screen, ConsentDialog)
        await press(pilot, "enter")
        assert table_rows(app, "#participants")[0][2] == "consented"

    day.as_user("tess", step, participants=True)
    day.consented_on = day.clock.now().date()


def baseline_file(day: Day, days: int, headache_days: int) -> None:
    assert day.consented_on is not None
    # headache days of 6 h, then two of 3 h without medication (not headache days)
    plan = [(6.0, False)] * headache_days + [(3.0, False)] * 2
    plan += [(0.0, False)] * (days - len(plan))
    counted = diary_file(day.folder / "baseline.csv", day.pid, day.consented_on, plan)
    assert counted == headache_days
    imported(day, day.folder / "baseline.csv")


def imported(day: Day, path: Path) -> None:
    async def step(app: TrialkitApp, pilot: Pilot[None]) -> None:
        await import_diary(pilot, path)
        if isinstance(app.screen, ImportProblemsDialog):
            day.summary = str(app.screen.query_one("#import-summary", Static).render())
            text = app.screen.query_one("#import-problems-text", Static).render()
            day.problems = str(text).splitlines()

    day.as_user("tess", step, participants=True)


@when(parsers.parse("28 days later she imports a baseline diary of {days:d} days with "
                    "{headache_days:d} headache days"))
def baseline_imported(day: Day, days: int, headache_days: int) -> None:
    day.clock.advance(days=28)
    baseline_file(day, days, headache_days)
    assert f"Imported {days} diary days of 1 participants from" in " ".join(day.told)


@when("she randomizes the participant and plans the infusion for today")
def randomize_and_plan(day: Day) -> None:
    async def step(app: TrialkitApp, pilot: Pilot[None]) -> None:
        await press(pilot, "r")
        assert isinstance(app.screen, ConfirmDialog)
        await press(pilot, "enter")
        await wait_for(pilot, RandomizedDialog)
        day.shown.append(screen_text(app))
        await press(pilot, "enter")
        await press(pilot, "s")
        assert isinstance(app.screen, ScheduleDialog)
        await press(pilot, "enter")
        await settle(pilot)
        assert table_rows(app, "#participants")[0][2] == "randomized"

    day.as_user("tess", step, participants=True)
    assert f"{day.pid}: infusion planned for {day.clock.now().date()}." in day.told


@then("she cannot record the infusion yet, because the pharmacy has not prepared it")
def infusion_greyed(day: Day) -> None:
    async def step(app: TrialkitApp, pilot: Pilot[None]) -> None:
        assert app.screen.check_action("record_infusion", ()) is None  # greyed, not hidden
        await press(pilot, "i")
        assert isinstance(app.screen, ParticipantsScreen)

    day.as_user("tess", step, participants=True)
    assert (f"{day.pid} is randomized: the infusion is recorded once the pharmacy has "
            "prepared it (dispensed)." in day.told)


@when("the coordinator records the infusion")
def infused(day: Day) -> None:
    async def step(app: TrialkitApp, pilot: Pilot[None]) -> None:
        await press(pilot, "i")
        assert isinstance(app.screen, InfuseDialog)
        await press(pilot, "enter")
        await settle(pilot)
        assert table_rows(app, "#participants")[0][2] == "infused"

    day.as_user("tess", step, participants=True)
    day.infused_on = day.clock.now().date()
    assert f"{day.pid}: infused on {day.infused_on} (study day 0)." in day.told


@when(parsers.parse("30 days later she imports {days:d} days of the first window with "
                    "{headache_days:d} headache days"))
def first_window(day: Day, days: int, headache_days: int) -> None:
    assert day.infused_on is not None
    day.clock.advance(days=30)
    # 5 h headaches, then one of 1 h with acute medication (a headache day by the
    # protocol), then short ones without medication (not headache days)
    plan = [(5.0, False)] * (headache_days - 1) + [(1.0, True)] + [(2.0, False)] * 2
    plan += [(0.0, False)] * (days - len(plan))
    path = day.folder / "d1-28.csv"
    assert diary_file(path, day.pid, day.infused_on + timedelta(days=1), plan) == headache_days
    imported(day, path)

    async def read(app: TrialkitApp, pilot: Pilot[None]) -> None:
        await press(pilot, "o")
        await wait_for(pilot, OutcomesDialog)
        day.outcomes = {str(r[0]).rstrip(" *"): r for r in table_rows(app, "#outcomes-table")}

    day.as_user("tess", read, participants=True)


@then(parsers.parse("the outcomes show {per_28} headache days per 28 days at baseline"))
def baseline_outcome(day: Day, per_28: str) -> None:
    assert day.outcomes["BASELINE"][8] == per_28


@then(parsers.parse("the outcomes show {per_28} headache days per 28 days in {window}, a "
                    "change of {change}"))
def window_outcome(day: Day, per_28: str, window: str, change: str) -> None:
    assert day.outcomes[window][8:10] == [per_28, change]
    assert len(day.outcomes) == len(PROTOCOL.diary.windows)


@then("nothing she saw names a treatment")
def blinded(day: Day) -> None:
    assert day.shown
    for text in day.shown:
        assert arm_words(text) == [], text


@when("28 days later she imports a diary file whose line 3 has no real date and whose line "
      "4 names an unknown participant")
def bad_file(day: Day) -> None:
    day.clock.advance(days=28)
    path = day.folder / "bad.csv"
    path.write_text(HEADER + f"{day.pid},{day.consented_on},yes,moderate,6,no\n"
                    f"{day.pid},2026-02-30,yes,moderate,6,no\n"
                    f"XXX-999,{day.consented_on},no,none,0,no\n", encoding="utf-8")
    imported(day, path)


@then(parsers.parse("she is told that the file has {count:d} problems and nothing was "
                    "imported"))
def told_problems(day: Day, count: int) -> None:
    path = day.folder / "bad.csv"
    assert day.summary == f"{path}: {count} problems, nothing was imported."
    assert len(day.problems) == count


@then(parsers.parse("she sees the problems of lines {first:d} and {second:d}"))
def problem_lines(day: Day, first: int, second: int) -> None:
    assert [p.split(":")[0] for p in day.problems] == [f"line {first}", f"line {second}"]


@then("the participant's diary is still empty")
def diary_empty(day: Day) -> None:
    async def step(app: TrialkitApp, pilot: Pilot[None]) -> None:
        await press(pilot, "o")
        await wait_for(pilot, OutcomesDialog)
        rows = table_rows(app, "#outcomes-table")
        assert all(r[4] == "0" for r in rows), rows  # days recorded, every window

    day.as_user("tess", step, participants=True)


# --- the pharmacist ------------------------------------------------------------------------


@when("the pharmacist opens the queue")
def open_queue(day: Day) -> None:
    async def step(app: TrialkitApp, pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, DispenseQueueScreen)  # the pharmacist's home screen
        day.outcomes = {"queue": list(table_rows(app, "#queue"))}

    day.as_user("phil", step)


@then(parsers.parse("she sees the participant weighing {kg} kg waiting"))
def waiting(day: Day, kg: str) -> None:
    rows = day.outcomes["queue"]
    assert [r[1] for r in rows] == [day.pid]  # type: ignore[index]
    assert rows[0][3] == f"{kg} kg"  # type: ignore[index]


@when("the pharmacist prepares the infusion")
def prepared(day: Day) -> None:
    async def step(app: TrialkitApp, pilot: Pilot[None]) -> None:
        await press(pilot, "o")
        assert isinstance(app.screen, PasswordDialog)
        app.screen.query_one("#key-password", Input).value = PASSWORD
        await press(pilot, "enter")
        await wait_for(pilot, PreparationScreen)
        for dose in PROTOCOL.dosing.preparations:
            app.screen.query_one(f"#lot-{dose.id}", Input).value = "KT2403-17"
        app.screen.query_one("#checker", Input).value = "pia"
        app.screen.query_one("#checker-password", Input).value = PASSWORD
        await pilot.press("ctrl+s")  # not settle(): the recording worker ends as its screen closes
        await wait_for(pilot, LabelPreviewDialog)
        await settle(pilot)
        day.previews.append(str(app.screen.query_one("#label-preview-text", Static).render()))
        await press(pilot, "enter")
        assert table_rows(app, "#queue") == []

    day.as_user("phil", step)


@then("the labels are saved in the labels folder")
def labels_saved(day: Day) -> None:
    assert (day.folder / f"labels-{day.pid}.pdf").read_bytes().startswith(b"%PDF")


@then(parsers.parse('the label preview says "{first}" and "{second}"'))
def preview_says_both(day: Day, first: str, second: str) -> None:
    assert first in day.previews[-1].splitlines() and second in day.previews[-1]


@then("the label preview shows every word the labels' PDF prints")
def preview_is_the_pdf(day: Day) -> None:
    pdf = (day.folder / f"labels-{day.pid}.pdf").read_bytes()
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages]
    blocks = day.previews[-1].split("\n\n")
    assert len(blocks) == len(pages)
    for block, page in zip(blocks, pages, strict=True):
        assert Counter(block.split()) == Counter(page.split())


@when("she prints the labels again")
def reprinted(day: Day) -> None:
    async def step(app: TrialkitApp, pilot: Pilot[None]) -> None:
        await press(pilot, "l")
        assert isinstance(app.screen, ReprintDialog)
        app.screen.query_one("#reprint-pid", Input).value = day.pid
        await press(pilot, "enter")
        await wait_for(pilot, LabelPreviewDialog)
        await settle(pilot)
        day.previews.append(str(app.screen.query_one("#label-preview-text", Static).render()))
        await press(pilot, "enter", "escape")
        assert isinstance(app.screen, HomeScreen)

    day.as_user("phil", step)


@then(parsers.parse('the label preview now says "{words}"'))
def preview_says(day: Day, words: str) -> None:
    assert words in day.previews[-1]


@then("her home names the sites she serves as all of them, SHS and TWH")
def home_sites(day: Day) -> None:
    assert "Sites: all (SHS, TWH)" in day.shown[-1]


@then("nothing she saw outside the envelope names a treatment")
def pharmacist_blinded(day: Day) -> None:
    """No arm's name, description or product (the home's trial title names the study
    drug, and the label's product line names every arm alike: neither tells an arm)."""
    said = {a.name for a in PROTOCOL.arms} | {a.description for a in PROTOCOL.arms}
    said |= {t for prep in PROTOCOL.dosing.preparations for t in prep.products.values()}
    for text in [*day.shown, *day.previews]:
        assert not [s for s in said if s in text.replace(BLINDED_PRODUCT, "")], text
    for text in day.previews:
        assert arm_words(text.replace(BLINDED_PRODUCT, "")) == [], text
