"""Steps for ``features/admin_users.feature``: the admin adds a user on the TUI's users
screen (driven with Pilot), the code it shows once activates the account, disable and
enable. On SQLite and, with TRIALKIT_TEST_PG_URL, on PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from pytest_bdd import given, parsers, scenarios, then, when
from sqlalchemy import Engine
from textual.pilot import Pilot
from textual.widgets import Input

from tests.conftest import ADMIN, PASSWORD, SteppingClock, add_user, sign_in
from tests.db.test_custody import events
from tests.tui.conftest import app_for, press, screen_text, table_rows
from tests.tui.conftest import sign_in as tui_sign_in
from tests.tui.test_users import add_through_dialog, select_user, until
from trialkit.domain.errors import AuthenticationFailed, TrialkitError
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.users import activate_user
from trialkit.store.db import transaction
from trialkit.tui.dialogs.users import EnrolmentCodeDialog

scenarios("admin_users.feature")


@dataclass
class Admin:
    engine: Engine
    clock: SteppingClock
    admin: Actor
    code: str = ""
    shown: str = ""
    rows: list[list[str]] = field(default_factory=list)

    def on_users_screen(self, steps: Callable[[Pilot[None]], Awaitable[None]]) -> None:
        """Sign in as the admin, open the users screen (m), run ``steps``, keep the rows."""
        app = app_for(self.engine, self.clock)

        async def run() -> None:
            async with app.run_test(size=(120, 36)) as pilot:
                await tui_sign_in(pilot, ADMIN)
                await press(pilot, "m")
                await steps(pilot)
                self.rows = [[str(c) for c in r] for r in table_rows(app, "#users")]

        asyncio.run(run())


@pytest.fixture(autouse=True)
def world(engine: Engine, admin: Actor, clock: SteppingClock) -> Admin:
    """Autouse, so that every scenario is collected once per backend."""
    return Admin(engine, clock, admin)


@given(parsers.parse('the KetHead trial with its admin "{name}"'))
def trial(world: Admin, name: str) -> None:
    assert world.admin.name == name and world.admin.role is Role.ADMIN


@given(parsers.parse('the coordinator "{name}" works at "{site}"'))
def coordinator(world: Admin, name: str, site: str) -> None:
    add_user(world.engine, world.admin, world.clock, name, Role.COORDINATOR, sites=[site])


@when(parsers.parse('the admin adds the coordinator "{name}" at "{site}" on the users screen'))
def adds(world: Admin, name: str, site: str) -> None:
    async def steps(pilot: Pilot[None]) -> None:
        await add_through_dialog(pilot, name, "coordinator", site)
        dialog = pilot.app.screen
        assert isinstance(dialog, EnrolmentCodeDialog)
        world.code = dialog.account.enrolment_code
        world.shown = screen_text(pilot.app)  # type: ignore[arg-type]
        await press(pilot, "enter")
        assert world.code not in screen_text(pilot.app)  # type: ignore[arg-type]
        await until(pilot, lambda: name in [
            r[0] for r in table_rows(pilot.app, "#users")])  # type: ignore[arg-type]

    world.on_users_screen(steps)


@then(parsers.parse("the screen shows nina's one-time enrolment code with \"{words}\""))
def code_shown(world: Admin, words: str) -> None:
    assert world.code and world.code in world.shown
    assert words.lower() in " ".join(world.shown.lower().split())


@then(parsers.parse('the users screen lists "{name}" as "{state}"'))
def listed(world: Admin, name: str, state: str) -> None:
    assert any(r[0] == name and state in r for r in world.rows), world.rows


@when(parsers.parse('"{name}" sets her own password with that code'))
def activates(world: Admin, name: str) -> None:
    with transaction(world.engine) as s:
        activate_user(s, name=name, code=world.code, new_password=PASSWORD, clock=world.clock)


@then(parsers.parse('"{name}" can sign in'))
def can_sign_in(world: Admin, name: str) -> None:
    assert sign_in(world.engine, name, world.clock).name == name


@then(parsers.parse('"{name}" cannot sign in'))
def cannot_sign_in(world: Admin, name: str) -> None:
    with pytest.raises(TrialkitError):
        sign_in(world.engine, name, world.clock)


@then("the code does not work a second time")
def spent(world: Admin) -> None:
    with pytest.raises(AuthenticationFailed), transaction(world.engine) as s:
        activate_user(s, name="nina", code=world.code, new_password=PASSWORD + "x",
                      clock=world.clock)


@then(parsers.parse('the audit trail records that "{admin}" added "{name}", without the code'))
def add_audited(world: Admin, admin: str, name: str) -> None:
    added = [e for e in events(world.engine, "user.add") if e.entity_id == name]
    assert [e.user_name for e in added] == [admin]
    assert world.code not in f"{added[0].before_json}{added[0].after_json}"


@when(parsers.parse('the admin disables "{name}" on the users screen because "{reason}"'))
def disables(world: Admin, name: str, reason: str) -> None:
    async def steps(pilot: Pilot[None]) -> None:
        select_user(pilot, name)
        await press(pilot, "d")
        pilot.app.screen.query_one("#disable-reason", Input).value = reason
        await press(pilot, "enter")
        await until(pilot, lambda: [name, "disabled"] in [
            [r[0], r[3]] for r in table_rows(pilot.app, "#users")])  # type: ignore[arg-type]

    world.on_users_screen(steps)


@then(parsers.parse('the audit trail records that "{admin}" disabled "{name}" because '
                    '"{reason}"'))
def disable_audited(world: Admin, admin: str, name: str, reason: str) -> None:
    assert [(e.user_name, e.entity_id, e.reason) for e in events(world.engine, "user.disable")
            ] == [(admin, name, reason)]


@when(parsers.parse('the admin enables "{name}" on the users screen'))
def enables(world: Admin, name: str) -> None:
    async def steps(pilot: Pilot[None]) -> None:
        select_user(pilot, name)
        await press(pilot, "e")
        await until(pilot, lambda: [name, "active"] in [
            [r[0], r[3]] for r in table_rows(pilot.app, "#users")])  # type: ignore[arg-type]

    world.on_users_screen(steps)
