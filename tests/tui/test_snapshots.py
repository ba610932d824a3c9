"""SVG snapshots of the main screens at 80x24 (update with ``pytest --snapshot-update``).

Deterministic by construction: SQLite only, the stepping clock, no clock in the header,
seeded lists, and label codes drawn from a fixed sequence instead of ``secrets``."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path

import pytest
from sqlalchemy import Engine
from textual.pilot import Pilot
from textual.widgets import Input, Select

from tests.builders import consented, ready_to_randomize, seal, staff
from tests.conftest import ADMIN, PASSWORD, SteppingClock, add_user
from tests.conftest import sign_in as service_sign_in
from tests.tui.conftest import app_for, press, screened, sign_in
from trialkit.domain.errors import TrialkitError
from trialkit.domain.roles import Role
from trialkit.services.administration.users import create_user, set_disabled
from trialkit.services.enrolment.participants import randomize
from trialkit.services.pharmacy.unblinding import unblind
from trialkit.store.db import transaction
from trialkit.tui.dialogs.diary_import import ImportProblemsDialog
from trialkit.tui.dialogs.labels import LabelPreviewDialog
from trialkit.tui.dialogs.outcomes import OutcomesDialog
from trialkit.tui.screens.audit_review import AuditReviewScreen
from trialkit.tui.screens.dashboard import DashboardScreen
from trialkit.tui.screens.diary import DiaryScreen
from trialkit.tui.screens.dispense_queue import DispenseQueueScreen
from trialkit.tui.screens.home import HomeScreen
from trialkit.tui.screens.participants import ParticipantsScreen
from trialkit.tui.screens.preparation import PreparationScreen
from trialkit.tui.screens.screening import ScreeningScreen
from trialkit.tui.screens.unblindings import UnblindingsScreen
from trialkit.tui.screens.users import UsersScreen
from trialkit.tui.widgets.criterion_row import CriterionRow


@pytest.fixture
def fixed_label_codes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Label codes K000-0001-…, K000-0002-… in order of randomization."""
    numbers = count(1)
    monkeypatch.setattr(
        "trialkit.services.enrolment.participants.new_label_code",
        lambda: f"K000-{next(numbers):04d}-X",
    )
    yield


@pytest.fixture
def enrolled_trial(sqlite_engine: Engine, clock: SteppingClock, fixed_label_codes: None) -> Engine:
    """A few participants at TWH in every state, through the services."""
    admin = service_sign_in(sqlite_engine, ADMIN, clock)
    cora = staff(sqlite_engine, admin, clock)["cora"]
    seal(sqlite_engine, admin, clock, per_stratum=4)
    first = ready_to_randomize(sqlite_engine, cora, clock, site="TWH")
    with transaction(sqlite_engine) as s:
        randomize(s, cora, first.id, clock=clock)
    consented(sqlite_engine, cora, clock, site="TWH", headache_type="CDH")
    screened(sqlite_engine, cora, clock, site="TWH", age=17)
    screened(sqlite_engine, cora, clock, site="TWH")
    return sqlite_engine


def test_home_screen(
    snap_compare: Callable[..., bool], sqlite_engine: Engine, clock: SteppingClock
) -> None:
    async def signed_in(pilot: Pilot[None]) -> None:
        await sign_in(pilot)
        assert isinstance(pilot.app.screen, HomeScreen)

    app = app_for(sqlite_engine, clock)
    assert snap_compare(app, terminal_size=(80, 24), run_before=signed_in)


def test_participants_screen(
    snap_compare: Callable[..., bool], enrolled_trial: Engine, clock: SteppingClock
) -> None:
    async def listed(pilot: Pilot[None]) -> None:
        await sign_in(pilot, "tess")
        await press(pilot, "p")
        assert isinstance(pilot.app.screen, ParticipantsScreen)

    app = app_for(enrolled_trial, clock)
    assert snap_compare(app, terminal_size=(80, 24), run_before=listed)


