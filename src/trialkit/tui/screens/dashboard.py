"""The investigator's dashboard: enrolment per site against target, CONSORT counts, diary
completeness per window and the enrolment curve; locking the database and exporting the
blinded data. Blinded throughout: counts only, never split by arm."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual_plotext import PlotextPlot

from trialkit.domain.errors import TrialkitError
from trialkit.domain.roles import Permission
from trialkit.render.figures import consort_rows, enrolment_plot
from trialkit.tui.commands import BACK, EXPORT_DATA, LOCK_DATABASE, REFRESH, quiet_session_keys
from trialkit.tui.dialogs.confirm import ConfirmDialog
from trialkit.tui.dialogs.export import ExportDialog
from trialkit.tui.messages import CountsLoaded, DatabaseLocked, ServiceFailed, StatusLoaded
from trialkit.tui.widgets.fitted_table import fill_table
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from trialkit.application.trial_database import TrialDatabase
    from trialkit.services.actor import Actor
    from trialkit.services.exports.status import Consort, TrialCounts, TrialStatus
    from trialkit.tui.app import TrialkitApp


def consort_text(c: Consort) -> str:
    """The CONSORT flow as aligned lines of counts, whatever the window codes' length."""
    rows = consort_rows(c)
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}} {n:>5}" for label, n in rows)


def completeness_text(s: TrialStatus) -> str:
    """Diary completeness per window, one line."""
    parts = []
    for w in s.completeness:
        pct = "—" if w.percent is None else f"{w.percent:.0f}%"
        parts.append(f"{w.window} {pct}")
    overdue = f" · {len(s.overdue)} overdue" if s.overdue else ""
    return "Diary: " + " · ".join(parts) + overdue


# One colour per site in plotext's names, then the total.
ENROLMENT_COLUMNS = ("Site", "Rand.", "Target", "%")
_SITE_COLOURS = ("blue", "orange", "green", "magenta", "cyan")


def _colours(lines: int) -> list[str]:
    sites = [_SITE_COLOURS[i % len(_SITE_COLOURS)] for i in range(lines - 1)]
    return [*sites, "default"]


def curve_legend(series: list[tuple[str, str]]) -> Content:
    """The curve's legend as a line of its own above the plot (plotext's legend sits inside
    the plot, over whatever line runs along its top, usually the target)."""
    parts = [Content.styled("━━ ", "" if colour == "default" else colour) + Content(label)
             for label, colour in series]
    return Content("   ").join(parts)


