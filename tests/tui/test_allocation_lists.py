"""The admin's allocation lists: seal every stratum (with progress), extend one, see what
is left; never a block size or an arm."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import Engine
from textual.pilot import Pilot
from textual.widgets import Input
from typer.testing import CliRunner

from tests.builders import ready_to_randomize, seal, staff
from tests.conftest import KETHEAD, SteppingClock
from tests.tui.conftest import (
    app_for,
    arm_words,
    notifications,
    press,
    screen_text,
    sign_in,
    table_rows,
)
from trialkit.cli.app import app as cli_app
from trialkit.services.actor import Actor
from trialkit.services.administration.trial import stored_protocol
from trialkit.services.enrolment.participants import randomize
from trialkit.store.db import read_only, transaction
from trialkit.tui.dialogs.design import DesignReviewDialog
from trialkit.tui.dialogs.seal import ExtendDialog, SealDialog
from trialkit.tui.screens.allocation_lists import AllocationListsScreen

STRATA = ["TWH-CM", "TWH-CDH", "SHS-CM", "SHS-CDH"]


async def open_lists(pilot: Pilot[None]) -> AllocationListsScreen:
    """Sign in as the admin and open the allocation lists from home."""
    await sign_in(pilot)
    await press(pilot, "a")
    screen = pilot.app.screen
    assert isinstance(screen, AllocationListsScreen)
    return screen


def counts(pilot: Pilot[None]) -> dict[str, list[object]]:
    """Stratum -> [sealed, used, left, flag]."""
    return {str(r[0]): r[2:] for r in table_rows(pilot.app, "#strata")}


async def test_admin_seals_every_list_with_progress_and_sees_counts(
    engine: Engine, admin: Actor, clock: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff(engine, admin, clock)
    progress: list[tuple[int, int]] = []
    shown = AllocationListsScreen.show_progress

    def spy(screen: AllocationListsScreen, done: int, total: int) -> None:
        progress.append((done, total))
        shown(screen, done, total)

    monkeypatch.setattr(AllocationListsScreen, "show_progress", spy)
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_lists(pilot)
        assert counts(pilot) == {s: [0, 0, 0, "not sealed"] for s in STRATA}
        assert "No list is sealed yet" in screen_text(app)
        assert screen.check_action("extend_list", ()) is False  # nothing to extend yet
        await press(pilot, "s")
        assert isinstance(app.screen, DesignReviewDialog)
        await press(pilot, "enter")  # Continue
        assert isinstance(app.screen, SealDialog)
        app.screen.query_one("#per-stratum", Input).value = "6"
        await press(pilot, "enter")
        assert app.screen is screen
        assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
        assert counts(pilot) == {s: [6, 0, 6, ""] for s in STRATA}
        assert "24 envelopes sealed, 0 used, 24 left" in screen_text(app)
        assert any("Sealed 24 envelopes" in n for n in notifications(app))
        assert not screen.query_one("#seal-progress-row").display
        assert screen.check_action("seal_lists", ()) is False  # sealing happens once


async def test_seal_dialog_wants_a_whole_number(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    staff(engine, admin, clock)
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_lists(pilot)
        await press(pilot, "s", "enter", "enter")
        assert isinstance(app.screen, SealDialog)
        assert "Envelopes per stratum: give a whole number." in screen_text(app)
        await press(pilot, "escape")
        assert counts(pilot)["TWH-CM"] == [0, 0, 0, "not sealed"]


async def test_sealing_before_a_pharmacist_exists_is_refused_as_a_notification(
    engine: Engine, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_lists(pilot)
        await press(pilot, "s", "enter")
        app.screen.query_one("#per-stratum", Input).value = "4"
        await press(pilot, "enter")
        assert app.screen is screen
        assert any("no approved pharmacist yet" in n for n in notifications(app))
        assert counts(pilot)["TWH-CM"] == [0, 0, 0, "not sealed"]


async def test_admin_extends_the_selected_stratum(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=4)
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_lists(pilot)
        await press(pilot, "down", "e")
        assert isinstance(app.screen, DesignReviewDialog)
        await press(pilot, "enter")
        assert isinstance(app.screen, ExtendDialog)
        assert "TWH-CDH has 4 envelopes left" in screen_text(app)
        app.screen.query_one("#extend-count", Input).value = "10"
        await press(pilot, "enter")
        assert counts(pilot) == {
            "TWH-CM": [4, 0, 4, ""], "TWH-CDH": [14, 0, 14, ""],
            "SHS-CM": [4, 0, 4, ""], "SHS-CDH": [4, 0, 4, ""],
        }
        assert any("Extended 10 envelopes (TWH-CDH)" in n for n in notifications(app))


async def test_an_exhausted_stratum_is_flagged(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    cora = staff(engine, admin, clock)["cora"]
    seal(engine, admin, clock, per_stratum=1)
    p = ready_to_randomize(engine, cora, clock, site="SHS", headache_type="CDH")
    with transaction(engine) as s:
        randomize(s, cora, p.id, clock=clock)
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_lists(pilot)
        assert counts(pilot)["SHS-CDH"] == [1, 1, 0, "EXHAUSTED"]
        assert counts(pilot)["SHS-CM"] == [1, 0, 1, ""]
        assert "1 exhausted: extend (e)" in screen_text(app)


async def test_lists_never_show_block_sizes_or_arms(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=10)
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_lists(pilot)
        text = screen_text(app)
        assert arm_words(text) == []
        assert not re.search(r"block", text, re.IGNORECASE)
        await press(pilot, "e")
        # The design report before extending states the protocol's design (issue 14), no
        # arm; past it, the extend dialog shows no block either.
        assert isinstance(app.screen, DesignReviewDialog)
        assert arm_words(screen_text(app)) == []
        await press(pilot, "enter")
        assert isinstance(app.screen, ExtendDialog)
        text = screen_text(app)
        assert arm_words(text) == []
        assert not re.search(r"block", text, re.IGNORECASE)


async def test_the_admin_reads_the_design_report_before_sealing_and_may_cancel(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    """Issue 14: the protocol's design and the figures ``trialkit design report`` prints,
    beside the alternatives; Cancel seals nothing."""
    staff(engine, admin, clock)
    with read_only(engine) as s:
        protocol = stored_protocol(s)
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_lists(pilot)
        await press(pilot, "s")
        dialog = app.screen
        assert isinstance(dialog, DesignReviewDialog)
        text = " ".join(screen_text(app).split())
        # KetHead's protocol: permuted blocks of 4 and 6, 1:1 (protocols/kethead.toml).
        assert "sealed with the protocol's design: permuted blocks (4, 6)" in text
        assert "ratio 1:1" in text
        for label in ("big-stick (MTI 3)", "block urn (lambda 3)", "maximal (MTI 3)",
                      "complete randomization"):
            assert label in text
        # The same figures as the CLI's design report on this trial's protocol.
        done = CliRunner().invoke(cli_app, ["--json", "design", "report", "--protocol",
                                            str(KETHEAD)])
        assert done.exit_code == 0, done.output
        cli = json.loads(done.stdout)
        for row in cli["designs"]:
            line = (f"{row['label']} {row['correct_guess']:.3f} {row['forced']:.3f} "
                    f"{row['expected_max_imbalance']:.2f}")
            assert line in text
        assert protocol.allocation.design.block_sizes == (4, 6)
        assert arm_words(screen_text(app)) == []
        await press(pilot, "escape")
        assert isinstance(app.screen, AllocationListsScreen)
        assert counts(pilot)["TWH-CM"] == [0, 0, 0, "not sealed"]
