"""The home screen after sign-in: the trial, who you are, and your role's workspace."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header

from trialkit.application.trial_database import TrialDatabase
from trialkit.domain.errors import TrialkitError
from trialkit.tui.commands import (
    ALLOCATION_LISTS,
    AUDIT_REVIEW,
    CUSTODIANS,
    DASHBOARD,
    DISPENSE_QUEUE,
    PARTICIPANTS,
    REFRESH,
    UNBLINDINGS,
    USERS,
)
from trialkit.tui.messages import ServiceFailed, TrialLoaded
from trialkit.tui.widgets.identity import IdentityPanel
from trialkit.tui.widgets.role_panel import ROLE_SCREENS, RolePanel
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.widgets.trial_summary import TrialSummary
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from trialkit.services.actor import Actor
    from trialkit.services.administration.trial import TrialInfo
    from trialkit.tui.app import TrialkitApp


def _site_codes(trial: TrialInfo | None) -> tuple[str, ...]:
    return tuple(s.code for s in trial.sites) if trial is not None else ()


class HomeScreen(Screen[None]):
    """Role-aware home. Follows the app's ``trial`` and ``actor``, so a refresh or an
    unlock that brings news (a changed role, a new site) shows at once."""

    # The role panel says "Press X for ..." for each screen; the footer keeps its 80 columns
    # for the session's keys (Quit, Lock, Sign out), shown here and not on the other screens.
    BINDINGS = [
        replace(c, show=False).binding()
        for c in (USERS, PARTICIPANTS, ALLOCATION_LISTS, DISPENSE_QUEUE, DASHBOARD, CUSTODIANS,
                  AUDIT_REVIEW, UNBLINDINGS, REFRESH)
    ]

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
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Show what the app knows now, and whatever it learns later."""
        self.watch(self.app, "trial", self._show_trial)
        self.watch(self.app, "actor", self._show_actor)

    def _show_trial(self, trial: TrialInfo | None) -> None:
        if trial is not None:
            self.query_one(TrialSummary).show(trial)
            actor = self._actor()
            if actor is not None:
                self.query_one(IdentityPanel).show(actor, _site_codes(trial))

    def _show_actor(self, actor: Actor | None) -> None:
        if actor is not None:
            trial = cast("TrialkitApp", self.app).trial
            self.query_one(IdentityPanel).show(actor, _site_codes(trial))
            self.query_one(RolePanel).show(actor)
        self.refresh_bindings()

    def _actor(self) -> Actor | None:
        return cast("TrialkitApp", self.app).actor

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Each role sees the keys of its own screens only."""
        opens = {
            c.action: c
            for c in (PARTICIPANTS, ALLOCATION_LISTS, DISPENSE_QUEUE, DASHBOARD, CUSTODIANS,
                      AUDIT_REVIEW, UNBLINDINGS, USERS)
        }
        if action not in opens:
            return True
        actor = self._actor()
        return actor is not None and opens[action] in ROLE_SCREENS[actor.role]

    def action_open_participants(self) -> None:
        """The participants this user may see (a coordinator: their own sites)."""
        from trialkit.tui.screens.participants import ParticipantsScreen

        actor, trial = self._actor(), cast("TrialkitApp", self.app).trial
        if actor is None:
            return
        every_site = tuple(s.code for s in trial.sites) if trial else ()
        sites = every_site if actor.scope is None else tuple(sorted(actor.scope))
        self.app.push_screen(ParticipantsScreen(self._db, actor, sites))

    def action_open_allocation_lists(self) -> None:
        """Envelopes per stratum: seal and extend (admin)."""
        from trialkit.tui.screens.allocation_lists import AllocationListsScreen

        actor = self._actor()
        if actor is not None:
            self.app.push_screen(AllocationListsScreen(self._db, actor))

    def action_open_users(self) -> None:
        """Users: list, add, disable, enable (admin)."""
        from trialkit.tui.screens.users import UsersScreen

        actor, trial = self._actor(), cast("TrialkitApp", self.app).trial
        if actor is not None:
            sites = tuple(s.code for s in trial.sites) if trial else ()
            self.app.push_screen(UsersScreen(self._db, actor, sites))

    def action_open_dispense_queue(self) -> None:
        """Randomized participants awaiting preparation (pharmacists)."""
        from trialkit.tui.screens.dispense_queue import DispenseQueueScreen

        actor = self._actor()
        if actor is not None:
            self.app.push_screen(DispenseQueueScreen(self._db, actor))

    def action_open_dashboard(self) -> None:
        """Enrolment, CONSORT, completeness, lock and export (investigators)."""
        from trialkit.tui.screens.dashboard import DashboardScreen

        actor = self._actor()
        if actor is not None:
            self.app.push_screen(DashboardScreen(self._db, actor))

    def action_open_custodians(self) -> None:
        """Unblinding custodians: approve a new one (pharmacists, investigators)."""
        from trialkit.tui.screens.custodians import CustodiansScreen

        actor = self._actor()
        if actor is not None:
            self.app.push_screen(CustodiansScreen(self._db, actor))

    def action_open_audit_review(self) -> None:
        """The audit trail: filters, what changed, timelines, verify (blinded readers)."""
        from trialkit.tui.screens.audit_review import AuditReviewScreen

        actor, trial = self._actor(), cast("TrialkitApp", self.app).trial
        if actor is not None:
            sites = tuple(s.code for s in trial.sites) if trial else ()
            self.app.push_screen(AuditReviewScreen(self._db, actor, sites))

    def action_open_unblindings(self) -> None:
        """Who unblinded whom, when and why; never the arm (blinded readers)."""
        from trialkit.tui.screens.unblindings import UnblindingsScreen

        actor = self._actor()
        if actor is not None:
            self.app.push_screen(UnblindingsScreen(self._db, actor))

    def action_refresh(self) -> None:
        """Read the trial again (in a worker)."""
        self._reload()

    @work(thread=True, exclusive=True, group="trial-info")
    def _reload(self) -> None:
        try:
            trial = self._db.trial_info()
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(TrialLoaded(trial))
