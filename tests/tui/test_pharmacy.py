"""The pharmacist's dispense queue: blinded queue, the password to open an envelope, the
UNBLINDED panel, recording a preparation (checker, lots, labels), blinded label text, and
emergency unblinding (a reason required, the arm in the dialog only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select
from textual.pilot import Pilot
from textual.widgets import Input, Static

from tests.builders import ready_to_randomize
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
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.sign_in import login
from trialkit.services.enrolment.participants import randomize
from trialkit.services.pharmacy.dispensing import dispense
from trialkit.services.pharmacy.preparations import current_preparation
from trialkit.store.db import read_only, transaction
from trialkit.store.models import AuditEvent, Preparation, User
from trialkit.tui.dialogs.labels import LabelPreviewDialog
from trialkit.tui.dialogs.password import PasswordDialog
from trialkit.tui.dialogs.unblind import UnblindDialog
from trialkit.tui.screens.dispense_queue import DispenseQueueScreen
from trialkit.tui.screens.home import HomeScreen
from trialkit.tui.screens.participants import ParticipantsScreen
from trialkit.tui.screens.preparation import PreparationScreen

ARMS = load_protocol(KETHEAD).protocol.arms
# The label's product line names every arm alike ("KETAMINE OR PLACEBO"): blinded.
BLINDED_PRODUCT = load_protocol(KETHEAD).protocol.labels.product.upper()


@pytest.fixture
def randomized(engine: Engine, enrolling: dict[str, Actor], admin: Actor,
               clock: SteppingClock) -> str:
    """One randomized participant at TWH, and a second pharmacist (pia) to check."""
    add_user(engine, admin, clock, "pia", Role.PHARMACIST)
    v = ready_to_randomize(engine, enrolling["cora"], clock, site="TWH")
    with transaction(engine) as s:
        randomize(s, enrolling["cora"], v.id, clock=clock)
    return v.id


def names_an_arm(text: str) -> bool:
    return any(a.name in text for a in ARMS) or bool(arm_words(text))


async def open_envelope(pilot: Pilot[None], password: str) -> None:
    """From the queue: o, the password, Enter."""
    await press(pilot, "o")
    assert isinstance(pilot.app.screen, PasswordDialog)
    pilot.app.screen.query_one("#key-password", Input).value = password
    await press(pilot, "enter")


def fill(pilot: Pilot[None], **values: str) -> None:
    for field, value in values.items():
        pilot.app.screen.query_one(f"#{field}", Input).value = value


async def test_queue_shows_the_randomized_participant_blinded(
    engine: Engine, randomized: str, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "phil")
        assert isinstance(app.screen, DispenseQueueScreen)
        rows = table_rows(app, "#queue")
        assert [r[1] for r in rows] == [randomized]
        assert rows[0][3] == "70 kg"
        assert not names_an_arm(screen_text(app))


async def test_wrong_password_is_refused(
    engine: Engine, randomized: str, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "phil")
        await open_envelope(pilot, "not-my-password")
        assert isinstance(app.screen, DispenseQueueScreen)
        assert notifications(app)
        assert "UNBLINDED" not in screen_text(app)


async def test_right_password_shows_the_unblinded_panel_and_recording_empties_the_queue(
    engine: Engine, randomized: str, clock: SteppingClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The labels go to TRIALKIT_LABEL_DIR unless another file is named; the preview says
    where, and shows the label's words (the product line too)."""
    monkeypatch.setenv("TRIALKIT_LABEL_DIR", str(tmp_path))
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await sign_in(pilot, "phil")
        await open_envelope(pilot, PASSWORD)
        assert isinstance(app.screen, PreparationScreen)
        text = screen_text(app)
        assert "UNBLINDED — pharmacy only" in text
        assert any(f"Arm: {a.name} ({a.code})" in text for a in ARMS)
        saved = tmp_path / f"labels-{randomized}.pdf"
        assert app.screen.query_one("#labels-path", Input).value == str(saved)
        prep_ids = [p.id for p in load_protocol(KETHEAD).protocol.dosing.preparations]
        fill(pilot, checker="pia", **{"checker-password": PASSWORD})
        fill(pilot, **{f"lot-{p}": "KT2403-17" for p in prep_ids})
        await pilot.press("ctrl+s")
        for _ in range(400):  # not settle(): the recording worker ends as its screen closes
            if isinstance(app.screen, LabelPreviewDialog):
                break
            await pilot.pause(0.05)
        assert isinstance(app.screen, LabelPreviewDialog)
        await settle(pilot)
        assert saved.read_bytes().startswith(b"%PDF")
        preview = screen_text(app)
        assert "As printed (blinded)" in preview and "Original print" in preview
        assert "KETAMINE OR PLACEBO" in preview
        shown = app.screen.query_one("#labels-saved", Static).render()
        assert str(shown) == f"Written to {saved}"
        assert "UNBLINDED" not in preview and "KT2403" not in preview
        assert not any(a.name in preview for a in ARMS)
        await press(pilot, "escape")
        assert isinstance(app.screen, DispenseQueueScreen)
        assert table_rows(app, "#queue") == []


