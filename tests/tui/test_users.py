"""The admin's users screen (issue 15, Users): the list with role, sites, account, sign-in
and custodian status; adding a user shows the one-time enrolment code once, and that code
is what activates the account; disable (reason kept) and enable; the services refuse and
audit what is not allowed (disabling oneself, a coordinator without a site); only an
admin has the screen."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, Select

from tests.conftest import PASSWORD, SteppingClock, add_user
from tests.db.test_custody import events, user
from tests.tui.conftest import app_for, arm_words, notifications, press, screen_text, sign_in
from tests.tui.conftest import table_rows as rows_of
from trialkit.domain.errors import AuthenticationFailed
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.users import activate_user
from trialkit.store.db import transaction
from trialkit.tui.dialogs.users import AddUserDialog, DisableUserDialog, EnrolmentCodeDialog
from trialkit.tui.screens.home import HomeScreen
from trialkit.tui.screens.users import UsersScreen


async def open_users(pilot: Pilot[None], name: str = "alice") -> UsersScreen:
    await sign_in(pilot, name)
    await press(pilot, "m")
    screen = pilot.app.screen
    assert isinstance(screen, UsersScreen)
    return screen


async def add_through_dialog(pilot: Pilot[None], name: str, role: str, sites: str = "",
                             custodian: bool = False) -> None:
    await press(pilot, "n")
    dialog = pilot.app.screen
    assert isinstance(dialog, AddUserDialog)
    dialog.query_one("#user-name-new", Input).value = name
    if role:
        dialog.query_one("#user-role", Select).value = role
    dialog.query_one("#user-sites", Input).value = sites
    dialog.query_one("#user-custodian", Checkbox).value = custodian
    await press(pilot)
    dialog.query_one("#ok").press()
    await press(pilot)


async def until(pilot: Pilot[None], condition: Callable[[], bool]) -> None:
    """Let workers run until ``condition`` holds: a change is followed by a re-read of the
    list, a second worker that a loaded machine (or PostgreSQL) may finish later."""
    for _ in range(100):
        if condition():
            return
        await press(pilot)
    raise AssertionError("the screen never showed the change")


def select_user(pilot: Pilot[None], name: str) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, UsersScreen)
    table = screen.query_one("#users")
    table.move_cursor(row=table.get_row_index(name))  # type: ignore[attr-defined]


async def test_an_admin_adds_a_coordinator_and_the_code_shown_once_activates_her(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    add_user(engine, admin, clock, "phil", Role.PHARMACIST, approve=False)
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_users(pilot)
        assert rows_of(app, "#users") == [
            ["alice", "admin", "—", "active", "activated", "—"],
            ["phil", "pharmacist", "—", "active", "activated", "pending approval"],
        ]
        await add_through_dialog(pilot, "nina", "coordinator", "twh")
        dialog = app.screen
        assert isinstance(dialog, EnrolmentCodeDialog)
        code = dialog.account.enrolment_code
        shown = screen_text(app)
        assert code in shown and "out of band" in shown and "not shown again" in shown
        await press(pilot, "enter")  # Close
        assert isinstance(app.screen, UsersScreen)
        assert code not in screen_text(app)  # once: gone with the dialog
        await until(pilot, lambda: ["nina", "coordinator", "TWH", "active",
                                    "awaiting enrolment", "—"] in rows_of(app, "#users"))
    # The code on the screen is the one that activates nina, once.
    with transaction(engine) as s:
        activate_user(s, name="nina", code=code, new_password=PASSWORD, clock=clock)
    try:
        with transaction(engine) as s:
            activate_user(s, name="nina", code=code, new_password=PASSWORD, clock=clock)
    except AuthenticationFailed:
        pass
    else:
        raise AssertionError("the enrolment code worked twice")
    added = events(engine, "user.add")[-1]
    assert (added.user_name, added.entity_id) == ("alice", "nina")
    assert code not in f"{added.before_json}{added.after_json}"  # never the code itself


async def test_disable_with_a_reason_then_enable_each_audited(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    add_user(engine, admin, clock, "cora", Role.COORDINATOR, sites=["TWH"])
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_users(pilot)
        select_user(pilot, "cora")
        await press(pilot)
        assert screen.check_action("disable_user", ()) is True
        assert screen.check_action("enable_user", ()) is False
        await press(pilot, "d")
        dialog = app.screen
        assert isinstance(dialog, DisableUserDialog)
        dialog.query_one("#disable-reason", Input).value = "left the study team"
        await press(pilot, "enter")
        await until(pilot, lambda: rows_of(app, "#users")[1][3] == "disabled")
        assert screen.check_action("disable_user", ()) is False
        assert screen.check_action("enable_user", ()) is True
        assert user(engine, "cora").disabled
        await press(pilot, "e")
        await until(pilot, lambda: rows_of(app, "#users")[1][3] == "active")
        assert any("cora enabled" in n for n in notifications(app))
        assert not arm_words(screen_text(app))
    assert not user(engine, "cora").disabled
    disabled = events(engine, "user.disable")
    assert [(e.user_name, e.entity_id, e.reason) for e in disabled] == [
        ("alice", "cora", "left the study team")]
    assert [(e.user_name, e.entity_id) for e in events(engine, "user.enable")] == [
        ("alice", "cora")]


async def test_refusals_come_from_the_service_audited_and_change_nothing(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_users(pilot)
        select_user(pilot, "alice")
        await press(pilot, "d")
        await press(pilot, "enter")
        assert any("cannot disable your own account" in n for n in notifications(app))
        await add_through_dialog(pilot, "nina", "coordinator")  # no site
        assert any("needs at least one" in n for n in notifications(app))
        await add_through_dialog(pilot, "mona", "monitor", "TWH")
        assert any("not bound to sites" in n for n in notifications(app))
        await add_through_dialog(pilot, "rita", "")  # no role: the dialog says so
        assert isinstance(app.screen, AddUserDialog)
        assert "Choose the new user's role" in screen_text(app)
        await press(pilot, "escape")
        assert [r[0] for r in rows_of(app, "#users")] == ["alice"]
    assert not user(engine, "alice").disabled
    assert [e.entity_id for e in events(engine, "user.disable.refused")] == ["alice"]
    # Bad input (exit 2 in the CLI) changes nothing: no account, no code issued.
    assert [e.entity_id for e in events(engine, "user.add")] == ["alice"]


async def test_only_an_admin_has_the_users_screen(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    add_user(engine, admin, clock, "iris", Role.INVESTIGATOR)
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await sign_in(pilot)
        assert "Press m for users" in screen_text(app)
        assert app.screen.check_action("open_users", ()) is True
    app = app_for(engine, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await sign_in(pilot, "iris")
        assert isinstance(app.screen, HomeScreen)
        assert app.screen.check_action("open_users", ()) is False
        await press(pilot, "m")
        assert not isinstance(app.screen, UsersScreen)
