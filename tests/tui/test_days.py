"""A coordinator's and a pharmacist's whole day, in the TUI only (no CLI, no service call
between the steps): screen, consent, import the baseline diary, randomize, plan the
infusion; the pharmacist opens the envelope, records the checked preparation and reads
the labels; the coordinator records the infusion, imports the first window's diary and
reads the outcomes. Expected numbers come from the protocol's words (KetHead: a headache
day lasts 4 hours or more, or needed acute medication; headache days per 28 days are
the count scaled to 28 days from the days recorded, one decimal), counted here from the
files written, never from the code under test. Nothing shown names an arm."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from tests.conftest import KETHEAD, PASSWORD, SteppingClock, add_user
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
from tests.tui.test_screening import answer_all, fill
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.tui.app import TrialkitApp
from trialkit.tui.dialogs.confirm import ConfirmDialog
from trialkit.tui.dialogs.consent import ConsentDialog
from trialkit.tui.dialogs.diary_import import DiaryImportDialog, ImportProblemsDialog
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

PROTOCOL = load_protocol(KETHEAD).protocol
HEADER = "participant_id,date,headache,severity,duration_hours,acute_medication\n"
BLINDED_PRODUCT = PROTOCOL.labels.product.upper()  # names every arm alike


def diary_file(path: Path, pid: str, first: date, days: list[tuple[float, bool]]) -> int:
    """A diary CSV of consecutive days from ``first``: (hours of headache, acute
    medication) per day. Returns the headache days by the protocol's words: 4 hours or
    more, or acute medication taken."""
    rows = []
    for i, (hours, acute) in enumerate(days):
        on = first + timedelta(days=i)
        if hours:
            rows.append(f"{pid},{on},yes,moderate,{hours:g},{'yes' if acute else 'no'}")
        else:
            rows.append(f"{pid},{on},no,none,0,no")
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    return sum(1 for hours, acute in days if hours >= 4 or (hours and acute))


async def wait_for(pilot: Pilot[None], kind: type) -> None:
    """Until the screen on top is a ``kind`` (a worker's answer may open it)."""
    for _ in range(200):
        if isinstance(pilot.app.screen, kind):
            return
        await pilot.pause(0.05)
    raise AssertionError(f"{kind.__name__} never opened; on {pilot.app.screen!r}")


async def import_diary(pilot: Pilot[None], path: Path) -> None:
    await press(pilot, "m")
    assert isinstance(pilot.app.screen, DiaryImportDialog)
    pilot.app.screen.query_one("#import-path", Input).value = str(path)
    await press(pilot, "enter")
    await settle(pilot)


def seen(app: TrialkitApp, texts: list[str]) -> None:
    texts.append(screen_text(app))


@pytest.fixture
def staffed(engine: Engine, admin: Actor, clock: SteppingClock) -> None:
    """The day's people: tess (coordinator, TWH), phil and pia (pharmacists), sealed lists
    made in the TUI's allocation screen elsewhere; here by the admin's service."""
    from tests.builders import seal

    add_user(engine, admin, clock, "tess", Role.COORDINATOR, sites=["TWH"])
    add_user(engine, admin, clock, "phil", Role.PHARMACIST)
    add_user(engine, admin, clock, "pia", Role.PHARMACIST)
    seal(engine, admin, clock, per_stratum=4)


async def coordinator_enrols(app: TrialkitApp, pilot: Pilot[None], clock: SteppingClock,
                             folder: Path, shown: list[str]) -> tuple[str, int]:
    """Screen, consent, import 28 baseline days, randomize, plan the infusion. Returns
    the participant and their baseline headache days."""
    await sign_in(pilot, "tess")
    await press(pilot, "p", "n")
    form = app.screen
    assert isinstance(form, ScreeningScreen)
    fill(form, weight="82.5")
    answer_all(form)
    await press(pilot, "ctrl+s")
    assert isinstance(app.screen, ParticipantsScreen)
    pid = "TWH-001"
    assert any(n.startswith(f"Screened {pid}") for n in notifications(app))
    assert table_rows(app, "#participants")[0][:3] == [pid, "TWH-CM", "eligible"]
    # nothing but consent and withdrawal is offered to an eligible participant
    await press(pilot, "i")
    assert isinstance(app.screen, ParticipantsScreen)
    assert any("the infusion is recorded once the pharmacy" in n for n in notifications(app))
    await press(pilot, "c")
    assert isinstance(app.screen, ConsentDialog)
    await press(pilot, "enter")
    consent_day = clock.now().date()
    assert table_rows(app, "#participants")[0][2] == "consented"
    # 28 days later: the baseline diary (14 days of 6 h, 3 days of 2 h with acute
    # medication, 2 days of 3 h without: 17 headache days of 28)
    clock.advance(days=28)
    days = [(6.0, False)] * 14 + [(2.0, True)] * 3 + [(3.0, False)] * 2 + [(0.0, False)] * 9
    baseline = diary_file(folder / "baseline.csv", pid, consent_day, days)
    assert baseline == 17
    # a file with a bad line is refused whole, each problem with its line
    bad = folder / "bad.csv"
    bad.write_text(HEADER + f"{pid},{consent_day},yes,moderate,6,no\n"
                   f"{pid},2026-02-30,yes,moderate,6,no\nXXX-999,{consent_day},no,none,0,no\n",
                   encoding="utf-8")
    await import_diary(pilot, bad)
    await wait_for(pilot, ImportProblemsDialog)
    problems = str(app.screen.query_one("#import-problems-text", Static).render())
    assert problems.splitlines()[0].startswith("line 3:")
    assert problems.splitlines()[1].startswith("line 4:")
    summary = str(app.screen.query_one("#import-summary", Static).render())
    assert summary == f"{bad}: 2 problems, nothing was imported."
    await press(pilot, "enter")
    await import_diary(pilot, folder / "baseline.csv")
    assert any(n.startswith(f"Imported 28 diary days of 1 participants from {folder}")
               for n in notifications(app))
    await press(pilot, "r")
    assert isinstance(app.screen, ConfirmDialog)
    await press(pilot, "enter")
    await wait_for(pilot, RandomizedDialog)
    seen(app, shown)
    await press(pilot, "enter")
    assert table_rows(app, "#participants")[0][2:4] == ["randomized", "R0001"]
    await press(pilot, "s")
    assert isinstance(app.screen, ScheduleDialog)
    assert app.screen.query_one("#planned-date", Input).value == clock.now().date().isoformat()
    await press(pilot, "enter")
    await settle(pilot)
    assert f"{pid}: infusion planned for {clock.now().date()}." in notifications(app)
    # not yet prepared: the infusion is greyed out, with the reason
    await press(pilot, "i")
    assert isinstance(app.screen, ParticipantsScreen)
    assert (f"{pid} is randomized: the infusion is recorded once the pharmacy has "
            "prepared it (dispensed)." in notifications(app))
    seen(app, shown)
    return pid, baseline


async def pharmacist_prepares(app: TrialkitApp, pilot: Pilot[None], pid: str, folder: Path,
                              shown: list[str]) -> None:
    """Queue, envelope, the checked preparation, the labels and a reprint."""
    await sign_in(pilot, "phil")
    assert isinstance(app.screen, DispenseQueueScreen)
    rows = table_rows(app, "#queue")
    assert [r[1] for r in rows] == [pid]
    assert rows[0][3] == "82.5 kg"
    seen(app, shown)
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
    written = folder / f"labels-{pid}.pdf"
    assert written.read_bytes().startswith(b"%PDF")
    preview = str(app.screen.query_one("#label-preview-text", Static).render())
    assert BLINDED_PRODUCT in preview and pid in preview and "Original print" in preview
    shown.append(preview.replace(BLINDED_PRODUCT, ""))
    await press(pilot, "enter")
    assert table_rows(app, "#queue") == []
    await press(pilot, "l")
    assert isinstance(app.screen, ReprintDialog)
    await press(pilot, "enter")
    await wait_for(pilot, LabelPreviewDialog)
    await settle(pilot)
    preview = str(app.screen.query_one("#label-preview-text", Static).render())
    assert "REPRINT 1" in preview
    shown.append(preview.replace(BLINDED_PRODUCT, ""))
    await press(pilot, "enter", "escape")
    assert isinstance(app.screen, HomeScreen)
    assert "Sites: all (SHS, TWH)" in screen_text(app)


async def test_a_coordinators_and_a_pharmacists_day_in_the_tui(
    engine: Engine, staffed: None, clock: SteppingClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIALKIT_LABEL_DIR", str(tmp_path))
    shown: list[str] = []
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        pid, baseline = await coordinator_enrols(app, pilot, clock, tmp_path, shown)
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await pharmacist_prepares(app, pilot, pid, tmp_path, shown)
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await sign_in(pilot, "tess")
        await press(pilot, "p")
        assert table_rows(app, "#participants")[0][2] == "dispensed"
        await press(pilot, "i")
        assert isinstance(app.screen, InfuseDialog)
        await press(pilot, "enter")
        await settle(pilot)
        day0 = clock.now().date()
        assert f"{pid}: infused on {day0} (study day 0)." in notifications(app)
        assert table_rows(app, "#participants")[0][2] == "infused"
        await press(pilot, "s")  # planning is over once infused
        assert isinstance(app.screen, ParticipantsScreen)
        assert any("is infused: the infusion day is planned" in n for n in notifications(app))
        # the first window: 21 of its 28 days recorded, 7 headache days (and 2 days of a
        # short headache without medication, which do not count)
        clock.advance(days=30)
        days = [(5.0, False)] * 6 + [(1.0, True)] + [(2.0, False)] * 2 + [(0.0, False)] * 12
        first = diary_file(tmp_path / "d1-28.csv", pid, day0 + timedelta(days=1), days)
        assert first == 7
        await import_diary(pilot, tmp_path / "d1-28.csv")
        assert any(n.startswith("Imported 21 diary days") for n in notifications(app))
        await press(pilot, "o")
        await wait_for(pilot, OutcomesDialog)
        rows = {r[0]: r for r in table_rows(app, "#outcomes-table")}
        per_28 = round(first * 28 / 21, 1)  # 9.3: the protocol's proration, one decimal
        assert rows["BASELINE"][4:6] == ["28", str(baseline)]
        assert rows["BASELINE"][8] == f"{baseline:.1f}"
        assert rows["D1-28 *"][4:6] == ["21", str(first)]
        assert rows["D1-28 *"][8:10] == [f"{per_28:.1f}", f"{per_28 - baseline:.1f}"]
        assert rows["D29-56"][8] == "-"  # nothing recorded yet: missing, never zero
        seen(app, shown)
        assert app.screen.query_one("#outcomes-table", DataTable).row_count == len(
            PROTOCOL.diary.windows)
    for text in shown:
        assert arm_words(text) == [], text