class DashboardScreen(Screen[None]):
    """Counts, the curve, and the investigator's lock and export."""

    BINDINGS = [
        *(c.binding() for c in (LOCK_DATABASE, EXPORT_DATA, REFRESH, BACK)),
        *quiet_session_keys(),
    ]

    def __init__(self, db: TrialDatabase, actor: Actor) -> None:
        super().__init__()
        self._db = db
        self._actor = actor
        self._status: TrialStatus | None = None

    def compose(self) -> ComposeResult:
        """Enrolment and CONSORT side by side, completeness, the curve."""
        yield Header()
        yield TrainingBanner()
        with VerticalScroll(id="dashboard-body"):
            with Horizontal(id="dashboard-top"):
                table: DataTable[str] = DataTable(id="enrolment", cursor_type="none")
                table.border_title = "Enrolment"
                yield table
                consort = Static("", id="consort")
                consort.border_title = "CONSORT"
                yield consort
            yield Static("Reading the trial status…", id="completeness")
            yield Static("", id="curve-legend")
            yield PlotextPlot(id="curve")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Columns, then read."""
        self.sub_title = "Dashboard"
        fill_table(self.query_one("#enrolment", DataTable), ENROLMENT_COLUMNS, [])
        self._load()

    @work(thread=True, exclusive=True, group="status")
    def _load(self) -> None:
        def counts_read(counts: TrialCounts) -> None:
            self.post_message(CountsLoaded(counts))

        try:
            status = self._db.trial_status(self._actor, on_counts=counts_read)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(StatusLoaded(status))

    def on_counts_loaded(self, message: CountsLoaded) -> None:
        """Enrolment and CONSORT first, while the diary's part is read."""
        self._fill_counts(message.counts)

    def on_status_loaded(self, message: StatusLoaded) -> None:
        """Fill every panel."""
        s = self._status = message.status
        self._fill_counts(s)
        locked = f" · LOCKED {s.locked_at:%Y-%m-%d} by {s.locked_by}" if s.locked_at else ""
        self.query_one("#completeness", Static).update(Content(completeness_text(s) + locked))
        self._draw_curve(s)
        self.refresh_bindings()

    def _fill_counts(self, s: TrialCounts) -> None:
        table = self.query_one("#enrolment", DataTable)
        rows = [
            (site.code, str(site.randomized), str(site.target or "—"),
             "—" if site.percent_of_target is None else f"{site.percent_of_target:.0f}")
            for site in s.sites
        ]
        rows.append(("All", str(s.consort.randomized), str(s.target),
                     f"{100 * s.consort.randomized / s.target:.0f}" if s.target else "—"))
        fill_table(table, ENROLMENT_COLUMNS, rows)
        self.query_one("#consort", Static).update(Content(consort_text(s.consort)))

    def _draw_curve(self, s: TrialStatus) -> None:
        """Steps per site, the total and the target, to today; whole-number y ticks."""
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.title("Randomized (cumulative)")
        data = enrolment_plot(s)
        legend = self.query_one("#curve-legend", Static)
        plot.display = data is not None  # no empty axes with plotext's fractional ticks
        if data is None:
            legend.update("Nobody randomized yet: the curve starts at the first randomization.")
        else:
            series = [(line.label, colour)
                      for line, colour in zip(data.lines, _colours(len(data.lines)), strict=True)]
            series.append((f"target {data.target}", "red"))
            legend.update(curve_legend(series))
            for line, colour in zip(data.lines, _colours(len(data.lines)), strict=True):
                plt.plot(list(line.xs), list(line.ys), color=colour, marker="braille")
            plt.plot([0, data.span], [data.target, data.target], color="red", marker="braille")
            plt.xlim(0, data.span)
            plt.ylim(0, data.y_top)
            plt.yticks(list(data.y_ticks), [str(n) for n in data.y_ticks])
            plt.xticks([data.day(d) for d in data.x_ticks], [str(d) for d in data.x_ticks])
        plot.refresh()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Lock and export for those allowed; lock once."""
        if action == LOCK_DATABASE.action:
            if not self._actor.can(Permission.LOCK):
                return False
            return None if self._status is not None and self._status.locked_at else True
        if action == EXPORT_DATA.action:
            return self._actor.can(Permission.EXPORT)
        return True

    def action_lock_database(self) -> None:
        """Confirm, then lock."""
        question = ("Lock the database? No diary day, enrolment or dispensing can be "
                    "recorded after the lock. This cannot be undone.")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._lock()

        self.app.push_screen(ConfirmDialog("Lock database", question, confirm="Lock"), confirmed)

    @work(thread=True, exclusive=True, group="lock")
    def _lock(self) -> None:
        app = cast("TrialkitApp", self.app)
        code = app.trial.trial_code.lower() if app.trial else "trial"
        checkpoint = Path(app.place(f"{code}-lock.checkpoint.json"))
        try:
            result, _ = self._db.lock(app.actor or self._actor, checkpoint)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(DatabaseLocked(result, checkpoint))

    def on_database_locked(self, message: DatabaseLocked) -> None:
        """Say so (and where the signed checkpoint went) and read again."""
        r = message.result
        app = cast("TrialkitApp", self.app)
        path = message.checkpoint
        where = (f"sent to your browser as {path.name}" if app.ticket is not None
                 else f"written to {path}")
        app.hand_over(path)
        self.notify(f"Locked: {r.participants} participants, {r.diary_days} diary days. "
                    f"Signed checkpoint of the audit trail {where}: keep it outside the "
                    "database.", title="Lock", timeout=15)
        self._load()

    def action_export_data(self) -> None:
        """Kind, path and a progress bar."""
        self.app.push_screen(ExportDialog(self._db, self._actor))

    def action_refresh(self) -> None:
        """Read again."""
        self._load()

    def action_back(self) -> None:
        """Home."""
        self.dismiss(None)
