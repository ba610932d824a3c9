"""The labels folder as a protocol setting (issue 15: "a configurable folder (protocol or
environment)"): a trial whose protocol says ``[labels] folder`` saves its labels there; the
environment's TRIALKIT_LABEL_DIR overrides it; the path is shown after printing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from textual.pilot import Pilot
from textual.widgets import Input, Static

from tests.builders import ready_to_randomize
from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock, add_user
from tests.tui.conftest import app_for, press, screen_text, settle, sign_in
from trialkit.domain.protocol import load_protocol, protocol_from_text
from trialkit.domain.roles import Role
from trialkit.render.labels import label_folder
from trialkit.services.actor import Actor
from trialkit.services.administration.setup import initialize
from trialkit.services.enrolment.participants import randomize
from trialkit.store.db import make_engine, transaction
from trialkit.tui.dialogs.labels import LabelPreviewDialog
from trialkit.tui.dialogs.password import PasswordDialog
from trialkit.tui.dialogs.reprint import ReprintDialog
from trialkit.tui.screens.dispense_queue import DispenseQueueScreen
from trialkit.tui.screens.preparation import PreparationScreen


@pytest.fixture
def protocol_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "pharmacy labels"
    folder.mkdir()
    return folder


@pytest.fixture
def engine(db_url: str, clock: SteppingClock, protocol_folder: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """KetHead with one line added to its [labels] table: the folder."""
    monkeypatch.delenv("TRIALKIT_LABEL_DIR", raising=False)
    text = KETHEAD.read_text(encoding="utf-8").replace(
        "[labels]\n", f'[labels]\nfolder = "{protocol_folder}"\n', 1)
    eng = make_engine(db_url, must_exist=False)
    initialize(eng, protocol_from_text(text, "kethead.toml"), admin=ADMIN,
               admin_password=PASSWORD, training=False, clock=clock)
    yield eng
    eng.dispose()


@pytest.fixture
def randomized(engine: Engine, enrolling: dict[str, Actor], admin: Actor,
               clock: SteppingClock) -> str:
    add_user(engine, admin, clock, "pia", Role.PHARMACIST)
    v = ready_to_randomize(engine, enrolling["cora"], clock, site="TWH")
    with transaction(engine) as s:
        randomize(s, enrolling["cora"], v.id, clock=clock)
    return v.id


def test_the_environment_overrides_the_protocol_which_overrides_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIALKIT_LABEL_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert label_folder(None) == tmp_path
    assert label_folder("/srv/labels") == Path("/srv/labels")
    monkeypatch.setenv("TRIALKIT_LABEL_DIR", "/mnt/printer")
    assert label_folder("/srv/labels") == Path("/mnt/printer")
    assert label_folder(None) == Path("/mnt/printer")


def test_the_kethead_protocol_names_no_folder() -> None:
    """Saved where the pharmacist works unless the sponsor's protocol says otherwise."""
    assert load_protocol(KETHEAD).protocol.labels.folder is None


async def prepare(pilot: Pilot[None]) -> None:
    await press(pilot, "o")
    assert isinstance(pilot.app.screen, PasswordDialog)
    pilot.app.screen.query_one("#key-password", Input).value = PASSWORD
    await press(pilot, "enter")
    assert isinstance(pilot.app.screen, PreparationScreen)


async def record(pilot: Pilot[None]) -> None:
    screen = pilot.app.screen
    for dose in load_protocol(KETHEAD).protocol.dosing.preparations:
        screen.query_one(f"#lot-{dose.id}", Input).value = "KT2403-17"
    screen.query_one("#checker", Input).value = "pia"
    screen.query_one("#checker-password", Input).value = PASSWORD
    await pilot.press("ctrl+s")
    for _ in range(400):  # not settle(): the recording worker ends as its screen closes
        if isinstance(pilot.app.screen, LabelPreviewDialog):
            break
        await pilot.pause(0.05)
    assert isinstance(pilot.app.screen, LabelPreviewDialog)
    await settle(pilot)


async def test_labels_go_to_the_protocols_folder_and_the_preview_says_where(
    engine: Engine, randomized: str, clock: SteppingClock, protocol_folder: Path
) -> None:
    saved = protocol_folder / f"labels-{randomized}.pdf"
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "phil")
        assert isinstance(app.screen, DispenseQueueScreen)
        await prepare(pilot)
        assert app.screen.query_one("#labels-path", Input).value == str(saved)
        await record(pilot)
        assert saved.read_bytes().startswith(b"%PDF")
        shown = app.screen.query_one("#labels-saved", Static).render()
        assert str(shown) == f"Written to {saved}"
        # at 80x24 the labels scroll and the path and Close stay on screen
        text = " ".join(screen_text(app).split())
        assert "Written to" in text and saved.name in text and "Close" in text
        await press(pilot, "escape")
        # a reprint without a file name goes to the same folder, and the dialog says so
        await press(pilot, "l")
        assert isinstance(app.screen, ReprintDialog)
        assert str(protocol_folder) in app.screen.query_one("#reprint-path", Input).placeholder
        saved.unlink()
        await press(pilot, "enter")
        assert isinstance(app.screen, LabelPreviewDialog)
        assert saved.read_bytes().startswith(b"%PDF")
        shown = app.screen.query_one("#labels-saved", Static).render()
        assert str(shown) == f"Written to {saved}"


async def test_trialkit_label_dir_overrides_the_protocols_folder(
    engine: Engine, randomized: str, clock: SteppingClock, protocol_folder: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = tmp_path / "from the environment"
    elsewhere.mkdir()
    monkeypatch.setenv("TRIALKIT_LABEL_DIR", str(elsewhere))
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await sign_in(pilot, "phil")
        await prepare(pilot)
        saved = elsewhere / f"labels-{randomized}.pdf"
        assert app.screen.query_one("#labels-path", Input).value == str(saved)
        await record(pilot)
        assert saved.read_bytes().startswith(b"%PDF")
    assert list(protocol_folder.iterdir()) == []
