"""Columns as wide as their header and widest cell from the first frame (issue 15: the
participants list showed "infuse" and "consen" on first open, each column as wide as its
header until the app was next idle)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.text import Text
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from trialkit.tui.widgets.fitted_table import column_widths, fill_table

HEADERS = ("Participant", "Status", "")
ROWS = [("TWH-001", "infused", "x"), ("TWH-002", "consented", "not sealed")]


class OneTable(App[None]):
    def compose(self) -> ComposeResult:
        yield DataTable(id="t")


async def test_columns_are_sized_before_the_app_is_idle() -> None:
    app = OneTable()
    async with app.run_test(size=(80, 10)):
        table = app.query_one("#t", DataTable)
        fill_table(table, HEADERS, ROWS, ["TWH-001", "TWH-002"])
        # No pause: what the next frame draws with. "consented" is 9, "not sealed" 10.
        assert [c.get_render_width(table) - 2 * table.cell_padding
                for c in table.ordered_columns] == [11, 9, 10]
        assert table.get_row("TWH-002") == list(ROWS[1])
        fill_table(table, HEADERS, [("A", "ineligible", "")])  # narrower content: narrower
        assert [c.width for c in table.ordered_columns] == [11, 10, 0]


@settings(max_examples=50)
@given(st.lists(st.lists(st.text(alphabet="abcé日 -", max_size=12), min_size=2, max_size=2),
                max_size=6))
def test_each_width_is_the_widest_of_header_and_cells(rows: list[list[str]]) -> None:
    widths = column_widths(("ab", "日本"), rows)
    for i, header_width in enumerate((2, 4)):
        # Each CJK character takes two cells, every other character one.
        cells = [sum(2 if ch == "日" else 1 for ch in row[i]) for row in rows]
        assert widths[i] == max([header_width, *cells])


# What people type is shown as typed: a DataTable reads a str cell as Rich markup, so a
# reason "[/]" broke the table, "[white on white]" hid text, "[@click=app.quit]" made a link.
TYPED = ["[/]", "[white on white]hidden[/]", "[@click=app.quit]close[/]",
         "diary entered in one go [batch 5b7859fb4043dd41]", "a [b]c", "plain \\[x]"]


async def test_typed_brackets_are_shown_as_typed() -> None:
    app = OneTable()
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one("#t", DataTable)
        fill_table(table, ("Reason",), [(t,) for t in TYPED])
        await pilot.pause()
        for row, typed in enumerate(TYPED):
            shown = Text.from_markup(table.get_cell_at(Coordinate(row, 0)))  # as DataTable reads it
            assert shown.plain == typed and not shown.spans
