"""One eligibility criterion on the screening form: its answer, whether it is met, its text.

Answered criteria take y / n (and move on to the next); a click cycles yes and no. The
automatic ones (age) are not focusable: the form fills them in from the typed age."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.reactive import var
from textual.widgets import Static

from trialkit.tui.commands import ANSWER_NO, ANSWER_YES

if TYPE_CHECKING:
    from textual import events

    from trialkit.domain.protocol import Criterion


def answer_cell(automatic: bool, answer: bool | None, met: bool | None) -> str:
    """The left column: what was answered and a tick or cross for met or not."""
    said = "auto" if automatic else {True: "Yes", False: "No", None: ""}[answer]
    mark = {True: "✓", False: "✗", None: "?"}[met]
    return f"{said:<4} {mark}"


class CriterionRow(Horizontal):
    """A criterion of the protocol with its yes/no answer (None until answered)."""

    BINDINGS = [ANSWER_YES.binding(), ANSWER_NO.binding()]

    answer: var[bool | None] = var(None, init=False)
    """The coordinator's answer: True for yes, False for no, None while unanswered."""

    class Changed(Message):
        """An answer was given or changed."""

        def __init__(self, row: CriterionRow) -> None:
            super().__init__()
            self.row = row

    def __init__(self, criterion: Criterion) -> None:
        super().__init__(id=f"criterion-{criterion.id}", classes="criterion")
        self.criterion = criterion
        self.automatic = criterion.automatic is not None
        self.can_focus = not self.automatic
        self._met: bool | None = None

    def compose(self) -> ComposeResult:
        """Answer column, then id and text (wrapping)."""
        yield Static(answer_cell(self.automatic, None, None), classes="criterion-answer pending")
        kind = "in" if self.criterion.kind == "inclusion" else "ex"
        yield Static(
            Content.assemble((self.criterion.id, "bold"), f" ({kind}) ", self.criterion.text),
            classes="criterion-text",
        )

    @property
    def met(self) -> bool | None:
        """Whether the criterion is met, as last shown (None: not known yet)."""
        return self._met

    def show_met(self, met: bool | None) -> None:
        """Show the answer with a tick (met), a cross (not met) or a question mark."""
        self._met = met
        cell = self.query_one(".criterion-answer", Static)
        cell.update(answer_cell(self.automatic, self.answer, met))
        cell.set_class(met is True, "met")
        cell.set_class(met is False, "failed")
        cell.set_class(met is None, "pending")

    def watch_answer(self) -> None:
        """Tell the form, which works out the verdict."""
        self.post_message(self.Changed(self))

    def action_answer(self, yes: bool) -> None:
        """Answer, then move to the next field."""
        self.answer = yes
        self.screen.focus_next()

    def on_click(self, event: events.Click) -> None:
        """A click answers yes, the next no, and so on."""
        if self.automatic:
            return
        event.stop()
        self.focus()
        self.answer = self.answer is not True