def test_screening_form_part_filled(
    snap_compare: Callable[..., bool], enrolled_trial: Engine, clock: SteppingClock
) -> None:
    async def part_filled(pilot: Pilot[None]) -> None:
        await sign_in(pilot, "tess")
        await press(pilot, "p", "n")
        form = pilot.app.screen
        assert isinstance(form, ScreeningScreen)
        form.query_one("#age", Input).value = "44"
        form.query_one("#sex", Select).value = "F"
        form.query_one("#weight", Input).value = "68.5"
        form.query_one("#factor-headache_type", Select).value = "CM"
        form.query_one("#criterion-I2_cdh", CriterionRow).focus()
        await press(pilot, "y", "y", "y")  # E01 (pregnancy) answered yes: not eligible

    app = app_for(enrolled_trial, clock)
    assert snap_compare(app, terminal_size=(80, 24), run_before=part_filled)


@pytest.fixture
def pharmacy_trial(enrolled_trial: Engine, clock: SteppingClock) -> Engine:
    """The enrolled trial (one participant randomized) and a second pharmacist, pia."""
    admin = service_sign_in(enrolled_trial, ADMIN, clock)
    add_user(enrolled_trial, admin, clock, "pia", Role.PHARMACIST)
    return enrolled_trial


def test_dispense_queue(
    snap_compare: Callable[..., bool], pharmacy_trial: Engine, clock: SteppingClock
) -> None:
    async def queued(pilot: Pilot[None]) -> None:
        await sign_in(pilot, "phil")
        assert isinstance(pilot.app.screen, DispenseQueueScreen)

    app = app_for(pharmacy_trial, clock)
    assert snap_compare(app, terminal_size=(80, 24), run_before=queued)


