"""The printable recovery sheet: the trial, when the key was made, its fingerprint, the 24
words and a QR code of them, and what to do with the sheet. Written once at ``init`` as a
PDF (fpdf2, segno for the QR symbol) or a text file; trialkit keeps no copy."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from trialkit.domain.recovery import sheet_lines

INSTRUCTIONS = (
    "This sheet is the trial's recovery key. With a copy of the trial database it opens every "
    "allocation list, so keep it as you would the unblinded allocation itself. Print it, put "
    "it in a sealed, signed envelope in the sponsor's safe and delete this file. trialkit "
    "stores no copy and cannot show it again. It is used only when no custodian can open the "
    "lists any more: `trialkit custodian recover NAME --fingerprint FP` (typing these words) "
    "hands the list keys to an approved custodian, and the audit trail records it."
)


@dataclass(frozen=True)
class RecoverySheet:
    trial_code: str
    title: str
    training: bool
    made_at: datetime
    fingerprint: str
    words: str

    def heading(self) -> list[str]:
        return [
            ("TRAINING - " if self.training else "") + f"RECOVERY SHEET - {self.trial_code}",
            self.title,
            f"Made {self.made_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC; recovery key "
            f"fingerprint {self.fingerprint}",
        ]

    def text(self) -> str:
        return "\n".join(
            [*self.heading(), "", *sheet_lines(self.words), "", INSTRUCTIONS, ""]
        )


def write_sheet(sheet: RecoverySheet, path: Path) -> None:
    """Write the sheet as text (``.txt``) or PDF (anything else), readable by its owner only."""
    data = sheet.text().encode() if path.suffix.lower() == ".txt" else render_pdf(sheet)
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(data)


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def render_pdf(sheet: RecoverySheet) -> bytes:
    """One A4 page: heading, the numbered words in a fixed-width font, the QR code of the
    words, the instructions."""
    import segno
    from fpdf import FPDF

    pdf = FPDF(unit="mm", format="A4")
    pdf.set_title(_latin1(f"{sheet.trial_code} recovery sheet"))
    pdf.set_creator("trialkit")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    first, *rest = sheet.heading()
    pdf.cell(0, 10, _latin1(first), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    for line in rest:
        pdf.multi_cell(0, 6, _latin1(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Courier", "B", 12)
    for line in sheet_lines(sheet.words):
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    png = io.BytesIO()
    segno.make_qr(sheet.words, error="M").save(png, kind="png", scale=4, border=4)
    pdf.ln(4)
    pdf.image(png, w=60)
    pdf.ln(4)
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(0, 5, _latin1(INSTRUCTIONS))
    return bytes(pdf.output())
