"""Sealing every stratum's list, and extending one stratum: counts only.

Block sizes may be typed (as with ``trialkit seal --block-sizes``) but are never shown:
left blank, the protocol's own apply without anyone seeing them."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Grid
from textual.content import Content
from textual.widgets import Input, Label, Static

from trialkit.tui.dialogs.dialog import Dialog


@dataclass(frozen=True)
class SealRequest:
    """Envelopes per stratum and, optionally, block sizes to draw from."""

    per_stratum: int
    block_sizes: tuple[int, ...] | None


def whole_number(text: str, what: str) -> int:
    """A positive whole number, or a ValueError naming the field."""
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{what}: give a whole number.") from None
    if value < 1:
        raise ValueError(f"{what}: give a number of at least 1.")
    return value


class SealDialog(Dialog[SealRequest | None]):
    """How many envelopes each stratum's list gets."""

    def __init__(self, strata: int) -> None:
        super().__init__("Seal allocation lists", cancel_result=None, ok_label="Seal")
        self._strata = strata

    def fields(self) -> ComposeResult:
        """Count and optional block sizes."""
        yield Static(
            Content(f"One sealed list for each of the {self._strata} strata. Sealing happens "
                    "once; a stratum that runs low is extended later."),
            classes="dialog-text",
        )
        with Grid(classes="dialog-grid"):
            yield Label("Per stratum")
            yield Input(placeholder="envelopes", type="integer", id="per-stratum", compact=True)
            yield Label("Block sizes")
            yield Input(placeholder="blank: as the protocol says", id="block-sizes", compact=True)

    def result(self) -> SealRequest | None:
        """The request, or a ValueError saying what to fix."""
        count = whole_number(self.query_one("#per-stratum", Input).value, "Envelopes per stratum")
        text = self.query_one("#block-sizes", Input).value.strip()
        if not text:
            return SealRequest(count, None)
        sizes = tuple(whole_number(part, "Block sizes") for part in text.split(",") if part.strip())
        return SealRequest(count, sizes)


class ExtendDialog(Dialog[int | None]):
    """How many envelopes to add to one stratum."""

    def __init__(self, stratum: str, left: int) -> None:
        super().__init__(f"Extend {stratum}", cancel_result=None, ok_label="Extend")
        self._stratum = stratum
        self._left = left

    def fields(self) -> ComposeResult:
        """The count."""
        yield Static(
            Content(f"{self._stratum} has {self._left} envelopes left. New ones are sealed "
                    "after the last; none is read or reordered."),
            classes="dialog-text",
        )
        with Grid(classes="dialog-grid"):
            yield Label("Add")
            yield Input(placeholder="envelopes", type="integer", id="extend-count", compact=True)

    def result(self) -> int | None:
        """The count, or a ValueError."""
        return whole_number(self.query_one("#extend-count", Input).value, "Envelopes to add")
