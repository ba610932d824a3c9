"""Importing a headache diary file: which file (a path on the machine trialkit runs on),
and, when the file is refused, every problem found (the first hundred, and the total),
as ``trialkit diary import`` lists them. Nothing of a refused file is stored."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Input, Static

from trialkit.tui.dialogs.dialog import Dialog

if TYPE_CHECKING:
    from trialkit.tui.app import TrialkitApp

COLUMNS_HELP = ("A CSV file with the columns participant_id, date, headache, severity, "
                "duration_hours, acute_medication (the diary export reads back). Every row "
                "is stored, or none.")
# Textual gives a browser session downloads (App.deliver_binary) but no way to send a file
# up from the browser: a browser session imports a file already on the server.
BROWSER_NOTE = ("This is a browser session: the path is a file on the server trialkit runs "
                "on, not on your computer (a browser cannot send a file here).")


class DiaryImportDialog(Dialog[Path | None]):
    """The file to import; None when cancelled."""

    def __init__(self) -> None:
        super().__init__("Import a diary file", cancel_result=None, ok_label="Import")

    def fields(self) -> ComposeResult:
        """What the file must hold, then its path."""
        yield Static(Content(COLUMNS_HELP), classes="dialog-text")
        if cast("TrialkitApp", self.app).ticket is not None:
            yield Static(Content(BROWSER_NOTE), classes="dialog-text", id="import-browser-note")
        yield Input(placeholder="Path of the CSV file", id="import-path", compact=True)

    def result(self) -> Path | None:
        """A file that exists, or a ValueError saying what to fix."""
        text = self.query_one("#import-path", Input).value.strip()
        if not text:
            raise ValueError("Give the path of the diary CSV file.")
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValueError(f"{text}: no such file")
        return path


class ImportProblemsDialog(Dialog[None]):
    """A refused file: nothing was imported; its problems, each with its line number."""

    def __init__(self, source: str, problems: list[str], total: int) -> None:
        super().__init__("Diary file refused", cancel_result=None, ok_label="Close",
                         show_cancel=False)
        self._source = source
        self._problems = problems
        self._total = total

    def fields(self) -> ComposeResult:
        """How many, then the list (scrolls)."""
        count = f"{self._total} problem{'s' if self._total != 1 else ''}"
        yield Static(Content(f"{self._source}: {count}, nothing was imported."),
                     classes="dialog-text", id="import-summary")
        more = self._total - len(self._problems)
        lines = list(self._problems)
        if more:
            lines.append(f"… and {more} more (the first {len(self._problems)} are listed)")
        with VerticalScroll(id="import-problems"):
            yield Static(Content("\n".join(lines)), id="import-problems-text")

    def result(self) -> None:
        """Close."""
        return None
