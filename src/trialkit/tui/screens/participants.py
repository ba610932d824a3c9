"""Participants at the coordinator's sites: filter, search, and the enrolment steps
(screen, consent, randomize, withdraw) for the selected one. Nothing here depends on an
arm: randomizing answers with a randomization number and a label code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from textual import events, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input, Select, Static

from trialkit.application.trial_database import TrialDatabase
from trialkit.domain.errors import TrialkitError
from trialkit.domain.participant_status import Status
from trialkit.domain.roles import Permission
from trialkit.services.enrolment.participants import ParticipantFilter
from trialkit.tui.commands import (
    BACK,
    EMERGENCY_UNBLIND,
    IMPORT_DIARY,
    NEXT_PAGE,
    OPEN_DIARY,
    PREVIOUS_PAGE,
    RANDOMIZE,
    RECORD_CONSENT,
    RECORD_INFUSION,
    REFRESH,
    SCHEDULE_INFUSION,
    SCREEN_PARTICIPANT,
    SEARCH,
    SHOW_OUTCOMES,
    WITHDRAW,
    quiet_session_keys,
)
from trialkit.tui.dialogs.confirm import ConfirmDialog
from trialkit.tui.dialogs.consent import ConsentDialog, ConsentEntry
from trialkit.tui.dialogs.diary_import import DiaryImportDialog, ImportProblemsDialog
from trialkit.tui.dialogs.infusion import InfuseDialog, InfusionEntry, ScheduleDialog
from trialkit.tui.dialogs.outcomes import OutcomesDialog
from trialkit.tui.dialogs.randomized import RandomizedDialog
from trialkit.tui.dialogs.unblind import UnblindDialog
from trialkit.tui.dialogs.withdraw import WithdrawDialog
from trialkit.tui.messages import (
    DiaryImportRefused,
    OutcomesLoaded,
    ParticipantChanged,
    ParticipantRandomized,
    ParticipantsLoaded,
    ProtocolLoaded,
    ServiceFailed,
    StepRecorded,
)
from trialkit.tui.participant_pages import PAGE_ROWS, ParticipantPages
from trialkit.tui.screens.participant_rules import describe_participant, refusal
from trialkit.tui.screens.screening import ScreeningScreen, screening_outcome
from trialkit.tui.widgets.fitted_table import fill_table
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.widgets.two_line_footer import TwoLineFooter
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from trialkit.domain.protocol import Protocol
    from trialkit.services.actor import Actor
    from trialkit.services.enrolment.participants import ParticipantView

# The statuses the enrolment service reports, in the order a participant goes through them
# ("dispensed": the pharmacy has prepared the infusion, alike for every arm).
STATUSES = tuple(s.value for s in Status)
COLUMNS = ("Participant", "Stratum", "Status", "Rand. no.", "Label code")
WRITE_ACTIONS = frozenset(
    {SCREEN_PARTICIPANT.action, RECORD_CONSENT.action, RANDOMIZE.action, WITHDRAW.action,
     SCHEDULE_INFUSION.action, RECORD_INFUSION.action}
)


class ParticipantTable(DataTable[str]):
    """One page of participants. Moving down from its last row, or up from its first,
    asks for the next (or the previous) page."""

    class PageTurn(Message):
        """The cursor tried to leave the page: ``step`` is +1 (down) or -1 (up)."""

        def __init__(self, step: int) -> None:
            super().__init__()
            self.step = step

    def action_cursor_down(self) -> None:
        """Down a row, or on to the next page from the last row."""
        if self.row_count and self.cursor_row == self.row_count - 1:
            self.post_message(self.PageTurn(+1))
        else:
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        """Up a row, or back to the previous page from the first row."""
        if self.row_count and self.cursor_row == 0:
            self.post_message(self.PageTurn(-1))
        else:
            super().action_cursor_up()


class ParticipantsScreen(Screen[None]):
    """The participants this user may see, with the coordinator's enrolment steps.

    The first page is read and shown first; the whole list follows in the background and
    is then filtered in memory as the user types, one page shown at a time."""

    BINDINGS = [
        *(c.binding()
        for c in (SCREEN_PARTICIPANT, RECORD_CONSENT, RANDOMIZE, SCHEDULE_INFUSION,
                  RECORD_INFUSION, WITHDRAW, OPEN_DIARY, SHOW_OUTCOMES, IMPORT_DIARY,
                  EMERGENCY_UNBLIND, SEARCH, NEXT_PAGE, PREVIOUS_PAGE, REFRESH, BACK)),
        *quiet_session_keys(),
    ]
    # Under 110 columns the footer takes two lines (trialkit.tcss): a coordinator's steps,
    # greyed or not, and Back need about 100 columns, so one line at 80 cut them after
    # Outcomes.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    def __init__(self, db: TrialDatabase, actor: Actor, sites: tuple[str, ...]) -> None:
        super().__init__()
        self._db = db
        self._actor = actor
        self._sites = sites
        self._protocol: Protocol | None = None
        self._pages = ParticipantPages()
        self._painted: list[ParticipantView] = []
        self._reading = 0  # numbers each read of the whole list; older answers are dropped
        self._whole_list_asked = 0
        self._select_after_load: str | None = None
        self._busy = False

    def compose(self) -> ComposeResult:
        """Filters on top, the table, a line about the selected participant."""
        yield Header()
        yield TrainingBanner()
        with Horizontal(id="participant-filters"):
            yield Select([(s, s) for s in self._sites], prompt="All sites", id="site-filter",
                         compact=True)
            yield Select([(s, s) for s in STATUSES], prompt="Any status", id="status-filter",
                         compact=True)
            yield Input(placeholder="/ search id", id="search", compact=True)
        yield ParticipantTable(id="participants", cursor_type="row", zebra_stripes=True)
        yield Static("", id="participant-page")
        yield Static("Reading the participants…", id="participant-detail")
        yield TwoLineFooter(compact=True)

    def on_mount(self) -> None:
        """Columns, then read the protocol and the list."""
        self.sub_title = "Participants"
        table = self.query_one("#participants", DataTable)
        fill_table(table, COLUMNS, [])
        table.focus()
        self._load_protocol()
        self.reload()

    # --- reading -----------------------------------------------------------------------

    def _filters(self) -> tuple[str | None, str | None, str | None]:
        site = self.query_one("#site-filter", Select).value
        status = self.query_one("#status-filter", Select).value
        search = self.query_one("#search", Input).value.strip()
        return (
            site if isinstance(site, str) else None,
            status if isinstance(status, str) else None,
            search or None,
        )

    def _wanted(self) -> ParticipantFilter | None:
        """The filters as set; None (and the reason notified) if the search text is bad."""
        site, status, search = self._filters()
        try:
            return ParticipantFilter.of(site=site, status=status, search=search)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
            return None

    def reload(self, select: str | None = None) -> None:
        """Read the list again (and then select ``select``): the first page with the
        current filters, then the whole list (once that page is shown: reading both at
        once would hold up the first page)."""
        self._select_after_load = select or self.selected_id()
        wanted = self._wanted()
        self._reading += 1
        if wanted is not None:
            self._load_page(self._reading, wanted)
        else:
            self._read_whole_list()

    def _read_whole_list(self) -> None:
        if self._whole_list_asked != self._reading:
            self._whole_list_asked = self._reading
            self._load_all(self._reading)

    @work(thread=True, exclusive=True, group="participants-page")
    def _load_page(self, reading: int, wanted: ParticipantFilter) -> None:
        try:
            rows = self._db.participants(self._actor, site=wanted.site, status=wanted.status,
                                         search=wanted.search, limit=PAGE_ROWS)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(ParticipantsLoaded(rows, reading=reading, wanted=wanted))

    @work(thread=True, exclusive=True, group="participants")
    def _load_all(self, reading: int) -> None:
        try:
            rows = self._db.participants(self._actor)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(ParticipantsLoaded(rows, reading=reading))

    @work(thread=True, exclusive=True, group="protocol")
    def _load_protocol(self) -> None:
        try:
            protocol = self._db.protocol()
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(ProtocolLoaded(protocol))

    def on_protocol_loaded(self, message: ProtocolLoaded) -> None:
        """The criteria and consent forms are known: screening and consent can start."""
        self._protocol = message.protocol
        self.refresh_bindings()

    def on_participants_loaded(self, message: ParticipantsLoaded) -> None:
        """A first page: show it, unless the whole list is here already or the filters
        have changed since. The whole list: keep it, and show the current filters' page."""
        if message.reading != self._reading:
            return
        if message.wanted is not None:
            self.call_after_refresh(self._read_whole_list)
            if self._pages.complete or message.wanted != self._wanted():
                return
            self._pages = ParticipantPages(message.participants, wanted=message.wanted)
        else:
            wanted = self._wanted() or ParticipantFilter()
            self._pages = ParticipantPages(message.participants, complete=True, wanted=wanted)
        wanted_id = self._select_after_load
        if wanted_id is not None and self._pages.show_page_of(wanted_id):
            self._paint(select=wanted_id)
        else:
            self._paint()

    def _paint(self, *, select: str | None = None, row: int = 0) -> None:
        """Show the current page (a hundred rows at most), the cursor on ``select`` if it
        is there, else on ``row``."""
        table = self.query_one("#participants", DataTable)
        shown = self._pages.shown()
        if shown != self._painted:
            fill_table(
                table, COLUMNS,
                [(p.id, p.stratum, p.status, p.randomization_number or "", p.label_code or "")
                 for p in shown],
                [p.id for p in shown],
            )
            self._painted = shown
        if select is not None and self._pages.get(select) is not None:
            table.move_cursor(row=table.get_row_index(select))
        elif shown:
            table.move_cursor(row=min(row, len(shown) - 1))
        self.query_one("#participant-page", Static).update(Content(self._pages.describe()))
        self._show_selected()
        self.refresh_bindings()

    def _refilter(self) -> None:
        """Filter the list held in memory; until the whole list is here, ask the database
        for the first page."""
        wanted = self._wanted()
        if wanted is None:
            return
        selected = self.selected_id()
        if self._pages.refilter(wanted):
            self._paint(select=selected if selected and self._pages.show_page_of(selected)
                        else None)
        else:
            self._load_page(self._reading, wanted)

    def on_select_changed(self, _event: Select.Changed) -> None:
        """A filter changed."""
        self._refilter()

    def on_input_changed(self, event: Input.Changed) -> None:
        """Search as you type."""
        if event.input.id == "search":
            self._refilter()

    def on_participant_table_page_turn(self, event: ParticipantTable.PageTurn) -> None:
        """The cursor went past the page's edge: the next page from its top, or the
        previous one from its bottom."""
        self._turn(event.step)

    def action_next_page(self) -> None:
        """Show the next page of the list."""
        self._turn(+1)

    def action_previous_page(self) -> None:
        """Show the previous page of the list."""
        self._turn(-1)

    def _turn(self, step: int) -> None:
        if self._pages.turn(step):
            self._paint(row=0 if step > 0 else self._pages.page_rows - 1)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the search box goes to the table."""
        event.stop()
        self.query_one("#participants", DataTable).focus()

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        """Describe the participant under the cursor."""
        self._show_selected()
        self.refresh_bindings()

    def selected(self) -> ParticipantView | None:
        """The participant under the cursor, if any."""
        pid = self.selected_id()
        return None if pid is None else self._pages.get(pid)

    def selected_id(self) -> str | None:
        """The id of the participant under the cursor, if any."""
        table = self.query_one("#participants", DataTable)
        if not self._painted or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return key if isinstance(key, str) else None

    def _show_selected(self) -> None:
        p = self.selected()
        if p is not None:
            text = describe_participant(p)
        elif self._filters() != (None, None, None):
            text = "No participant matches these filters."
        else:
            text = "No participants yet."
            if self._actor.can(Permission.ENROL):
                text += f" Press {SCREEN_PARTICIPANT.key} to screen one."
        self.query_one("#participant-detail", Static).update(Content(text))

    # --- which steps are offered -------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Enrolment steps only for those who enrol; greyed while nothing is selected.
        Page turns only while there is a page that way."""
        if action == NEXT_PAGE.action:
            return True if self._pages.page < self._pages.pages - 1 else None
        if action == PREVIOUS_PAGE.action:
            return True if self._pages.page > 0 else None
        if action in (OPEN_DIARY.action, SHOW_OUTCOMES.action):
            return True if self.selected() is not None else None
        if action == IMPORT_DIARY.action:
            return True if self._actor.can(Permission.RECORD_DIARY) else False
        if action == EMERGENCY_UNBLIND.action:
            if not self._actor.can(Permission.UNBLIND):
                return False
            p = self.selected()
            return True if p is not None and p.randomization_number else None
        if action not in WRITE_ACTIONS:
            return True
        if not self._actor.can(Permission.ENROL):
            return False
        if action == SCREEN_PARTICIPANT.action:
            return True if self._protocol is not None else None
        p = self.selected()  # greyed out unless the participant's status allows the step
        return True if p is not None and refusal(action, p) is None else None

    def on_key(self, event: events.Key) -> None:
        """The key of a greyed-out step says why it is not offered for this participant."""
        active = self.active_bindings.get(event.key)
        p = self.selected()
        if active is None or active.enabled or p is None or self._busy:
            return
        if active.binding.action in WRITE_ACTIONS and self._actor.can(Permission.ENROL):
            reason = refusal(active.binding.action, p)
            if reason is not None:
                event.stop()
                self.notify(reason, title=p.id, severity="warning")

    def _target(self, action: str) -> ParticipantView | None:
        """The selected participant, if this step may be taken for them (else say why)."""
        p = self.selected()
        if p is None or self._busy:
            return None
        reason = refusal(action, p)
        if reason is not None:
            self.notify(reason, title=p.id, severity="warning")
            return None
        return p

    # --- the steps ---------------------------------------------------------------------

    def action_screen_participant(self) -> None:
        """Open the screening form."""
        if self._protocol is None:
            return
        scope = self._actor.scope
        sites = self._sites if scope is None else tuple(sorted(scope))
        form = ScreeningScreen(self._db, self._actor, self._protocol, sites)
        self.app.push_screen(form, self._screened)

    def _screened(self, view: ParticipantView | None) -> None:
        if view is not None:
            self._tell(screening_outcome(view), warn=not view.eligible)
            self._clear_filters()
            self.reload(select=view.id)

    def action_record_consent(self) -> None:
        """Ask for the consent date and form version, then record them."""
        p = self._target(RECORD_CONSENT.action)
        if p is None or self._protocol is None:
            return
        dialog = ConsentDialog(
            p.id, today=self._protocol.site_time(p.site).today(self._db.clock.now()),
            form_versions=self._protocol.consent.form_versions,
        )

        def record(entry: ConsentEntry | None) -> None:
            if entry is not None:
                self._run(lambda: self._db.consent(
                    self._actor, p.id, on=entry.on, form_version=entry.form_version
                ), "consented")

        self.app.push_screen(dialog, record)

    def action_randomize(self) -> None:
        """Confirm, then claim the next sealed envelope. Asking again for a randomized
        participant shows the same number and uses no envelope, so it needs no confirming."""
        p = self._target(RANDOMIZE.action)
        if p is None:
            return
        if p.randomization_number:
            self._randomize(p.id)
            return
        question = (
            f"Randomize {p.id} (stratum {p.stratum})?\n\nThis takes the next sealed envelope "
            "of the stratum and cannot be undone."
        )
        dialog = ConfirmDialog(f"Randomize {p.id}", question, confirm="Randomize")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._randomize(p.id)

        self.app.push_screen(dialog, confirmed)

    def _randomize(self, pid: str) -> None:
        self._busy = True
        self._claim(pid)

    @work(thread=True, exclusive=True, group="enrolment")
    def _claim(self, pid: str) -> None:
        try:
            result = self._db.randomize(self._actor, pid)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(ParticipantRandomized(result))

    def on_participant_randomized(self, message: ParticipantRandomized) -> None:
        """Show the number and label code; the list shows them too."""
        self._busy = False
        r = message.randomization
        self.app.push_screen(RandomizedDialog(r))
        self.reload(select=r.participant_id)

    def action_withdraw(self) -> None:
        """Ask for the reason, then withdraw."""
        p = self._target(WITHDRAW.action)
        if p is None:
            return

        def withdraw(reason: str | None) -> None:
            if reason is not None:
                self._run(lambda: self._db.withdraw(self._actor, p.id, reason=reason), "withdrawn")

        self.app.push_screen(WithdrawDialog(p.id), withdraw)

    def action_open_diary(self) -> None:
        """The selected participant's headache diary, as a calendar."""
        from trialkit.tui.screens.diary import DiaryScreen

        p = self.selected()
        if p is not None:
            self.app.push_screen(DiaryScreen(self._db, self._actor, p.id),
                                 lambda _none: self.reload(select=p.id))

    # --- the infusion, outcomes and diary files -----------------------------------------

    def _site_today(self, site: str) -> date:
        assert self._protocol is not None
        return self._protocol.site_time(site).today(self._db.clock.now())

    def action_schedule_infusion(self) -> None:
        """Ask for the planned infusion day, then set it (the pharmacy queue shows it)."""
        p = self._target(SCHEDULE_INFUSION.action)
        if p is None or self._protocol is None:
            return

        def plan(on: date | None) -> None:
            if on is not None:
                self._record(lambda: self._planned(p.id, on))

        self.app.push_screen(ScheduleDialog(p.id, today=self._site_today(p.site)), plan)

    def _planned(self, pid: str, on: date) -> StepRecorded:
        view = self._db.plan_infusion(self._actor, pid, on=on)
        return StepRecorded(view.id, f"{view.id}: infusion planned for {on.isoformat()}.")

    def action_record_infusion(self) -> None:
        """Ask for the day and start time, then record the infusion (study day 0)."""
        p = self._target(RECORD_INFUSION.action)
        if p is None or self._protocol is None:
            return

        def infuse(entry: InfusionEntry | None) -> None:
            if entry is not None:
                self._record(lambda: self._infused(p.id, entry))

        self.app.push_screen(InfuseDialog(p.id, today=self._site_today(p.site)), infuse)

    def _infused(self, pid: str, entry: InfusionEntry) -> StepRecorded:
        day0 = self._db.infuse(self._actor, pid, on=entry.on, at=entry.at)
        return StepRecorded(pid, f"{pid}: infused on {day0.isoformat()} (study day 0).")

    def action_import_diary(self) -> None:
        """Ask for a diary CSV file, then import it: every row or none."""
        if self._busy or not self._actor.can(Permission.RECORD_DIARY):
            return

        def chosen(path: Path | None) -> None:
            if path is not None:
                self._record(lambda: self._imported(path))

        self.app.push_screen(DiaryImportDialog(), chosen)

    def _imported(self, path: Path) -> StepRecorded:
        r = self._db.import_diary(self._actor, path)
        return StepRecorded(None, f"Imported {r.rows} diary days of {r.participants} "
                                  f"participants from {r.source} (sha256 {r.sha256[:12]}…).")

    def _record(self, call: Callable[[], StepRecorded]) -> None:
        self._busy = True
        self._step(call)

    @work(thread=True, exclusive=True, group="enrolment")
    def _step(self, call: Callable[[], StepRecorded]) -> None:
        from trialkit.services.diary.file_import import ImportRejected

        try:
            message = call()
        except ImportRejected as exc:
            self.post_message(DiaryImportRefused(exc.source, exc.problems, exc.total))
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(message)

    def on_step_recorded(self, message: StepRecorded) -> None:
        """Planned, infused or imported: say so and show it."""
        self._busy = False
        self._tell(message.text)
        self.reload(select=message.pid)

    def on_diary_import_refused(self, message: DiaryImportRefused) -> None:
        """Nothing imported: every problem, with its line number."""
        self._busy = False
        self.app.push_screen(ImportProblemsDialog(message.source, message.problems,
                                                  message.total))

    def action_show_outcomes(self) -> None:
        """The selected participant's outcomes per window (read in a worker)."""
        p = self.selected()
        if p is not None:
            self._load_outcomes(p.id)

    @work(thread=True, exclusive=True, group="outcomes")
    def _load_outcomes(self, pid: str) -> None:
        try:
            result = self._db.outcomes(self._actor, pid)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(OutcomesLoaded(result))

    def on_outcomes_loaded(self, message: OutcomesLoaded) -> None:
        """Show the table."""
        self.app.push_screen(OutcomesDialog(message.outcomes))

    def action_emergency_unblind(self) -> None:
        """Reason and password; the arm shows in the dialog only, gone when it closes."""
        p = self.selected()
        if p is None or not p.randomization_number:
            return

        def closed(_done: bool | None) -> None:
            self.reload(select=p.id)

        self.app.push_screen(UnblindDialog(self._db, self._actor, p.id), closed)

    def _run(self, call: Callable[[], ParticipantView], what: str) -> None:
        self._busy = True
        self._change(call, what)

    @work(thread=True, exclusive=True, group="enrolment")
    def _change(self, call: Callable[[], ParticipantView], what: str) -> None:
        try:
            view = call()
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(ParticipantChanged(view, what))

    def on_participant_changed(self, message: ParticipantChanged) -> None:
        """Consented or withdrawn: say so and show it."""
        self._busy = False
        self._tell(f"{message.participant.id} {message.what}.")
        self.reload(select=message.participant.id)

    def on_service_failed(self, _message: ServiceFailed) -> None:
        """Refused (the app shows why): ready for the next step."""
        self._busy = False

    def _tell(self, text: str, *, warn: bool = False) -> None:
        self.notify(text, title="Participants", severity="warning" if warn else "information")

    # --- moving around -----------------------------------------------------------------

    def _clear_filters(self) -> None:
        with self.prevent(Select.Changed, Input.Changed):
            self.query_one("#site-filter", Select).clear()
            self.query_one("#status-filter", Select).clear()
            self.query_one("#search", Input).value = ""

    def action_focus_search(self) -> None:
        """Put the cursor in the search box."""
        self.query_one("#search", Input).focus()

    def action_refresh(self) -> None:
        """Read the list again."""
        self.reload()

    def action_back(self) -> None:
        """From a filter, back to the table; from the table, back home."""
        table = self.query_one("#participants", DataTable)
        if not table.has_focus:
            table.focus()
        else:
            self.dismiss(None)
