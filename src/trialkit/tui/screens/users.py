"""The admin's users screen: every user with role, sites, whether the account may sign in,
whether it was activated or still awaits enrolment, and custodian status; add a user (the
one-time enrolment code shown once), disable, enable. The services decide
(``services.administration.users``:
who may manage users, valid names, roles and sites, not disabling oneself) and audit every
change and refusal; the screen greys out only what does not apply to the selected row."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from trialkit.application.trial_database import TrialDatabase
from trialkit.domain.errors import TrialkitError
from trialkit.tui.commands import (
    ADD_USER,
    BACK,
    DISABLE_USER,
    ENABLE_USER,
    REFRESH,
    quiet_session_keys,
)
from trialkit.tui.dialogs.users import (
    AddUserDialog,
    AddUserRequest,
    DisableUserDialog,
    EnrolmentCodeDialog,
)
from trialkit.tui.messages import ServiceFailed, UserAdded, UserChanged, UsersLoaded
from trialkit.tui.widgets.fitted_table import fill_table
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from trialkit.services.actor import Actor
    from trialkit.services.administration.users import UserView

COLUMNS = ("Name", "Role", "Sites", "Account", "Sign-in", "Custodian")


def user_cells(u: UserView) -> tuple[str, ...]:
    """One row: what the account is, in words."""
    account = ("disabled" if u.disabled
               else "waiting (wrong passwords)" if u.locked else "active")
    sign_in = "activated" if u.activated else "awaiting enrolment"
    custodian = ("" if not u.custodian
                 else "approved" if u.custodian_approved else "pending approval")
    return (u.name, u.role, ", ".join(u.sites) or "—", account, sign_in, custodian or "—")


class UsersScreen(Screen[None]):
    """Users, with Add, Disable and Enable."""

    BINDINGS = [
        *(c.binding() for c in (ADD_USER, DISABLE_USER, ENABLE_USER, REFRESH, BACK)),
        *quiet_session_keys(),
    ]

    def __init__(self, db: TrialDatabase, actor: Actor, sites: tuple[str, ...]) -> None:
        super().__init__()
        self._db = db
        self._actor = actor
        self._sites = sites
        self._users: dict[str, UserView] = {}
        self._busy = False

    def compose(self) -> ComposeResult:
        """The table and a line of counts."""
        yield Header()
        yield TrainingBanner()
        yield DataTable(id="users", cursor_type="row", zebra_stripes=True)
        yield Static("Reading the users…", id="users-summary")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Columns, then the rows."""
        self.sub_title = "Users"
        table = self.query_one("#users", DataTable)
        fill_table(table, COLUMNS, [])
        table.focus()
        self._load()

    @work(thread=True, exclusive=True, group="users")
    def _load(self) -> None:
        try:
            users = self._db.users(self._actor)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(UsersLoaded(users))

    def on_users_loaded(self, message: UsersLoaded) -> None:
        """Fill the table, keeping the cursor on the same user."""
        keep = self.selected()
        table = self.query_one("#users", DataTable)
        self._users = {u.name: u for u in message.users}
        fill_table(table, COLUMNS, [user_cells(u) for u in message.users],
                   [u.name for u in message.users])
        if keep is not None and keep.name in self._users:
            table.move_cursor(row=table.get_row_index(keep.name))
        users = list(self._users.values())
        waiting = sum(1 for u in users if not u.activated and not u.disabled)
        disabled = sum(1 for u in users if u.disabled)
        pending = sum(1 for u in users if u.custodian and not u.custodian_approved
                      and not u.disabled)
        text = (f"{len(users)} users: {disabled} disabled, {waiting} awaiting enrolment, "
                f"{pending} custodians pending approval. Press {ADD_USER.key} to add a user.")
        self.query_one("#users-summary", Static).update(Content(text))
        self.refresh_bindings()

    def selected(self) -> UserView | None:
        """The user under the cursor, if any."""
        table = self.query_one("#users", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._users.get(key) if isinstance(key, str) else None

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        """Disable and Enable follow the selection."""
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Disable an enabled user, enable a disabled one; nothing while busy."""
        if action not in (ADD_USER.action, DISABLE_USER.action, ENABLE_USER.action):
            return True
        if self._busy:
            return None
        if action == ADD_USER.action:
            return True
        chosen = self.selected()
        if chosen is None:
            return None
        return chosen.disabled == (action == ENABLE_USER.action)

    # --- adding ------------------------------------------------------------------------

    def action_add_user(self) -> None:
        """Ask for name, role, sites and custodian flag, then add (in a worker)."""
        if self._busy:
            return

        def add(request: AddUserRequest | None) -> None:
            if request is not None:
                self._set_busy(True)
                self._adding(request)

        self.app.push_screen(AddUserDialog(self._sites), add)

    @work(thread=True, exclusive=True, group="user-change")
    def _adding(self, request: AddUserRequest) -> None:
        try:
            account = self._db.add_user(self._actor, name=request.name, role=request.role,
                                        sites=list(request.sites), custodian=request.custodian)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(UserAdded(account))

    def on_user_added(self, message: UserAdded) -> None:
        """The code, shown once; then the list again."""
        self._set_busy(False)
        self.app.push_screen(EnrolmentCodeDialog(message.account))
        self._load()

    # --- disabling and enabling --------------------------------------------------------

    def action_disable_user(self) -> None:
        """Ask why, then disable the selected user."""
        chosen = self.selected()
        if chosen is None or self._busy:
            return

        def disable(reason: str | None) -> None:
            if reason is not None:
                self._set_busy(True)
                self._changing(chosen.name, True, reason or None)

        self.app.push_screen(DisableUserDialog(chosen.name), disable)

    def action_enable_user(self) -> None:
        """Enable the selected disabled user (clears a wait after wrong passwords)."""
        chosen = self.selected()
        if chosen is None or self._busy:
            return
        self._set_busy(True)
        self._changing(chosen.name, False, None)

    @work(thread=True, exclusive=True, group="user-change")
    def _changing(self, name: str, disabled: bool, reason: str | None) -> None:
        try:
            self._db.set_disabled(self._actor, name=name, disabled=disabled, reason=reason)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(UserChanged(name, disabled))

    def on_user_changed(self, message: UserChanged) -> None:
        """Say what was done, and read the list again."""
        self._set_busy(False)
        done = "disabled: they can no longer sign in" if message.disabled else "enabled"
        self.notify(f"{message.name} {done}.", title="Users")
        self._load()

    def on_service_failed(self, _message: ServiceFailed) -> None:
        """Refused (the app shows why)."""
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.refresh_bindings()

    def action_refresh(self) -> None:
        """Read the users again."""
        self._load()

    def action_back(self) -> None:
        """Back home."""
        self.dismiss(None)
