"""The investigator's dashboard: counts per site and CONSORT, locking (confirmed) and the
blinded export with its progress bar."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from textual.pilot import Pilot
from textual.widgets import Button, Input, Select, Static

from tests.builders import ready_to_randomize
from tests.conftest import SteppingClock, add_user
from tests.tui.conftest import app_for, arm_words, press, screen_text, sign_in, table_rows
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.enrolment.participants import randomize
from trialkit.services.integrity.checkpoints import check_checkpoint, read_checkpoint
from trialkit.store.db import read_only, transaction
from trialkit.store.models import AuditEvent
from trialkit.tui.dialogs.confirm import ConfirmDialog
from trialkit.tui.dialogs.export import ExportDialog
from trialkit.tui.screens.dashboard import DashboardScreen


@pytest.fixture
def trial_with_one(engine: Engine, enrolling: dict[str, Actor], admin: Actor,
                   clock: SteppingClock) -> Engine:
    """ivan the investigator, and one participant randomized at TWH."""
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR)
    v = ready_to_randomize(engine, enrolling["cora"], clock, site="TWH")
    with transaction(engine) as s:
        randomize(s, enrolling["cora"], v.id, clock=clock)
    return engine


async def open_dashboard(pilot: Pilot[None]) -> DashboardScreen:
    await sign_in(pilot, "ivan")
    await press(pilot, "i")
    screen = pilot.app.screen
    assert isinstance(screen, DashboardScreen)
    return screen


async def test_dashboard_counts_and_lock(
    trial_with_one: Engine, clock: SteppingClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # where the lock's signed checkpoint goes, as at a terminal
    app = app_for(trial_with_one, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_dashboard(pilot)
        rows = table_rows(app, "#enrolment")
        assert ["TWH", "1"] == [str(c) for c in rows[0][:2]]
        text = screen_text(app)
        assert re.search(r"Randomized \(arms pooled\) +1 ", text)
        # every CONSORT count sits in one column, whatever the label (Completed D1-28 too)
        counts = [line for line in text.splitlines() if re.search(
            r"(Assessed for eligibility|Completed D1-28|Analysed \(ITT\)) +\d+", line)]
        assert len(counts) == 3
        assert len({re.search(r"\d+\s*│?\s*$", line).start() for line in counts}) == 1  # type: ignore[union-attr]
        assert not arm_words(text)
        await press(pilot, "k")
        assert isinstance(app.screen, ConfirmDialog)
        await press(pilot, "enter")
        assert "LOCKED" in screen_text(app)
        ids = {a.binding.id for a in app.screen.active_bindings.values() if a.enabled}
        assert "lock-database" not in ids
    # The lock wrote a signed checkpoint of the trail as locked, as `trialkit lock` does:
    # signed by ivan with the key his sign-in unlocked, counting the lock's own events.
    written = tmp_path / "kethead-lock.checkpoint.json"
    checkpoint = read_checkpoint(written)
    assert (checkpoint.signer, checkpoint.role) == ("ivan", "investigator")
    with read_only(trial_with_one) as s:
        check_checkpoint(s, checkpoint, written.name)  # holds: raises otherwise
        actions = [e.action for e in s.exec(select(AuditEvent).order_by(
            AuditEvent.seq.desc()).limit(2))]  # type: ignore[attr-defined]
        assert actions == ["audit.checkpoint", "trial.lock"]
        assert s.exec(select(AuditEvent).where(AuditEvent.seq == checkpoint.events)
                      ).one().action == "audit.checkpoint"


async def test_export_writes_the_blinded_outcomes(
    trial_with_one: Engine, clock: SteppingClock, tmp_path: Path
) -> None:
    app = app_for(trial_with_one, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_dashboard(pilot)
        await press(pilot, "x")
        assert isinstance(app.screen, ExportDialog)
        app.screen.query_one("#export-path", Input).value = str(tmp_path / "out.csv")
        await press(pilot, "enter")
        message = str(app.screen.query_one("#export-done", Static).render())
        assert "(1 participants)" in message, message
        assert (tmp_path / "out.csv").exists()
        assert (tmp_path / "out.manifest.json").exists()
        # and a signed checkpoint beside it, as `trialkit export` writes one
        assert "Signed checkpoint of the audit trail: out.checkpoint.json" in message
        checkpoint = read_checkpoint(tmp_path / "out.checkpoint.json")
        assert checkpoint.signer == "ivan"
        with read_only(trial_with_one) as s:
            check_checkpoint(s, checkpoint, "out.checkpoint.json")
        # done: one button closes (nothing is left to cancel)
        buttons = [b for b in app.screen.query(Button) if b.display]
        assert [str(b.label) for b in buttons] == ["Close"]
        await press(pilot, "enter")
        assert isinstance(app.screen, DashboardScreen)


async def test_export_offers_the_participants_covariates(
    trial_with_one: Engine, clock: SteppingClock, tmp_path: Path
) -> None:
    app = app_for(trial_with_one, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_dashboard(pilot)
        await press(pilot, "x")
        kind = app.screen.query_one("#export-kind", Select)
        kind.value = "participants"
        await pilot.pause()
        path = app.screen.query_one("#export-path", Input)
        assert path.value == "participants.csv"
        path.value = str(tmp_path / "participants.csv")
        await press(pilot, "enter")
        message = str(app.screen.query_one("#export-done", Static).render())
        assert "Wrote 1 rows (1 participants)" in message, message
        header = (tmp_path / "participants.csv").read_text().splitlines()[0]
        assert header.startswith("participant_id,site,stratum,headache_type,age,sex,weight_kg")


async def test_the_curve_has_whole_number_ticks_and_its_legend_outside_the_plot(
    trial_with_one: Engine, clock: SteppingClock
) -> None:
    """The y axis counts people (whole numbers only), and the legend has a line of its own
    above the plot: plotext's legend, drawn inside the plot's top rows, hid the target line.
    KetHead's target is 28 per site, 56 in all."""
    app = app_for(trial_with_one, clock)
    async with app.run_test(size=(120, 50)) as pilot:
        await open_dashboard(pilot)
        lines = screen_text(app).splitlines()
        ticks = [m.group(1) for line in lines if (m := re.match(r"^\s*(\S+)┤", line))]
        assert ticks and all(re.fullmatch(r"\d+", t) for t in ticks), ticks
        assert "0" in ticks
        legend = [line for line in lines if "target 56" in line]
        assert len(legend) == 1
        assert all(words in legend[0] for words in ("TWH (1 of 28)", "SHS (0 of 28)",
                                                      "All sites (1)"))
        top = next(i for i, line in enumerate(lines) if "┌" in line and "┐" in line)
        bottom = next(i for i, line in enumerate(lines) if "└" in line and "┘" in line)
        assert lines.index(legend[0]) < top
        inside = [line.split("┤" if "┤" in line else "│", 1)[-1] for line in lines[top + 1:bottom]]
        assert not any(re.search(r"[A-Za-z]", line) for line in inside)  # no words on the lines


async def test_no_curve_before_the_first_randomization(
    engine: Engine, enrolling: dict[str, Actor], admin: Actor, clock: SteppingClock
) -> None:
    """No empty axes (plotext's own ticks are fractions): a sentence says why."""
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR)
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 50)) as pilot:
        await open_dashboard(pilot)
        text = screen_text(app)
        assert "Nobody randomized yet" in text
        assert "┤" not in text
