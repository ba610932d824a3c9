"""The emergency-unblinding report (monitor, admin, investigator): who unblinded which
participant, when and why, and every refused attempt. Blinded: the report holds no arm
(``services.pharmacy.unblinding.unblinding_report`` never reads one), whoever reads it and
whenever."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from trialkit.domain.errors import TrialkitError
from trialkit.domain.site_time import shown
from trialkit.services.pharmacy.unblinding import unblinding_summary
from trialkit.tui.commands import BACK, REFRESH, quiet_session_keys
from trialkit.tui.messages import ServiceFailed, UnblindingsLoaded
from trialkit.tui.widgets.fitted_table import literal
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from trialkit.application.trial_database import TrialDatabase
    from trialkit.services.actor import Actor

COLUMNS = ("#", "Participant", "Site", "When (site time)", "Who", "Role", "Outcome", "Why")


class UnblindingsScreen(Screen[None]):
    """Every emergency unblinding and refused attempt, oldest first."""

    BINDINGS = [
        *(c.binding() for c in (REFRESH, BACK)),
        *quiet_session_keys(),
    ]

    def __init__(self, db: TrialDatabase, actor: Actor) -> None:
        super().__init__()
        self._db = db
        self._actor = actor

    def compose(self) -> ComposeResult:
        """The table and a summary line."""
        yield Header()
        yield TrainingBanner()
        yield Static("Reading the emergency unblindings…", id="unblindings-summary")
        yield DataTable(id="unblindings", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Columns, then the rows."""
        self.sub_title = "Emergency unblindings"
        table = self.query_one("#unblindings", DataTable)
        table.add_columns(*COLUMNS)
        table.focus()
        self._load()

    @work(thread=True, exclusive=True, group="unblindings")
    def _load(self) -> None:
        try:
            entries = self._db.unblindings(self._actor)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(UnblindingsLoaded(entries))

    def on_unblindings_loaded(self, message: UnblindingsLoaded) -> None:
        """Fill the table."""
        table = self.query_one("#unblindings", DataTable)
        table.clear()
        for e in message.entries:
            table.add_row(*map(literal, (
                str(e.seq), e.participant_id, e.site or "-", shown(e.at_site), e.user, e.role,
                "refused" if e.refused else "unblinded", e.reason)), key=str(e.seq))
        self.query_one("#unblindings-summary", Static).update(
            Content(unblinding_summary(message.entries)))

    def action_refresh(self) -> None:
        """Read again."""
        self._load()

    def action_back(self) -> None:
        """Back home."""
        self.dismiss(None)