def test_blinded_label_preview(
    snap_compare: Callable[..., bool], pharmacy_trial: Engine, clock: SteppingClock,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # labels-<PID>.pdf is written to the label folder, whose full path the preview shows:
    # a fixed one, so the snapshot does not change with pytest's temporary folder
    folder = Path(tempfile.gettempdir()) / "trialkit-snapshot-labels"
    folder.mkdir(exist_ok=True)
    monkeypatch.setenv("TRIALKIT_LABEL_DIR", str(folder))

    async def previewed(pilot: Pilot[None]) -> None:
        await sign_in(pilot, "phil")
        await press(pilot, "o")
        pilot.app.screen.query_one("#key-password", Input).value = PASSWORD
        await press(pilot, "enter")
        assert isinstance(pilot.app.screen, PreparationScreen)
        for field in pilot.app.screen.query(Input):
            if field.id and field.id.startswith("lot-"):
                field.value = "KT2403-17"
        pilot.app.screen.query_one("#checker", Input).value = "pia"
        pilot.app.screen.query_one("#checker-password", Input).value = PASSWORD
        await press(pilot, "ctrl+s")
        assert isinstance(pilot.app.screen, LabelPreviewDialog)

    app = app_for(pharmacy_trial, clock)
    assert snap_compare(app, terminal_size=(80, 24), run_before=previewed)


def test_diary_grid(
    snap_compare: Callable[..., bool], enrolled_trial: Engine, clock: SteppingClock
) -> None:
    async def entering(pilot: Pilot[None]) -> None:
        await sign_in(pilot, "tess")
        await press(pilot, "p", "d")
        assert isinstance(pilot.app.screen, DiaryScreen)
        await press(pilot, "right", "down", "3", "8")

    app = app_for(enrolled_trial, clock)
    assert snap_compare(app, terminal_size=(80, 24), run_before=entering)


def test_dashboard(
    snap_compare: Callable[..., bool], enrolled_trial: Engine, clock: SteppingClock
) -> None:
    admin = service_sign_in(enrolled_trial, ADMIN, clock)
    add_user(enrolled_trial, admin, clock, "ivan", Role.INVESTIGATOR)

    async def dashboard(pilot: Pilot[None]) -> None:
        await sign_in(pilot, "ivan")
        await press(pilot, "i")
        assert isinstance(pilot.app.screen, DashboardScreen)

    app = app_for(enrolled_trial, clock)
    assert snap_compare(app, terminal_size=(80, 24), run_before=dashboard)


def test_audit_review(
    snap_compare: Callable[..., bool], enrolled_trial: Engine, clock: SteppingClock
) -> None:
    """The monitor's review at 120x36: the events, the consent of TWH-001 selected with the
    two fields it changed."""
    admin = service_sign_in(enrolled_trial, ADMIN, clock)
    add_user(enrolled_trial, admin, clock, "mona", Role.MONITOR)

    async def reviewing(pilot: Pilot[None]) -> None:
        await sign_in(pilot, "mona")
        await press(pilot, "l")
        assert isinstance(pilot.app.screen, AuditReviewScreen)
        field = pilot.app.screen.query_one("#audit-participant", Input)
        field.value = "TWH-001"
        field.focus()
        await press(pilot, "enter", "down")

    app = app_for(enrolled_trial, clock)
    assert snap_compare(app, terminal_size=(120, 36), run_before=reviewing)


def test_unblindings(
    snap_compare: Callable[..., bool], enrolled_trial: Engine, clock: SteppingClock
) -> None:
    """The emergency-unblinding report at 120x36: phil's unblinding of TWH-001 and the
    monitor's refused attempt, without an arm."""
    admin = service_sign_in(enrolled_trial, ADMIN, clock)
    add_user(enrolled_trial, admin, clock, "mona", Role.MONITOR)
    phil, mona = (service_sign_in(enrolled_trial, n, clock) for n in ("phil", "mona"))
    with transaction(enrolled_trial) as s:
        unblind(s, phil, "TWH-001", reason="anaphylaxis in the emergency department",
                password=PASSWORD, clock=clock)
    with pytest.raises(TrialkitError), transaction(enrolled_trial) as s:
        unblind(s, mona, "TWH-001", reason="curious", password=PASSWORD, clock=clock)

    async def reading(pilot: Pilot[None]) -> None:
        await sign_in(pilot, "mona")
        await press(pilot, "u")
        assert isinstance(pilot.app.screen, UnblindingsScreen)

    app = app_for(enrolled_trial, clock)
    assert snap_compare(app, terminal_size=(120, 36), run_before=reading)


def test_outcomes_per_window(
    snap_compare: Callable[..., bool], enrolled_trial: Engine, clock: SteppingClock
) -> None:
    async def shown(pilot: Pilot[None]) -> None:
        await sign_in(pilot, "tess")
        await press(pilot, "p", "o")
        await pilot.app.workers.wait_for_complete()
        await press(pilot)
        assert isinstance(pilot.app.screen, OutcomesDialog)

    app = app_for(enrolled_trial, clock)
    assert snap_compare(app, terminal_size=(120, 36), run_before=shown)


def test_refused_diary_file(
    snap_compare: Callable[..., bool], enrolled_trial: Engine, clock: SteppingClock
) -> None:
    # a fixed path: the dialog names the file
    bad = Path(tempfile.gettempdir()) / "trialkit-snapshot-diary.csv"
    rows = [f"TWH-00{i % 9 + 1},2026-02-{i % 28 + 1:02d},maybe,mild,2,no" for i in range(120)]
    bad.write_text("participant_id,date,headache,severity,duration_hours,acute_medication\n"
                   + "\n".join(rows) + "\n", encoding="utf-8")

    async def refused(pilot: Pilot[None]) -> None:
        await sign_in(pilot, "tess")
        await press(pilot, "p", "m")
        pilot.app.screen.query_one("#import-path", Input).value = str(bad)
        await press(pilot, "enter")
        await pilot.app.workers.wait_for_complete()
        await press(pilot)
        assert isinstance(pilot.app.screen, ImportProblemsDialog)

    app = app_for(enrolled_trial, clock)
    assert snap_compare(app, terminal_size=(120, 36), run_before=refused)


def test_users_screen(
    snap_compare: Callable[..., bool], enrolled_trial: Engine, clock: SteppingClock
) -> None:
    """The admin's users at 120x36: staff of every role, a pharmacist pending approval,
    one awaiting enrolment, one disabled."""
    admin = service_sign_in(enrolled_trial, ADMIN, clock)
    add_user(enrolled_trial, admin, clock, "pia", Role.PHARMACIST, sites=["SHS"], approve=False)
    add_user(enrolled_trial, admin, clock, "mona", Role.MONITOR)
    with transaction(enrolled_trial) as s:
        create_user(s, admin, name="nina", role=Role.COORDINATOR, sites=["TWH"],
                    custodian=False, clock=clock)
        set_disabled(s, admin, name="tess", disabled=True, reason="left", clock=clock)

    async def users(pilot: Pilot[None]) -> None:
        await sign_in(pilot)
        await press(pilot, "m")
        assert isinstance(pilot.app.screen, UsersScreen)

    app = app_for(enrolled_trial, clock)
    assert snap_compare(app, terminal_size=(120, 36), run_before=users)
