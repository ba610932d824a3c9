"""The custodians screen: an investigator approves the first pharmacist after typing the
fingerprint he reads out; a wrong fingerprint approves nobody; an admin has no such screen,
and a pending custodian cannot approve anyone, themselves included."""

from __future__ import annotations

from sqlalchemy import Engine
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input

from tests.conftest import PASSWORD, SteppingClock, add_user
from tests.db.test_custody import events, read_out, user
from tests.tui.conftest import app_for, notifications, press, sign_in, table_rows
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.tui.dialogs.approve import ApproveDialog
from trialkit.tui.screens.custodians import CustodiansScreen
from trialkit.tui.screens.home import HomeScreen


async def open_custodians(pilot: Pilot[None], name: str) -> CustodiansScreen:
    await sign_in(pilot, name)
    if not isinstance(pilot.app.screen, HomeScreen):  # a pharmacist starts at the queue
        await press(pilot, "escape")
    await press(pilot, "c")
    screen = pilot.app.screen
    assert isinstance(screen, CustodiansScreen)
    return screen


def summary(app: App[None]) -> str:
    """The line under the table: counts, and the key to press when there is one."""
    return " ".join(str(app.screen.query_one("#custodians-summary").render()).split())


async def approve_with(pilot: Pilot[None], fingerprint: str) -> None:
    await press(pilot, "a")
    dialog = pilot.app.screen
    assert isinstance(dialog, ApproveDialog)
    dialog.query_one("#fingerprint", Input).value = fingerprint
    dialog.query_one("#approver-password", Input).value = PASSWORD
    await press(pilot, "enter")


async def test_an_investigator_approves_the_first_pharmacist_by_his_fingerprint(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    add_user(engine, admin, clock, "iris", Role.INVESTIGATOR)
    add_user(engine, admin, clock, "phil", Role.PHARMACIST, approve=False)
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_custodians(pilot, "iris")
        assert [r[0::4] for r in table_rows(app, "#custodians")] == [
            ["phil", "pending approval"]]
        assert "press a to approve" in summary(app)
        assert app.screen.check_action("approve_custodian", ()) is True
        await approve_with(pilot, "0123 4567 89ab cdef")  # not the key phil made
        assert any("is not that of the key" in n for n in notifications(app))
        assert user(engine, "phil").custodian_approved_at is None
        await approve_with(pilot, read_out(engine, "phil"))
        assert any("Approved phil" in n for n in notifications(app))
        assert [r[0::4] for r in table_rows(app, "#custodians")] == [
            ["phil", "approved by iris"]]
        assert app.screen.check_action("approve_custodian", ()) is None  # nothing pending
        assert "0 pending approval." in summary(app) and "press a" not in summary(app)
    assert [e.user_name for e in events(engine, "custodian.approve")] == ["iris"]
    assert [e.user_name for e in events(engine, "custodian.approve.refused")] == ["iris"]


async def test_a_pending_custodian_cannot_approve_and_an_admin_has_no_custodians_screen(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    add_user(engine, admin, clock, "phil", Role.PHARMACIST, approve=False)
    add_user(engine, admin, clock, "pia", Role.PHARMACIST, approve=False)
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_custodians(pilot, "pia")
        assert screen.check_action("approve_custodian", ()) is None
        summary = str(screen.query_one("#custodians-summary").render())
        assert "cannot approve custodians" in summary
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await sign_in(pilot)
        assert app.screen.check_action("open_custodians", ()) is False
