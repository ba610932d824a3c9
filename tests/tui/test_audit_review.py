"""The audit review screen, driven as a monitor, an investigator and an admin do: the
events, a filter, what the selected event changed, a participant's timeline with the
pharmacy in it, sign-ins on request, verification; blinded throughout, and paged so a long
trail never has to be read whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from textual.widgets import Input, ProgressBar, Static

from tests.conftest import KETHEAD, PASSWORD, SteppingClock, add_user
from tests.tui.conftest import (
    app_for,
    arm_words,
    notifications,
    press,
    screen_text,
    sign_in,
    submit_password,
    table_rows,
)
from tests.tui.test_pharmacy import randomized  # noqa: F401  (fixture)
from trialkit.domain.eligibility import answered_criteria
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.pharmacy.dispensing import dispense
from trialkit.services.pharmacy.unblinding import unblind
from trialkit.store.db import transaction
from trialkit.tui.screens import audit_review
from trialkit.tui.screens.audit_review import AuditReviewScreen
from trialkit.tui.screens.home import HomeScreen

PROTOCOL = load_protocol(KETHEAD).protocol


def public_words_aside(text: str) -> str:
    """The protocol's public words that name the drug set aside: the trial's title and the
    ids of eligibility criteria (E11_ketamine_allergy), the same for every participant."""
    text = text.replace(PROTOCOL.trial.title, "<title>")
    for c in answered_criteria(PROTOCOL):
        text = text.replace(c.id, "<criterion>")
    return text


LOTS = {"bolus": "K2403-117", "infusion": "K2403-118"}


@pytest.fixture
def dispensed(engine: Engine, admin: Actor, enrolling: dict[str, Actor], clock: SteppingClock,
              randomized: str) -> str:  # noqa: F811
    """The randomized participant's envelope opened, the preparation recorded (phil, checked
    by pia), then unblinded in an emergency by phil; mona the monitor added."""
    add_user(engine, admin, clock, "mona", Role.MONITOR)
    with transaction(engine) as s:
        dispense(s, enrolling["phil"], randomized, password=PASSWORD, clock=clock, lots=LOTS,
                 checked_by="pia", checker_password=PASSWORD, print_labels=True)
    with transaction(engine) as s:
        unblind(s, enrolling["phil"], randomized, reason="suspected serious adverse reaction",
                password=PASSWORD, clock=clock)
    return randomized


async def open_review(pilot, who: str) -> AuditReviewScreen:  # type: ignore[no-untyped-def]
    await sign_in(pilot, who)
    assert isinstance(pilot.app.screen, HomeScreen)
    await press(pilot, "l")
    screen = pilot.app.screen
    assert isinstance(screen, AuditReviewScreen)
    return screen


def detail_pane(app) -> str:  # type: ignore[no-untyped-def]
    """The detail pane's text as it was given to the pane."""
    return str(app.screen.query_one("#audit-detail", Static).render())


def actions(app) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(row[3]) for row in table_rows(app, "#audit-events")]


