"""The admin's view of the sealed allocation lists: envelopes sealed, used and left per
stratum, sealing every list once, and extending a stratum that runs low.

Counts only: the admin never sees a drawn block or an arm, here or anywhere. Before sealing
or extending, the protocol's design report (procedure, parameters and exact figures beside
the alternatives; issue 14) asks for confirmation: it says no more than the protocol does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from trialkit.application.trial_database import TrialDatabase
from trialkit.domain.errors import TrialkitError
from trialkit.domain.strata import all_strata
from trialkit.tui.commands import BACK, EXTEND_LIST, REFRESH, SEAL_LISTS, quiet_session_keys
from trialkit.tui.dialogs.design import DesignReviewDialog
from trialkit.tui.dialogs.seal import ExtendDialog, SealDialog, SealRequest
from trialkit.tui.messages import (
    DesignReportReady,
    ListsSealed,
    ProtocolLoaded,
    ServiceFailed,
    StrataLoaded,
)
from trialkit.tui.widgets.fitted_table import fill_table
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from trialkit.domain.protocol import Protocol
    from trialkit.services.actor import Actor
    from trialkit.services.enrolment.allocation import StratumUse

COLUMNS = ("Stratum", "Levels", "Sealed", "Used", "Left", "")
EXHAUSTED = "EXHAUSTED"


def stratum_flag(use: StratumUse) -> str:
    """What the last column says: nothing sealed yet, or no envelope left."""
    if use.sealed == 0:
        return "not sealed"
    return EXHAUSTED if use.left <= 0 else ""


def level_names(protocol: Protocol) -> dict[str, str]:
    """Stratum code -> its stratification levels in words (the site is in the code)."""
    names: dict[str, str] = {}
    for stratum in all_strata(protocol):
        levels = dict(stratum.levels)
        words = [
            lv.name
            for factor in protocol.stratification
            for lv in factor.levels
            if lv.code == levels.get(factor.id)
        ]
        names[stratum.code] = " / ".join(words) or "—"
    return names


class AllocationListsScreen(Screen[None]):
    """Envelope counts per stratum, with Seal lists and Extend stratum."""

    BINDINGS = [
        *(c.binding() for c in (SEAL_LISTS, EXTEND_LIST, REFRESH, BACK)),
        *quiet_session_keys(),
    ]

    def __init__(self, db: TrialDatabase, actor: Actor) -> None:
        super().__init__()
        self._db = db
        self._actor = actor
        self._names: dict[str, str] = {}
        self._strata: dict[str, StratumUse] = {}
        self._busy = False

    def compose(self) -> ComposeResult:
        """The table, a progress bar while sealing, a line of totals."""
        yield Header()
        yield TrainingBanner()
        table: DataTable[str | int] = DataTable(
            id="strata", cursor_type="row", zebra_stripes=True
        )
        yield table
        with Horizontal(id="seal-progress-row"):
            yield Static("Sealing lists", id="seal-progress-label")
            yield ProgressBar(id="seal-progress", show_eta=False)
        yield Static("Reading the lists…", id="lists-summary")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Columns, then the counts."""
        self.sub_title = "Allocation lists"
        table = self.query_one("#strata", DataTable)
        fill_table(table, COLUMNS, [])
        table.focus()
        self.query_one("#seal-progress-row").display = False
        self._load()

    # --- reading -----------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="strata")
    def _load(self) -> None:
        try:
            protocol = self._db.protocol()
            usage = self._db.stratum_usage(self._actor)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(ProtocolLoaded(protocol))
            self.post_message(StrataLoaded(usage))

    def on_protocol_loaded(self, message: ProtocolLoaded) -> None:
        """Name each stratum's levels."""
        self._names = level_names(message.protocol)

    def on_strata_loaded(self, message: StrataLoaded) -> None:
        """Fill the table, keeping the cursor on the same stratum."""
        table = self.query_one("#strata", DataTable)
        keep = self.selected_stratum()
        self._strata = {s.stratum: s for s in message.strata}
        fill_table(
            table, COLUMNS,
            [(s.stratum, self._names.get(s.stratum, ""), s.sealed, s.used, s.left,
              stratum_flag(s)) for s in message.strata],
            [s.stratum for s in message.strata],
        )
        if keep in self._strata:
            table.move_cursor(row=table.get_row_index(keep))
        self._summarise()
        self.refresh_bindings()

    def _summarise(self) -> None:
        strata = list(self._strata.values())
        sealed = sum(s.sealed for s in strata)
        if sealed == 0:
            text = f"No list is sealed yet. Press {SEAL_LISTS.key} to seal all {len(strata)}."
        else:
            used = sum(s.used for s in strata)
            empty = sum(1 for s in strata if s.sealed and s.left <= 0)
            text = f"{sealed} envelopes sealed, {used} used, {sealed - used} left"
            if empty:
                text += f" · {empty} exhausted: extend ({EXTEND_LIST.key})"
        self.query_one("#lists-summary", Static).update(Content(text))

    def selected_stratum(self) -> str | None:
        """The stratum under the cursor, if any."""
        table = self.query_one("#strata", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return key if isinstance(key, str) else None

    # --- sealing and extending ---------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Seal until sealed; extend once sealed, for the selected stratum."""
        sealed = any(s.sealed for s in self._strata.values())
        if action == SEAL_LISTS.action:
            return None if self._busy or not self._strata else not sealed
        if action == EXTEND_LIST.action:
            return None if self._busy else sealed
        return True

    def action_seal_lists(self) -> None:
        """Show the protocol's design report, then ask how many envelopes per stratum,
        then seal (in a worker, with progress)."""
        if not self._busy:
            self._review_design("seal")

    def _review_design(self, then: str) -> None:
        """Compute the design report (a worker: the trial-wide simulation takes a
        moment), then show it."""
        self._set_busy(True)
        self.query_one("#lists-summary", Static).update(
            Content("Computing the protocol's design report…"))
        self._designing(then)

    @work(thread=True, exclusive=True, group="design")
    def _designing(self, then: str) -> None:
        try:
            report = self._db.design_report()
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(DesignReportReady(report, then))

    def on_design_report_ready(self, message: DesignReportReady) -> None:
        """The design and its figures; on Continue, the count."""
        self._set_busy(False)
        self._summarise()
        stratum = self.selected_stratum()

        def go_on(confirmed: bool | None) -> None:
            if not confirmed:
                return
            if message.then == "seal":
                self.app.push_screen(SealDialog(len(self._strata)), self._seal)
            elif stratum is not None:
                self._ask_extension(stratum)

        verb = "sealed" if message.then == "seal" else "extended"
        self.app.push_screen(DesignReviewDialog(message.report, verb), go_on)

    def _seal(self, request: SealRequest | None) -> None:
        if request is None:
            return
        self._set_busy(True)
        self.query_one("#seal-progress", ProgressBar).update(total=len(self._strata), progress=0)
        self.query_one("#seal-progress-row").display = True
        self._sealing(request)

    @work(thread=True, exclusive=True, group="sealing")
    def _sealing(self, request: SealRequest) -> None:
        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(self.show_progress, done, total)

        try:
            result = self._db.seal_lists(
                self._actor, per_stratum=request.per_stratum, block_sizes=request.block_sizes,
                progress=progress,
            )
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(ListsSealed(result, "Sealed"))

    def show_progress(self, done: int, total: int) -> None:
        """Move the bar on by a stratum."""
        self.query_one("#seal-progress", ProgressBar).update(total=total, progress=done)

    def action_extend_list(self) -> None:
        """Show the design report, then ask how many envelopes to add to the selected
        stratum, then add them."""
        if not self._busy and self.selected_stratum() is not None:
            self._review_design("extend")

    def _ask_extension(self, stratum: str) -> None:
        use = self._strata[stratum]

        def extend(count: int | None) -> None:
            if count is not None:
                self._set_busy(True)
                self._extending(stratum, count)

        self.app.push_screen(ExtendDialog(stratum, use.left), extend)

    @work(thread=True, exclusive=True, group="sealing")
    def _extending(self, stratum: str, count: int) -> None:
        try:
            result = self._db.extend_list(self._actor, stratum=stratum, count=count)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(ListsSealed(result, "Extended"))

    def on_lists_sealed(self, message: ListsSealed) -> None:
        """Counts only: how many envelopes in how many strata."""
        self._set_busy(False)
        result = message.result
        strata = ", ".join(c.stratum for c in result.lists)
        self.notify(
            f"{message.verb} {result.total} envelopes ({strata}).", title="Allocation lists"
        )
        self._load()

    def on_service_failed(self, _message: ServiceFailed) -> None:
        """Refused (the app shows why)."""
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        if not busy:
            self.query_one("#seal-progress-row").display = False
        self.refresh_bindings()

    # --- moving around -----------------------------------------------------------------

    def action_refresh(self) -> None:
        """Read the counts again."""
        self._load()

    def action_back(self) -> None:
        """Back home."""
        self.dismiss(None)
