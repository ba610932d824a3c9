"""The screening form: site, age, sex, weight, stratification factors and the protocol's
criteria as a yes/no checklist, with the eligibility verdict kept up to date as it is
filled in. Submitting screens the participant (in a worker); the screen then closes with
the new participant, whom the participants list selects."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from trialkit.application.trial_database import ScreeningEntry, TrialDatabase
from trialkit.domain.eligibility import SEXES, live_verdict
from trialkit.domain.errors import TrialkitError
from trialkit.tui.commands import BACK, SUBMIT_SCREENING, quiet_session_keys
from trialkit.tui.dialogs.confirm import ConfirmDialog
from trialkit.tui.messages import ParticipantChanged, ServiceFailed
from trialkit.tui.widgets.criterion_row import CriterionRow
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from trialkit.domain.protocol import Protocol
    from trialkit.services.actor import Actor
    from trialkit.services.enrolment.participants import ParticipantView

SEX_NAMES = {"F": "F (female)", "M": "M (male)"}


def describe_verdict(failed: tuple[str, ...], pending: tuple[str, ...]) -> tuple[str, str]:
    """The live eligibility line and its style class (failed / pending / eligible)."""
    unanswered = f"{len(pending)} of the criteria still unanswered" if pending else ""
    if failed:
        tail = f" · {unanswered}" if unanswered else ""
        return f"NOT ELIGIBLE — fails {', '.join(failed)}{tail}", "failed"
    if pending:
        return f"Eligible so far — {unanswered}", "pending"
    return "ELIGIBLE — every criterion is met", "met"


def screening_outcome(view: ParticipantView) -> str:
    """What the coordinator is told after screening: the new id and the verdict."""
    if view.eligible:
        return f"Screened {view.id} ({view.stratum}): eligible"
    return f"Screened {view.id}: NOT eligible (failed {', '.join(view.failed)})"


class ScreeningScreen(Screen["ParticipantView | None"]):
    """A new screening at one of the coordinator's sites. Dismissed with the screened
    participant, or None when left without screening."""

    BINDINGS = [SUBMIT_SCREENING.binding(), BACK.binding(), *quiet_session_keys()]

    def __init__(
        self, db: TrialDatabase, actor: Actor, protocol: Protocol, sites: tuple[str, ...]
    ) -> None:
        super().__init__()
        self._db = db
        self._actor = actor
        self._protocol = protocol
        self._sites = sites
        self._busy = False

    def compose(self) -> ComposeResult:
        """Fields in a grid, then the checklist; the verdict stays above the footer."""
        yield Header()
        yield TrainingBanner()
        with VerticalScroll(id="screening-form"):
            with Grid(id="screening-fields"):
                yield from self._fields()
            yield Static(
                "Eligibility criteria — y yes · n no · (in)clusion needs yes, (ex)clusion no",
                classes="heading",
            )
            for criterion in self._protocol.eligibility.criteria:
                yield CriterionRow(criterion)
            yield Button("Screen participant (ctrl+s)", id="submit", compact=True)
        yield Static("", id="live-eligibility")
        yield Footer(compact=True)

    def _fields(self) -> ComposeResult:
        only = self._sites[0] if len(self._sites) == 1 else Select.NULL
        yield Label("Site")
        yield Select([(s, s) for s in self._sites], prompt="choose", value=only, id="site",
                     compact=True)
        yield Label("Age")
        yield Input(placeholder="years", type="integer", id="age", compact=True)
        yield Label("Sex")
        yield Select([(SEX_NAMES.get(s, s), s) for s in SEXES], prompt="choose", id="sex",
                     compact=True)
        yield Label("Weight")
        yield Input(placeholder="kg", type="number", id="weight", compact=True)
        for factor in self._protocol.stratification:
            yield Label(Content(factor.name))
            yield Select(
                [(f"{lv.name} ({lv.code})", lv.code) for lv in factor.levels], prompt="choose",
                id=f"factor-{factor.id}", compact=True, classes="factor",
            )

    def on_mount(self) -> None:
        """Start at the first empty field and show the verdict so far."""
        self.sub_title = "Screen a participant"
        start = "#age" if len(self._sites) == 1 else "#site"
        self.query_one(start).focus()
        self._update_verdict()

    # --- the live verdict --------------------------------------------------------------

    def _age(self) -> int | None:
        try:
            return int(self.query_one("#age", Input).value.strip())
        except ValueError:
            return None

    def _rows(self) -> list[CriterionRow]:
        return list(self.query(CriterionRow))

    def verdict(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(failed, still unanswered) criterion ids, from what is on the form now."""
        answers = {row.criterion.id: row.answer for row in self._rows() if not row.automatic}
        return live_verdict(self._age(), answers, self._protocol)

    def _update_verdict(self) -> None:
        failed, pending = self.verdict()
        for row in self._rows():
            cid = row.criterion.id
            row.show_met(None if cid in pending else cid not in failed)
        text, state = describe_verdict(failed, pending)
        line = self.query_one("#live-eligibility", Static)
        line.update(Content(text))
        for name in ("failed", "pending", "met"):
            line.set_class(name == state, name)

    def on_criterion_row_changed(self, message: CriterionRow.Changed) -> None:
        """An answer changed: work out the verdict again."""
        self._update_verdict()

    def on_input_changed(self, event: Input.Changed) -> None:
        """The age decides the automatic check."""
        if event.input.id == "age":
            self._update_verdict()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a field moves on, as Tab does."""
        event.stop()
        self.focus_next()

    def on_select_changed(self, event: Select.Changed) -> None:
        """A choice made: move on, as after typing a field."""
        if event.select.has_focus:
            self.focus_next()

    # --- submitting --------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """The button at the foot of the form submits it."""
        event.stop()
        self.action_submit()

    def action_submit(self) -> None:
        """Check the form is complete, then screen the participant in a worker."""
        if self._busy:
            return
        try:
            entry = self.entry()
        except ValueError as exc:
            self.notify(str(exc), title="Screening", severity="warning")
            return
        self._busy = True
        self.query_one("#submit", Button).disabled = True
        self._screen(entry)

    def entry(self) -> ScreeningEntry:
        """What the form holds, or a ValueError naming the first thing missing (focused)."""
        site = self._choice("#site", "Choose the site.")
        age = self._age()
        if age is None:
            raise self._missing("#age", "Enter the age in years.")
        sex = self._choice("#sex", "Choose the sex.")
        try:
            weight = float(self.query_one("#weight", Input).value.strip())
        except ValueError:
            raise self._missing("#weight", "Enter the weight in kg.") from None
        factors = {
            f.id: self._choice(f"#factor-{f.id}", f"Choose the {f.name.lower()}.")
            for f in self._protocol.stratification
        }
        unanswered = [row for row in self._rows() if not row.automatic and row.answer is None]
        if unanswered:
            unanswered[0].focus()
            ids = ", ".join(row.criterion.id for row in unanswered)
            raise ValueError(f"Answer every criterion: {len(unanswered)} unanswered ({ids}).")
        answers = {
            row.criterion.id: "yes" if row.answer else "no"
            for row in self._rows()
            if not row.automatic
        }
        return ScreeningEntry(site, age, sex, weight, factors, answers)

    def _choice(self, selector: str, missing: str) -> str:
        value = self.query_one(selector, Select).value
        if not isinstance(value, str):
            raise self._missing(selector, missing)
        return value

    def _missing(self, selector: str, message: str) -> ValueError:
        self.query_one(selector).focus()
        return ValueError(message)

    @work(thread=True, exclusive=True, group="screening")
    def _screen(self, entry: ScreeningEntry) -> None:
        try:
            view = self._db.screen(self._actor, entry)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(ParticipantChanged(view, "screened"))

    def on_participant_changed(self, message: ParticipantChanged) -> None:
        """Screened: close the form with the participant."""
        message.stop()
        self.dismiss(message.participant)

    def on_service_failed(self, _message: ServiceFailed) -> None:
        """Refused (the app shows why): the form stays as it was, ready to fix."""
        self._busy = False
        self.query_one("#submit", Button).disabled = False

    # --- leaving -----------------------------------------------------------------------

    def _touched(self) -> bool:
        typed = any(field.value for field in self.query(Input))
        return typed or any(row.answer is not None for row in self._rows())

    def action_back(self) -> None:
        """Leave without screening (asking first if anything was entered)."""
        if self._busy:
            return
        if not self._touched():
            self.dismiss(None)
            return
        question = "Leave the form? Nothing entered here is saved."
        self.app.push_screen(
            ConfirmDialog("Discard screening", question, confirm="Discard"), self._discard
        )

    def _discard(self, discard: bool | None) -> None:
        if discard:
            self.dismiss(None)
