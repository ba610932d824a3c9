"""What a participant's labels say, as text: blinded (the same for every arm), so it may be
shown anywhere the labels themselves may be seen."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from trialkit.tui.dialogs.dialog import Dialog

if TYPE_CHECKING:
    from pathlib import Path

    from trialkit.render.labels import LabelSheet
    from trialkit.tui.app import TrialkitApp


def label_text(sheet: LabelSheet) -> str:
    """The labels' words exactly as their PDF prints them (``labels.label_lines``, the one
    source of a label's content), one block per label; never an arm, never a lot."""
    from trialkit.render.labels import label_lines

    return "\n\n".join("\n".join(lines) for lines in label_lines(sheet))


class LabelPreviewDialog(Dialog[None]):
    """The blinded label text, and where its PDF was written."""

    def __init__(self, sheet: LabelSheet, path: Path) -> None:
        super().__init__(f"Labels of {sheet.participant_id}", cancel_result=None,
                         ok_label="Close", show_cancel=False)
        self._sheet = sheet
        self._path = path

    def fields(self) -> ComposeResult:
        """The label text in a box, then the file."""
        with VerticalScroll(id="label-preview") as box:
            box.border_title = "As printed (blinded)"
            yield Static(Content(label_text(self._sheet)), id="label-preview-text")
        browser = cast("TrialkitApp", self.app).ticket is not None
        where = f"Sent to your browser as {self._path.name}" if browser \
            else f"Written to {self._path}"
        yield Static(Content(where), classes="dialog-text", id="labels-saved")

    def on_mount(self) -> None:
        """A browser session gets the PDF as a download."""
        cast("TrialkitApp", self.app).hand_over(self._path)

    def result(self) -> None:
        """Close."""
        return None