async def test_a_burst_of_keys_fills_the_preparation_form_field_by_field(
    engine: Engine, randomized: str, clock: SteppingClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys typed faster than the app handles them (a browser sends them in batches): each
    Enter moves on at once, so every value lands in its own field."""
    from textual import events

    monkeypatch.setenv("TRIALKIT_LABEL_DIR", str(tmp_path))
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await sign_in(pilot, "phil")
        await open_envelope(pilot, PASSWORD)
        assert isinstance(app.screen, PreparationScreen)
        labels_path = app.screen.query_one("#labels-path", Input).value
        burst = [*"K2403-117", "enter", *"K2403-118", "enter", *"pia", "enter", *"half"]
        for key in burst:
            app.post_message(events.Key(key, "\r" if key == "enter" else key))
        await settle(pilot)
        values = {f.id: f.value for f in app.screen.query(Input)}
        assert (values["lot-bolus"], values["lot-infusion"]) == ("K2403-117", "K2403-118")
        assert (values["checker"], values["checker-password"]) == ("pia", "half")
        assert values["labels-path"] == labels_path  # untouched


async def test_checker_cannot_be_the_preparer(
    engine: Engine, randomized: str, clock: SteppingClock, tmp_path: Path
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await sign_in(pilot, "phil")
        await open_envelope(pilot, PASSWORD)
        prep_ids = [p.id for p in load_protocol(KETHEAD).protocol.dosing.preparations]
        fill(pilot, checker="phil", **{"labels-path": str(tmp_path / "l.pdf"),
                                       "checker-password": PASSWORD})
        fill(pilot, **{f"lot-{p}": "KT2403-17" for p in prep_ids})
        await press(pilot, "ctrl+s")
        assert isinstance(app.screen, PreparationScreen)
        assert any("cannot also check it" in n for n in notifications(app))
        assert not (tmp_path / "l.pdf").exists()


async def test_the_checker_signs_with_a_password_of_their_own(
    engine: Engine, randomized: str, clock: SteppingClock, tmp_path: Path
) -> None:
    """The form's second password field: empty, it asks for it; wrong, pia's failed sign-in
    is counted and nothing is recorded; right, the preparation records the signed check."""
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await sign_in(pilot, "phil")
        await open_envelope(pilot, PASSWORD)
        assert app.screen.query_one("#checker-password", Input).password  # not echoed
        prep_ids = [p.id for p in load_protocol(KETHEAD).protocol.dosing.preparations]
        fill(pilot, checker="pia", **{"labels-path": str(tmp_path / "l.pdf")})
        fill(pilot, **{f"lot-{p}": "KT2403-17" for p in prep_ids})
        await press(pilot, "ctrl+s")
        assert isinstance(app.screen, PreparationScreen)
        assert any("pia signs the check: they type their password" in n
                   for n in notifications(app))
        fill(pilot, **{"checker-password": "not-pias-password"})
        await press(pilot, "ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, PreparationScreen)
        assert any("the check by pia is not signed: wrong password" in n
                   for n in notifications(app))
        assert app.screen.query_one("#checker-password", Input).value == ""
        assert not (tmp_path / "l.pdf").exists()
        with read_only(engine) as s:
            assert s.exec(select(User).where(User.name == "pia")).one().failed_logins == 1
            last = s.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
            assert last is not None and (last.action, last.user_name) == ("login.fail", "pia")
        fill(pilot, **{"checker-password": PASSWORD})
        await pilot.press("ctrl+s")
        for _ in range(400):  # not settle(): the recording worker ends as its screen closes
            if isinstance(app.screen, LabelPreviewDialog):
                break
            await pilot.pause(0.05)
        assert isinstance(app.screen, LabelPreviewDialog)
    with read_only(engine) as s:
        prep = current_preparation(s, randomized)
        assert prep is not None and (prep.checked_by, prep.checked_at) == ("pia", clock.now())


async def test_an_expired_preparation_is_prepared_again_with_a_reason(
    engine: Engine, randomized: str, enrolling: dict[str, Actor], admin: Actor,
    clock: SteppingClock, tmp_path: Path,
) -> None:
    """The queue lists the expired preparation; "prepare again" opens the envelope, asks why
    and records the new preparation, whose labels say the earlier ones are void."""
    prep_ids = [p.id for p in load_protocol(KETHEAD).protocol.dosing.preparations]
    lots = {p: "KT2403-17" for p in prep_ids}
    with transaction(engine) as s:
        phil = login(s, "phil", PASSWORD, clock=clock)
        dispense(s, phil, randomized, password=PASSWORD, clock=clock, lots=lots,
                 checked_by="pia", checker_password=PASSWORD)
    clock.advance(hours=load_protocol(KETHEAD).protocol.dosing.expiry_hours, minutes=1)
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await sign_in(pilot, "phil")
        assert isinstance(app.screen, DispenseQueueScreen)
        assert [r[1] for r in table_rows(app, "#queue")] == [randomized]
        text = " ".join(screen_text(app).split())  # the detail line wraps
        assert "1 to prepare again (expired)" in text and "Press a to prepare it again" in text
        await press(pilot, "a")
        assert isinstance(app.screen, PasswordDialog)
        app.screen.query_one("#key-password", Input).value = PASSWORD
        await press(pilot, "enter")
        assert isinstance(app.screen, PreparationScreen)
        text = " ".join(screen_text(app).split())
        assert "Preparing again: preparation 1" in text and "become void" in text
        assert "UNBLINDED — pharmacy only" in text
        fill(pilot, checker="pia", **{"labels-path": str(tmp_path / "again.pdf"),
                                      "checker-password": PASSWORD})
        fill(pilot, **{f"lot-{p}": "KT2403-18" for p in prep_ids})
        await press(pilot, "ctrl+s")
        assert isinstance(app.screen, PreparationScreen)
        assert any("Say why it is prepared again" in n for n in notifications(app))
        fill(pilot, reason="expired before the infusion",
             **{"checker-password": PASSWORD})
        await pilot.press("ctrl+s")
        for _ in range(400):  # not settle(): the recording worker ends as its screen closes
            if isinstance(app.screen, LabelPreviewDialog):
                break
            await pilot.pause(0.05)
        assert isinstance(app.screen, LabelPreviewDialog)
        await settle(pilot)
        # the whole preview (it scrolls), less the protocol's wording that names every arm
        preview = str(app.screen.query_one("#label-preview-text", Static).render())
        assert "PREP 2: EARLIER VOID" in preview
        assert not names_an_arm(preview.replace(BLINDED_PRODUCT, ""))
        await press(pilot, "escape")
        assert isinstance(app.screen, DispenseQueueScreen)
        assert table_rows(app, "#queue") == []
    with read_only(engine) as s:
        old, new = s.exec(select(Preparation).where(Preparation.participant_id == randomized)
                          .order_by(col(Preparation.number))).all()
        assert (old.void_reason, old.voided_by, new.number, new.voided_at) == (
            "expired before the infusion", "phil", 2, None)


async def test_coordinator_never_sees_the_pharmacy_keys(
    engine: Engine, randomized: str, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "cora")
        assert isinstance(app.screen, HomeScreen)
        ids = {a.binding.id for a in app.screen.active_bindings.values() if a.enabled}
        assert "dispense-queue" not in ids
        await press(pilot, "d")
        assert isinstance(app.screen, HomeScreen)
        await press(pilot, "p")
        assert isinstance(app.screen, ParticipantsScreen)
        ids = {a.binding.id for a in app.screen.active_bindings.values() if a.enabled}
        assert not ids & {"emergency-unblind", "open-envelope", "reprint-labels"}
        await press(pilot, "u")
        assert isinstance(app.screen, ParticipantsScreen)


async def test_unblinding_needs_a_reason_and_shows_the_arm_in_the_dialog_only(
    engine: Engine, randomized: str, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await sign_in(pilot, "phil")
        await press(pilot, "u")
        assert isinstance(app.screen, UnblindDialog)
        fill(pilot, **{"unblind-password": PASSWORD})
        await press(pilot, "enter")
        assert "A reason is required" in screen_text(app)
        assert not names_an_arm(screen_text(app))
        fill(pilot, **{"unblind-reason": "anaphylaxis"})
        await press(pilot, "enter")
        await settle(pilot)
        assert "UNBLINDED — you only" in screen_text(app)
        assert any(a.name in screen_text(app) for a in ARMS)
        # done: Close only (a Cancel beside it would cancel nothing)
        assert "Close" in screen_text(app) and "Cancel" not in screen_text(app)
        await press(pilot, "enter")
        assert isinstance(app.screen, DispenseQueueScreen)
        assert not any(a.name in screen_text(app) for a in ARMS)


async def test_pharmacist_can_unblind_from_the_participants_screen(
    engine: Engine, randomized: str, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "phil")
        await press(pilot, "escape", "p")
        assert isinstance(app.screen, ParticipantsScreen)
        await press(pilot, "u")
        assert isinstance(app.screen, UnblindDialog)
        assert not names_an_arm(screen_text(app))
