"""Tables whose columns are as wide as their header and their widest cell from the first
frame on.

A DataTable column added without a width measures its new cells only when the app is next
idle; a screen painted before that (a table filled from a worker's message while other
messages queue) shows each column as wide as its header, so "infused" read "infuse" and
"consented" "consen" on the participants list's first open. Here every column is added
again with an explicit width measured from what it will hold (``add_column(width=...)``,
Textual's public API), so nothing waits for idle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.markup import escape
from rich.text import Text
from textual.content import Content
from textual.widgets import DataTable


def cell_width(cell: object) -> int:
    """How many terminal cells ``cell`` takes on one line."""
    if isinstance(cell, Text):
        return cell.cell_len
    if isinstance(cell, Content):
        return cell.cell_length
    text = str(cell)
    return max((cell_len(line) for line in text.splitlines()), default=0)


def literal(cell: object) -> object:
    """``cell`` to be shown as written. A DataTable reads a ``str`` cell as Rich markup, so
    a reason typed as "[/]" would break the table, "[white on white]" would hide text and
    "[@click=...]" would make it a link; escaped, a typed bracket is only a bracket."""
    return escape(cell) if isinstance(cell, str) else cell


def column_widths(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[int]:
    """Each column's width: its header's or its widest cell's, whichever is wider."""
    widths = [cell_width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], cell_width(cell))
    return widths


def fill_table(
    table: DataTable[Any],
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    keys: Sequence[str | None] | None = None,
) -> None:
    """Replace the table's columns and rows: columns sized to header and content, rows
    keyed by ``keys`` (one per row) when given. The cursor goes back to the first row."""
    table.clear(columns=True)
    for i, (header, width) in enumerate(zip(headers, column_widths(headers, rows), strict=True)):
        table.add_column(header, width=width, key=f"column-{i}")
    for i, row in enumerate(rows):
        table.add_row(*map(literal, row), key=keys[i] if keys is not None else None)
