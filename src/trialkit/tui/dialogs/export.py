"""Exporting blinded data: which table and where, then a progress bar while it is written."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Button, Input, ProgressBar, Select, Static

from trialkit.domain.errors import TrialkitError
from trialkit.tui.dialogs.dialog import Dialog
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from trialkit.application.trial_database import TrialDatabase
    from trialkit.services.actor import Actor
    from trialkit.services.exports.datasets import ExportResult
    from trialkit.tui.app import TrialkitApp


class ExportDialog(Dialog[bool]):
    """Kind and path; OK writes (in a worker) with a progress bar. Returns whether done."""

    def __init__(self, db: TrialDatabase, actor: Actor) -> None:
        super().__init__("Export blinded data", cancel_result=False, ok_label="Export")
        self._db = db
        self._actor = actor
        self._done = False
        self._busy = False
        self._kinds: tuple[str, ...] = ()

    def fields(self) -> ComposeResult:
        """Kind, path, progress."""
        from trialkit.services.exports.datasets import KINDS

        self._kinds = KINDS
        yield Select([(k, k) for k in KINDS], value="outcomes", allow_blank=False,
                     id="export-kind", compact=True)
        yield Input("outcomes.csv", placeholder="File (.csv)", id="export-path", compact=True)
        yield ProgressBar(id="export-progress", show_eta=False)
        yield Static("", id="export-done", classes="dialog-text")

    def on_select_changed(self, event: Select.Changed) -> None:
        """Follow the kind in the default file name."""
        field = self.query_one("#export-path", Input)
        if field.value in {f"{k}.csv" for k in self._kinds}:
            field.value = f"{event.value}.csv"

    def result(self) -> bool:
        """Start the export; once written, OK closes."""
        if self._done:
            return True
        if self._busy:
            raise ValueError("Exporting…")
        kind = str(self.query_one("#export-kind", Select).value)
        named = self.query_one("#export-path", Input).value.strip()
        path = Path(cast("TrialkitApp", self.app).place(named)).expanduser()
        self._busy = True
        self._export(kind, path)
        raise ValueError("Exporting…")

    @work(thread=True, exclusive=True, group="export")
    def _export(self, kind: str, path: Path) -> None:
        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(self._progress, done, total)

        try:
            result, checkpoint = self._db.export(self._actor, kind, path, progress=progress)
        except TrialkitError as exc:
            self.app.call_from_thread(self._failed, tui_message(exc))
        else:
            self.app.call_from_thread(self._finished, result, path, checkpoint)

    def _progress(self, done: int, total: int) -> None:
        self.query_one("#export-progress", ProgressBar).update(total=total, progress=done)

    def _failed(self, message: str) -> None:
        self._busy = False
        self.say(message)

    def _finished(self, result: ExportResult, path: Path, checkpoint: Path) -> None:
        self._done = True
        bar = self.query_one("#export-progress", ProgressBar)
        bar.update(total=max(bar.total or 1, 1), progress=max(bar.total or 1, 1))
        self.say("")
        app = cast("TrialkitApp", self.app)
        where = (f"and sent them to your browser ({path.name}, its dictionary, manifest and "
                 "signed checkpoint)") if app.ticket is not None else f"to {path}"
        self.query_one("#export-done", Static).update(Content(
            f"Wrote {result.rows} rows ({result.participants} participants) {where}. "
            f"Signed checkpoint of the audit trail: {checkpoint.name} (keep it outside the "
            "database)."))
        app.hand_over(*(f.path for f in result.files), checkpoint)
        # Done: nothing is left to cancel, so one button closes.
        self.query_one("#cancel", Button).display = False
        ok = self.query_one("#ok", Button)
        ok.label = "Close"
        ok.focus()
