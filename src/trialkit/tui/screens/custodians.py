"""Unblinding custodians: who is approved and by whom, who waits for approval; a second
person (an approved custodian, or an investigator for the first one) approves a pending
one after checking the fingerprint they read out. Whether the signed-in user may approve
is the service's rule (``approval_refusal``); the screen only greys the action out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from trialkit.application.trial_database import TrialDatabase
from trialkit.domain.errors import TrialkitError
from trialkit.tui.commands import APPROVE_CUSTODIAN, BACK, REFRESH, quiet_session_keys
from trialkit.tui.dialogs.approve import ApprovalRequest, ApproveDialog
from trialkit.tui.messages import CustodianApproved, CustodiansLoaded, ServiceFailed
from trialkit.tui.widgets.fitted_table import fill_table
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from trialkit.services.actor import Actor
    from trialkit.services.administration.custody import CustodianView

COLUMNS = ("Name", "Role", "Key fingerprint", "List keys", "State")


class CustodiansScreen(Screen[None]):
    """The custodians, with Approve for the selected pending one."""

    BINDINGS = [
        *(c.binding() for c in (APPROVE_CUSTODIAN, REFRESH, BACK)),
        *quiet_session_keys(),
    ]

    def __init__(self, db: TrialDatabase, actor: Actor) -> None:
        super().__init__()
        self._db = db
        self._actor = actor
        self._rows: dict[str, CustodianView] = {}
        self._refusal: str | None = "reading…"
        self._busy = False

    def compose(self) -> ComposeResult:
        """The table and a line saying what the user may do."""
        yield Header()
        yield TrainingBanner()
        yield DataTable(id="custodians", cursor_type="row", zebra_stripes=True)
        yield Static("Reading the custodians…", id="custodians-summary")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Columns, then the rows."""
        self.sub_title = "Custodians"
        table = self.query_one("#custodians", DataTable)
        fill_table(table, COLUMNS, [])
        table.focus()
        self._load()

    @work(thread=True, exclusive=True, group="custodians")
    def _load(self) -> None:
        try:
            rows, refusal = self._db.custodians(self._actor)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(CustodiansLoaded(rows, refusal))

    def on_custodians_loaded(self, message: CustodiansLoaded) -> None:
        """Fill the table; say whether this user may approve."""
        table = self.query_one("#custodians", DataTable)
        self._rows = {c.name: c for c in message.custodians}
        self._refusal = message.refusal
        fill_table(
            table, COLUMNS,
            [(c.name, c.role, c.fingerprint or "-", str(c.lists_held), c.state)
             for c in message.custodians],
            [c.name for c in message.custodians],
        )
        pending = sum(1 for c in message.custodians if c.pending)
        text = f"{len(self._rows)} custodians, {pending} pending approval."
        if message.refusal is not None:
            text += f" {message.refusal}."
        elif pending:  # nothing to approve: no key promised
            text += f" Select one and press {APPROVE_CUSTODIAN.key} to approve."
        self.query_one("#custodians-summary", Static).update(Content(text))
        self.refresh_bindings()

    def selected(self) -> CustodianView | None:
        """The custodian under the cursor, if any."""
        table = self.query_one("#custodians", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._rows.get(key) if isinstance(key, str) else None

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        """Approve follows the selection."""
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Approve: only a pending custodian, not oneself, and only if the rule allows."""
        if action != APPROVE_CUSTODIAN.action:
            return True
        chosen = self.selected()
        if self._busy or self._refusal is not None or chosen is None:
            return None
        return chosen.pending and chosen.name != self._actor.name

    def action_approve_custodian(self) -> None:
        """Ask for the fingerprint read out and the approver's password, then approve."""
        chosen = self.selected()
        if chosen is None or self._busy:
            return

        def approve(request: ApprovalRequest | None) -> None:
            if request is not None:
                self._busy = True
                self.refresh_bindings()
                self._approving(chosen.name, request)

        self.app.push_screen(ApproveDialog(chosen.name), approve)

    @work(thread=True, exclusive=True, group="approving")
    def _approving(self, name: str, request: ApprovalRequest) -> None:
        try:
            done = self._db.approve_custodian(
                self._actor, name=name, fingerprint=request.fingerprint,
                password=request.password,
            )
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(CustodianApproved(done))

    def on_custodian_approved(self, message: CustodianApproved) -> None:
        """Say what was done, and read the table again."""
        self._busy = False
        a = message.approval
        self.notify(f"Approved {a.name} (key {a.fingerprint}); {a.lists_wrapped} list keys "
                    "wrapped to them.", title="Custodians")
        self._load()

    def on_service_failed(self, _message: ServiceFailed) -> None:
        """Refused (the app shows why)."""
        self._busy = False
        self.refresh_bindings()

    def action_refresh(self) -> None:
        """Read the custodians again."""
        self._load()

    def action_back(self) -> None:
        """Back home."""
        self.dismiss(None)
