"""What a participant's labels say, as text: blinded (the same for every arm), so it may be
shown anywhere the labels themselves may be seen."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Static

from trialkit.tui.dialogs.dialog import Dialog

if TYPE_CHECKING:
    from pathlib import Path

    from trialkit.labels import LabelSheet
    from trialkit.tui.app import TrialkitApp


def label_text(sheet: LabelSheet) -> str:
    """The labels' words, one block per preparation (never an arm, never a lot)."""
    from trialkit.domain.site_time import shown
    from trialkit.labels import print_note

    head = [
        f"{sheet.trial_code} · {sheet.caution}",
        f"{sheet.participant_id} · {sheet.randomization_number} · label {sheet.label_code}",
        f"Dosing weight {sheet.dosing_weight} · {sheet.route}",
    ]
    items = [
        f"{i}/{len(sheet.items)} {item.name}: {item.volume}, {item.rate}, {item.duration}"
        for i, item in enumerate(sheet.items, start=1)
    ]
    tail = [
        f"Prepared {shown(sheet.prepared_at)} by {sheet.prepared_by}, checked by "
        f"{sheet.checked_by}",
        f"Expires {shown(sheet.expires_at)} · "
        f"{print_note(sheet.print_number, sheet.preparation_number)}",
    ]
    if sheet.training:
        tail.append("TRAINING — NOT FOR CLINICAL USE")
    return "\n".join([*head, *items, *tail])


class LabelPreviewDialog(Dialog[None]):
    """The blinded label text, and where its PDF was written."""

    def __init__(self, sheet: LabelSheet, path: Path) -> None:
        super().__init__(f"Labels of {sheet.participant_id}", cancel_result=None,
                         ok_label="Close", show_cancel=False)
        self._sheet = sheet
        self._path = path

    def fields(self) -> ComposeResult:
        """The label text in a box, then the file."""
        preview = Static(Content(label_text(self._sheet)), id="label-preview")
        preview.border_title = "Label (blinded)"
        yield preview
        browser = cast("TrialkitApp", self.app).ticket is not None
        where = f"Sent to your browser as {self._path.name}" if browser \
            else f"Written to {self._path}"
        yield Static(Content(where), classes="dialog-text")

    def on_mount(self) -> None:
        """A browser session gets the PDF as a download."""
        cast("TrialkitApp", self.app).hand_over(self._path)

    def result(self) -> None:
        """Close."""
        return None
