"""The trial as every role may see it: title, code, protocol version, sites and targets.

Nothing here depends on an arm: the blind holds on every screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Static

if TYPE_CHECKING:
    from trialkit.services.administration.trial import TrialInfo


class TrialSummary(Vertical):
    """Title, code and version on top; one row per site with its recruitment target."""

    def compose(self) -> ComposeResult:
        """Placeholders until ``show`` fills them in."""
        yield Static("Reading the trial…", id="trial-title")
        yield Static("", id="trial-details")
        table: DataTable[str | int] = DataTable(
            id="sites", cursor_type="none", show_cursor=False, zebra_stripes=True
        )
        table.can_focus = False
        yield table

    def on_mount(self) -> None:
        """Name the panel and the site columns."""
        self.border_title = "Trial"
        self.query_one("#sites", DataTable).add_columns("Site", "Name", "Target")

    def show(self, trial: TrialInfo) -> None:
        """Fill in the trial's details."""
        total = sum(site.target for site in trial.sites)
        self.query_one("#trial-title", Static).update(Content(trial.title))
        self.query_one("#trial-details", Static).update(Content(
            f"{trial.trial_code} · protocol version {trial.protocol_version} · "
            f"{len(trial.sites)} sites, target {total} participants"
        ))
        table = self.query_one("#sites", DataTable)
        table.clear()
        for site in trial.sites:
            table.add_row(site.code, escape(site.name), site.target, key=site.code)
