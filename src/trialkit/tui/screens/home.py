"""The home screen after sign-in: the trial, who you are, and your role's workspace."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header

from trialkit.domain.errors import TrialkitError
from trialkit.tui.commands import REFRESH
from trialkit.tui.messages import ServiceFailed, TrialLoaded
from trialkit.tui.trial_db import TrialDatabase
from trialkit.tui.widgets.identity import IdentityPanel
from trialkit.tui.widgets.role_panel import RolePanel
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.widgets.trial_summary import TrialSummary

if TYPE_CHECKING:
    from trialkit.services.actor import Actor
    from trialkit.services.trial import TrialInfo


class HomeScreen(Screen[None]):
    """Role-aware home. Follows the app's ``trial`` and ``actor``, so a refresh or an
    unlock that brings news (a changed role, a new site) shows at once."""

    BINDINGS = [REFRESH.binding()]

    def __init__(self, db: TrialDatabase) -> None:
        super().__init__()
        self._db = db

    def compose(self) -> ComposeResult:
        """Trial panel on top, then you and your role side by side."""
        yield Header()
        yield TrainingBanner()
        with VerticalScroll(id="home-body"):
            yield TrialSummary(id="trial")
            with Horizontal(id="you-row"):
                yield IdentityPanel(id="identity")
                yield RolePanel(id="role")
        yield Footer()

    def on_mount(self) -> None:
        """Show what the app knows now, and whatever it learns later."""
        self.watch(self.app, "trial", self._show_trial)
        self.watch(self.app, "actor", self._show_actor)

    def _show_trial(self, trial: TrialInfo | None) -> None:
        if trial is not None:
            self.query_one(TrialSummary).show(trial)

    def _show_actor(self, actor: Actor | None) -> None:
        if actor is not None:
            self.query_one(IdentityPanel).show(actor)
            self.query_one(RolePanel).show(actor)

    def action_refresh(self) -> None:
        """Read the trial again (in a worker)."""
        self._reload()

    @work(thread=True, exclusive=True, group="trial-info")
    def _reload(self) -> None:
        try:
            trial = self._db.trial_info()
        except TrialkitError as exc:
            self.post_message(ServiceFailed(exc.message))
        else:
            self.post_message(TrialLoaded(trial))