async def test_a_monitor_reviews_a_participants_record(
    engine: Engine, clock: SteppingClock, dispensed: str
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await sign_in(pilot, "mona")
        home = screen_text(app)
        assert "coming release" not in home
        assert "Press l for audit review" in home
        await press(pilot, "l")
        assert isinstance(app.screen, AuditReviewScreen)
        assert "login" not in actions(app)  # sign-ins only on request
        assert "trial.create" in actions(app)

        # The timeline of the dispensed participant: screening to unblinding, in order.
        field = app.screen.query_one("#audit-participant", Input)
        field.value = dispensed.lower()
        field.focus()
        await press(pilot, "enter")
        assert actions(app) == [
            "participant.screen", "participant.consent", "diary.import",
            "participant.randomize", "envelope.open", "preparation.record",
            "envelope.open", "participant.unblind",
        ]
        assert f"Timeline of {dispensed}: 8 read" in screen_text(app)

        # The consent: the two fields it changed.
        await press(pilot, "down")
        detail = screen_text(app)
        assert 'consent_form_version: null → "2.0"' in detail
        assert "consent_date: null →" in detail

        # The unblinding: who, why, the flag it set, and never an arm.
        await press(pilot, *["down"] * 6)
        shown = screen_text(app)
        assert "participant.unblind" in shown and "unblinded_emergency: false → true" in shown
        told = " ".join(detail_pane(app).split())  # the pane wraps long lines
        assert "phil (pharmacist)" in told
        assert "Reason: suspected serious adverse reaction" in told
        assert arm_words(shown.replace("KetHead", "")) == []
        assert LOTS["bolus"] not in shown

        # Sign-ins on request.
        await press(pilot, "s")
        assert "sign-ins shown" in screen_text(app)
        field.value = ""
        await press(pilot, "f")
        await press(pilot, "enter")
        assert "login" in actions(app)

        # Verify: a progress bar, then the result.
        await press(pilot, "v")
        assert "OK:" in screen_text(app)
        assert "events, chain head" in screen_text(app)
        bar = app.screen.query_one("#audit-verify-progress", ProgressBar)
        events = int(screen_text(app).split("OK: ")[1].split()[0])
        # The bar counted the rows verify read: every event, then the audited tables.
        assert bar.total is not None and bar.total > events
        assert bar.progress == bar.total


@pytest.mark.parametrize("who", ["iris", "alice"])
async def test_investigators_and_admins_open_it_from_home_and_see_no_arm(
    engine: Engine, clock: SteppingClock, admin: Actor, dispensed: str, who: str
) -> None:
    if who == "iris":
        add_user(engine, admin, clock, "iris", Role.INVESTIGATOR)
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_review(pilot, who)
        assert arm_words(str(table_rows(app, "#audit-events"))) == []
        for _ in range(len(actions(app))):  # every event's detail, one after another
            told = public_words_aside(" ".join(detail_pane(app).split()))
            assert arm_words(told) == [], told
            await press(pilot, "down")
        assert "participant.unblind" in actions(app)


@pytest.mark.parametrize("who", ["cora", "phil"])
async def test_coordinators_and_pharmacists_have_no_audit_key(
    engine: Engine, clock: SteppingClock, enrolling: dict[str, Actor], who: str
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await sign_in(pilot, who)
        if who == "phil":  # the pharmacist's home opens on the queue
            await press(pilot, "escape")
        assert isinstance(app.screen, HomeScreen)
        await press(pilot, "l")
        assert isinstance(app.screen, HomeScreen)
        assert "audit review" not in screen_text(app).lower()


async def test_a_long_trail_is_read_a_page_at_a_time_as_the_cursor_moves(
    engine: Engine, clock: SteppingClock, dispensed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_review, "PAGE", 5)
    monkeypatch.setattr(audit_review, "AHEAD", 2)
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_review(pilot, "mona")
        assert len(actions(app)) == 5
        assert "5 read · more below" in screen_text(app)
        for _ in range(3):
            await press(pilot, "down")
        assert len(actions(app)) == 10  # the next page came before the cursor reached the end
        seqs = [int(row[0]) for row in table_rows(app, "#audit-events")]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_a_date_that_is_not_one_is_said_and_nothing_is_read(
    engine: Engine, clock: SteppingClock, dispensed: str
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_review(pilot, "mona")
        before = actions(app)
        field = app.screen.query_one("#audit-since", Input)
        field.value = "last week"
        field.focus()
        await press(pilot, "enter")
        assert any("not a date or time" in n for n in notifications(app))
        assert actions(app) == before


async def test_the_monitors_home_opens_the_status_read_only(
    engine: Engine, clock: SteppingClock, dispensed: str
) -> None:
    from trialkit.tui.screens.dashboard import DashboardScreen

    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await sign_in(pilot, "mona")
        await press(pilot, "i")
        assert isinstance(app.screen, DashboardScreen)
        footer = screen_text(app).splitlines()[-1]
        assert "Lock DB" not in footer and "Export" not in footer
        await press(pilot, "k", "x")  # refused keys: nothing opens
        assert isinstance(app.screen, DashboardScreen)


async def test_a_monitor_writes_a_signed_checkpoint_from_the_review(
    engine: Engine, clock: SteppingClock, dispensed: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """k writes the checkpoint in the current folder at once, signed with the key her
    sign-in unlocked (no password asked again), also after the lock screen."""
    from trialkit.services.integrity.checkpoints import check_checkpoint, read_checkpoint
    from trialkit.store.db import read_only
    from trialkit.tui.screens.audit_review import AuditReviewScreen

    monkeypatch.chdir(tmp_path)
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_review(pilot, "mona")
        await press(pilot, "ctrl+l")
        await submit_password(pilot, PASSWORD)  # the unlock signs in afresh: a new key object
        assert isinstance(app.screen, AuditReviewScreen)
        await press(pilot, "k")
        assert isinstance(app.screen, AuditReviewScreen)  # no password dialog
        [written] = list(tmp_path.glob("kethead-*.checkpoint.json"))
        told = " ".join(notifications(app))
        assert f"written to {written.name}" in told and "Keep it outside the database" in told
        checkpoint = read_checkpoint(written)
        assert checkpoint.signer == "mona"
        assert arm_words(written.read_text()) == []
        with read_only(engine) as s:
            check_checkpoint(s, checkpoint, written.name)  # holds: raises otherwise


@pytest.mark.parametrize("size", [(80, 24), (120, 36)])
async def test_every_event_column_is_on_screen_at_80_and_at_120_columns(
    engine: Engine, clock: SteppingClock, admin: Actor, dispensed: str,
    size: tuple[int, int],
) -> None:
    """Under 110 columns the events sit above what changed (side by side at 80 columns the
    events showed no action); at 120 they sit side by side."""
    add_user(engine, admin, clock, "iris", Role.INVESTIGATOR)
    app = app_for(engine, clock)
    async with app.run_test(size=size) as pilot:
        await open_review(pilot, "iris")
        events = app.screen.query_one("#audit-events")
        detail = app.screen.query_one("#audit-detail-box")
        assert events.max_scroll_x == 0  # no column beyond the right edge
        text = screen_text(app)
        assert all(h in text for h in ("Seq", "When (UTC)", "User", "Action", "About"))
        assert "trial.create" in text
        if size[0] < 110:
            assert detail.region.y >= events.region.bottom
        else:
            assert detail.region.x >= events.region.right
