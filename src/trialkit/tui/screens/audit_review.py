"""Audit review (monitor, admin, investigator): the events of the audit trail with filters,
read a page at a time as the cursor nears the end (keyset pages in a worker, so a trial of
any size never stalls the screen); the event under the cursor with the fields it changed;
one participant's timeline; verification of the whole trail with a progress bar; a signed
checkpoint of the trail written on request (to the current folder at a terminal, a download
in a browser).

Every reader is blinded: what the service returns has no arm, and nothing here adds one."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, ProgressBar, Select, Static

from trialkit.domain.audit_diff import describe
from trialkit.domain.errors import TrialkitError
from trialkit.domain.text import printable
from trialkit.services.integrity.audit_review import (
    AuditFilter,
    AuditPage,
    ReviewedEvent,
    time_bound,
)
from trialkit.tui.commands import (
    AUDIT_CHECKPOINT,
    AUDIT_FILTER,
    AUDIT_SIGN_INS,
    AUDIT_TIMELINE,
    AUDIT_VERIFY,
    BACK,
    REFRESH,
    quiet_session_keys,
)
from trialkit.tui.messages import ServiceFailed
from trialkit.tui.widgets.fitted_table import literal
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from pathlib import Path

    from trialkit.application.trial_database import TrialDatabase
    from trialkit.services.actor import Actor
    from trialkit.services.integrity.verification import VerifyReport
    from trialkit.tui.app import TrialkitApp

PAGE = 200
# Read the next page when the cursor comes this close to the last row read.
AHEAD = 40
# Column widths fit 120 columns beside the detail pane; the detail shows everything whole.
COLUMNS = (("Seq", 4), ("When (UTC)", 16), ("User", 6), ("Action", 21), ("About", 14))
FILTER_INPUTS = ("participant", "by", "action", "since", "until")


class AuditPageLoaded(Message):
    """A page of events was read for the filters of ``generation``."""

    def __init__(self, page: AuditPage, generation: int) -> None:
        super().__init__()
        self.page = page
        self.generation = generation


class AuditVerified(Message):
    """The whole trail was verified."""

    def __init__(self, report: VerifyReport) -> None:
        super().__init__()
        self.report = report


def about(e: ReviewedEvent) -> str:
    """What an event is about, short: a participant by their id, anything else by kind."""
    if e.entity == "participant":
        return e.entity_id
    return f"{e.entity} {e.entity_id}"


def event_detail(e: ReviewedEvent) -> str:
    """An event as the detail pane shows it: who, when, why, then each changed field."""
    lines = [
        f"#{e.seq}  {e.action}  {e.entity}:{e.entity_id}",
        f"{e.at:%Y-%m-%d %H:%M:%S} UTC · {e.user} ({e.role})",
    ]
    if e.participants:
        lines.append("Participants: " + ", ".join(e.participants))
    if e.reason:
        lines.append(f"Reason: {e.reason}")
    lines.append("")
    if e.changes:
        lines.append("Changed:" if any(c.kind != "added" for c in e.changes) else "Recorded:")
        lines += [f"  {describe(c)}" for c in e.changes]
    else:
        lines.append("No field changed (the event records an act, such as a sign-in).")
    return "\n".join(printable(line) for line in lines)


class AuditReviewScreen(Screen[None]):
    """The audit trail, filtered and paged, with what each event changed."""

    BINDINGS = [
        *(c.binding() for c in (AUDIT_FILTER, AUDIT_TIMELINE, AUDIT_SIGN_INS,
                                AUDIT_VERIFY, AUDIT_CHECKPOINT, REFRESH, BACK)),
        *quiet_session_keys(),
    ]
    # Under 110 columns the events and what changed are stacked (trialkit.tcss): side by
    # side at 80 columns the events showed no action.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    def __init__(self, db: TrialDatabase, actor: Actor, sites: tuple[str, ...]) -> None:
        super().__init__()
        self._db = db
        self._actor = actor
        self._sites = sites
        self._events: list[ReviewedEvent] = []
        self._next: int | None = None
        self._generation = 0
        self._filters = AuditFilter()
        self._reading = False
        self._verifying = False

    def compose(self) -> ComposeResult:
        """Filters on top; the events and the selected one side by side; verification."""
        yield Header()
        yield TrainingBanner()
        with Horizontal(id="audit-filters"):
            yield Input(placeholder="participant", id="audit-participant", compact=True)
            yield Input(placeholder="by user", id="audit-by", compact=True)
            yield Input(placeholder="action", id="audit-action", compact=True)
            yield Select([(s, s) for s in self._sites], prompt="All sites", id="audit-site",
                         compact=True)
            yield Input(placeholder="since (UTC date)", id="audit-since", compact=True)
            yield Input(placeholder="until (UTC date)", id="audit-until", compact=True)
        with Horizontal(id="audit-body"):
            table: DataTable[str] = DataTable(id="audit-events", cursor_type="row",
                                              zebra_stripes=True)
            table.border_title = "Events"
            yield table
            with VerticalScroll(id="audit-detail-box") as box:
                box.border_title = "What changed"
                yield Static("", id="audit-detail")
        yield Static("Reading the audit trail…", id="audit-status")
        with Horizontal(id="audit-verify-row"):
            yield ProgressBar(id="audit-verify-progress", show_eta=False)
            yield Static("Press v to verify the whole trail.", id="audit-verify-result")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Columns, then the first page."""
        self.sub_title = "Audit review"
        table = self.query_one("#audit-events", DataTable)
        for title, width in COLUMNS:
            table.add_column(title, width=width)
        table.focus()
        self._apply(AuditFilter())

    # --- filters ---------------------------------------------------------------------

    def _typed(self, name: str) -> str | None:
        return self.query_one(f"#audit-{name}", Input).value.strip() or None

    def _read_filters(self) -> AuditFilter | None:
        """The filters as typed; a time that is not one is said, and nothing is read."""
        site = self.query_one("#audit-site", Select).value
        try:
            since = time_bound(self._typed("since"), "since", end=False)
            until = time_bound(self._typed("until"), "until", end=True)
        except TrialkitError as exc:
            self.notify(tui_message(exc), severity="error")
            return None
        participant = self._typed("participant")
        return AuditFilter(
            participant=participant.upper() if participant else None,
            user=self._typed("by"), action=self._typed("action"), since=since, until=until,
            site=site if isinstance(site, str) else None, sign_ins=self._filters.sign_ins,
        )

    def _apply(self, filters: AuditFilter) -> None:
        """Start again from the first event with these filters."""
        self._filters = filters
        self._generation += 1
        self._events.clear()
        self._next = None
        self.query_one("#audit-events", DataTable).clear()
        self.query_one("#audit-detail", Static).update("")
        self._say("Reading the audit trail…")
        self._read(filters, None, self._generation)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a filter applies them all and returns to the events."""
        event.stop()
        filters = self._read_filters()
        if filters is not None:
            self._apply(filters)
            self.query_one("#audit-events", DataTable).focus()

    def on_select_changed(self, _event: Select.Changed) -> None:
        """The site changed: apply at once."""
        filters = self._read_filters()
        if filters is not None:
            self._apply(filters)

    def action_focus_filters(self) -> None:
        """Go to the first filter (Enter applies them)."""
        self.query_one("#audit-participant", Input).focus()

    def action_timeline(self) -> None:
        """Every event of the selected event's participant, in order."""
        e = self.selected()
        if e is None or not e.participants:
            self.notify("This event is about no participant: choose one that is.",
                        severity="warning")
            return
        self._show_timeline(e.participants[0])

    def _show_timeline(self, pid: str) -> None:
        for name in FILTER_INPUTS:
            self.query_one(f"#audit-{name}", Input).value = ""
        self.query_one("#audit-participant", Input).value = pid
        self.query_one("#audit-site", Select).clear()
        self._apply(AuditFilter(participant=pid, sign_ins=self._filters.sign_ins))

    def action_toggle_sign_ins(self) -> None:
        """Show sign-ins too, or leave them out again."""
        filters = self._read_filters()
        if filters is not None:
            self._apply(replace(filters, sign_ins=not self._filters.sign_ins))

    def action_refresh(self) -> None:
        """Read again from the first event."""
        self._apply(self._filters)

    def action_back(self) -> None:
        """Back to home."""
        self.app.pop_screen()

    # --- pages -----------------------------------------------------------------------

    @work(thread=True, group="audit-page")
    def _read(self, filters: AuditFilter, after: int | None, generation: int) -> None:
        try:
            page = self._db.audit_page(self._actor, filters, after=after, limit=PAGE)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
            self.post_message(AuditPageLoaded(AuditPage([], None), generation))
        else:
            self.post_message(AuditPageLoaded(page, generation))

    def on_audit_page_loaded(self, message: AuditPageLoaded) -> None:
        """Add the page's rows (a page read for filters since replaced is dropped)."""
        if message.generation != self._generation:
            return
        self._reading = False
        table = self.query_one("#audit-events", DataTable)
        first = not self._events
        for e in message.page.events:
            table.add_row(str(e.seq), f"{e.at:%Y-%m-%d %H:%M}", literal(printable(e.user)),
                          literal(printable(e.action)), literal(printable(about(e))),
                          key=str(e.seq))
        self._events += message.page.events
        self._next = message.page.next_after
        self._say_count()
        if first:
            self._show_selected()

    def _say_count(self) -> None:
        n = len(self._events)
        f = self._filters
        what = f"Timeline of {f.participant}" if f.participant else "Events"
        more = " · more below" if self._next is not None else ""
        sign_ins = "sign-ins shown" if f.sign_ins else "sign-ins hidden (s shows them)"
        self._say(f"{what}: {n:,} read{more} · {sign_ins}" if n else
                  f"{what}: no event matches these filters · {sign_ins}")

    def _say(self, text: str) -> None:
        self.query_one("#audit-status", Static).update(Content(text))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Show the event under the cursor; read the next page before the cursor gets
        to the end."""
        self._show_selected()
        near_end = event.cursor_row >= len(self._events) - AHEAD
        if near_end and self._next is not None and not self._reading:
            self._reading = True
            self._read(self._filters, self._next, self._generation)

    def selected(self) -> ReviewedEvent | None:
        """The event under the cursor, if any."""
        table = self.query_one("#audit-events", DataTable)
        row = table.cursor_row
        return self._events[row] if 0 <= row < len(self._events) else None

    def _show_selected(self) -> None:
        e = self.selected()
        self.query_one("#audit-detail", Static).update(
            Content(event_detail(e)) if e is not None else Content(""))
        self.refresh_bindings()

    # --- a signed checkpoint -----------------------------------------------------------

    def action_write_checkpoint(self) -> None:
        """Write a signed checkpoint at once, signed with the key the sign-in unlocked
        (audited): how many events the trail holds and the last one's hash, to keep
        outside the database (`trialkit audit verify --checkpoint FILE` checks it)."""
        self._checkpoint()

    @work(thread=True, exclusive=True, group="audit-checkpoint")
    def _checkpoint(self) -> None:
        from datetime import UTC, datetime
        from pathlib import Path

        app = cast("TrialkitApp", self.app)
        code = app.trial.trial_code.lower() if app.trial else "trial"
        name = f"{code}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.checkpoint.json"
        path = Path(app.place(name))
        try:
            checkpoint = self._db.write_checkpoint(app.actor or self._actor, path)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            app.call_from_thread(self._checkpoint_written, path, checkpoint.events)

    def _checkpoint_written(self, path: Path, events: int) -> None:
        app = cast("TrialkitApp", self.app)
        where = ("sent to your browser as " + path.name) if app.ticket is not None else (
            f"written to {path}")
        app.hand_over(path)
        self.notify(f"Signed checkpoint of {events:,} events {where}. Keep it outside the "
                    "database.", title="Checkpoint", timeout=15)

    # --- verification ------------------------------------------------------------------

    def action_verify(self) -> None:
        """Verify the whole trail (chain, audited states, lists) in a worker."""
        if self._verifying:
            return
        self._verifying = True
        bar = self.query_one("#audit-verify-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self.query_one("#audit-verify-result", Static).update(
            Content("Verifying the chain, every audited record and every list…"))
        self._verify()

    @work(thread=True, exclusive=True, group="audit-verify")
    def _verify(self) -> None:
        try:
            report = self._db.verify_audit(progress=self._verify_progress)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
            self.app.call_from_thread(self._verify_failed)
        else:
            self.post_message(AuditVerified(report))

    def _verify_progress(self, done: int, total: int) -> None:
        """From the worker: move the bar (on the UI thread)."""
        self.app.call_from_thread(
            self.query_one("#audit-verify-progress", ProgressBar).update,
            total=max(total, 1), progress=done,
        )

    def _verify_failed(self) -> None:
        self._verifying = False
        self.query_one("#audit-verify-result", Static).update(Content("Not verified."))

    def on_audit_verified(self, message: AuditVerified) -> None:
        """Show the result: OK with the chain head, or the first broken event and why."""
        self._verifying = False
        r = message.report
        bar = self.query_one("#audit-verify-progress", ProgressBar)
        done = bar.total or 1  # every row read
        bar.update(total=done, progress=done)
        box = self.query_one("#audit-verify-result", Static)
        if r.ok:
            box.update(Content(f"OK: {r.events:,} events, chain head {r.head[:16]}"))
            box.set_classes("verified")
        else:
            box.update(Content(printable(f"FAILED: {r.problem}")))
            box.set_classes("error")
