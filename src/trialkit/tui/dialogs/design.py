"""The design report the admin reads before sealing or extending (issue 14): the
protocol's randomization procedure and parameters, and the exact predictability and
imbalance figures beside the alternatives, as ``trialkit design report`` prints them
(``DesignReport.text``). It states no more than the protocol does: no arm, no list."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Button, Static

from trialkit.tui.dialogs.dialog import Dialog

if TYPE_CHECKING:
    from trialkit.services.enrolment.design_report import DesignReport


def _value(v: object) -> str:
    return ", ".join(str(x) for x in v) if isinstance(v, list) else str(v)


def describe_design(report: DesignReport, action: str) -> str:
    """What will be sealed with: the protocol's procedure and its parameters."""
    own = next(r.metrics.design for r in report.rows if r.protocol)
    params = "; ".join(f"{k.replace('_', ' ')} {_value(v)}" for k, v in own.parameters().items())
    ratio = ":".join(str(r) for r in own.ratio)
    return (
        f"The lists will be {action} with the protocol's design: {own.label()}, "
        f"procedure {own.procedure}, ratio {ratio}" + (f"; {params}." if params else ".")
    )


class DesignReviewDialog(Dialog[bool]):
    """The design and its figures; True to go on to sealing (or extending)."""

    def __init__(self, report: DesignReport, action: str) -> None:
        super().__init__("Randomization design", cancel_result=False, ok_label="Continue")
        self.report = report
        self._action = action

    def fields(self) -> ComposeResult:
        """The design, then the table of figures."""
        yield Static(Content(describe_design(self.report, self._action)), classes="dialog-text")
        with VerticalScroll(id="design-figures"):
            yield Static(Content(self.report.text()), id="design-table")
        yield Static(
            Content("To change the design, amend the protocol (trialkit design report "
                    "--out FILE.pdf draws the trade-off). Continue?"),
            classes="dialog-text",
        )

    def on_mount(self) -> None:
        """Wide enough for the table; Enter continues, Escape cancels."""
        self.query_one(".dialog").add_class("wide")
        self.query_one("#ok", Button).focus()

    def result(self) -> bool:
        """Confirmed."""
        return True
