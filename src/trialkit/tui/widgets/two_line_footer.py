"""A footer that may take two lines: where a screen's stylesheet lays it out as a grid
(trialkit.tcss: the participants screen under 110 columns), its keys fill two rows of
columns instead of one line that cuts the last keys off at 80 columns."""

from __future__ import annotations

from math import ceil
from typing import TYPE_CHECKING

from textual.widgets import Footer

if TYPE_CHECKING:
    from textual.app import ComposeResult

ROWS = 2


class TwoLineFooter(Footer):
    """Footer's keys in ``ROWS`` rows when laid out as a grid (one line otherwise).

    Footer sets its grid to one column per key as it composes; this asks for half as many,
    so the keys wrap onto the second row."""

    def compose(self) -> ComposeResult:
        """Footer's keys, then the columns of the grid they fill."""
        keys = list(super().compose())
        self.styles.grid_size_columns = max(1, ceil((len(keys) - 1) / ROWS))
        yield from keys
