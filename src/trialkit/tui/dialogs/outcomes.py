"""A participant's outcomes per diary window, as ``trialkit outcomes`` shows them: days
expected and recorded, headache days, headache days per 28 days (baseline and each
window), change from baseline. Blinded: nothing here depends on an arm."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import DataTable, Static

from trialkit.tui.dialogs.dialog import Dialog
from trialkit.tui.widgets.fitted_table import fill_table

if TYPE_CHECKING:
    from trialkit.services.diary.outcomes import ParticipantOutcomes

COLUMNS = ("Window", "From", "To", "Expected", "Recorded", "Headache days", "Mod/sev",
           "Acute", "Per 28 days", "Change")


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def outcome_rows(o: ParticipantOutcomes) -> list[tuple[str, ...]]:
    """One row per window, the primary one starred; '-' is missing (too few days)."""
    return [
        (w.window + (" *" if w.primary else ""), _cell(w.start), _cell(w.end),
         str(w.days_expected), str(w.days_recorded), _cell(w.headache_days),
         _cell(w.moderate_severe_days), _cell(w.acute_medication_days),
         _cell(w.headache_days_28), _cell(w.change_from_baseline))
        for w in o.windows
    ]


def outcome_heading(o: ParticipantOutcomes) -> str:
    """Who, where they are, and the days the windows count from."""
    lines = [f"{o.participant_id} ({o.status.value}) · randomized "
             f"{o.randomized_on or 'not yet'} · infused {o.infused_on or 'not yet'}"]
    if o.provisional:
        lines.append("Baseline shown as it would be if randomized today.")
    return "\n".join(lines)


class OutcomesDialog(Dialog[None]):
    """The outcomes table of one participant."""

    def __init__(self, outcomes: ParticipantOutcomes) -> None:
        super().__init__(f"Outcomes of {outcomes.participant_id}", cancel_result=None,
                         ok_label="Close", show_cancel=False)
        self._outcomes = outcomes

    def fields(self) -> ComposeResult:
        """Heading, the table, what the marks mean."""
        yield Static(Content(outcome_heading(self._outcomes)), classes="dialog-text")
        yield DataTable(id="outcomes-table", cursor_type="row", zebra_stripes=True)
        yield Static(Content("* primary window · per 28 days: headache days scaled to 28 "
                             "days · '-' missing (too few days recorded)"),
                     classes="dialog-text")

    def on_mount(self) -> None:
        """Fill the table, and start on Close."""
        fill_table(self.query_one("#outcomes-table", DataTable), COLUMNS,
                   outcome_rows(self._outcomes))
        super().on_mount()

    def result(self) -> None:
        """Close."""
        return None
