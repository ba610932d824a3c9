"""Blinded pharmacy labels as PDF: one label per preparation (KetHead: the bolus syringe and
the infusion bag), 102 x 76 mm each (a common 4 x 3 inch label stock), one per page.

Nothing on a label depends on the arm: :class:`LabelSheet` has no field that could hold one,
and the wording comes from the protocol's ``[labels]`` section ("Ketamine or placebo").
Two participants of equal weight get labels that differ only in their identifiers (participant
id, randomization number, label code and its QR symbol) and their preparation times.

Output is deterministic: the same sheet gives the same bytes (fixed creation date, no
random document id; segno chooses the QR mask by the standard's rules, always alike for the
same code), so tests can compare labels byte for byte and a reprint is the same document
apart from its print number. Drawn with fpdf2's public API; segno encodes the QR symbol.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trialkit.domain.dosing import Dose, DosePlan, format_ml, format_number
from trialkit.domain.protocol import Protocol
from trialkit.domain.site_time import shown

if TYPE_CHECKING:
    from fpdf import FPDF

PAGE_W, PAGE_H = 102.0, 76.0  # mm
MARGIN = 3.0
# Fixed, so the same labels give the same bytes; the real times are printed on the label.
PDF_CREATION_DATE = datetime(2000, 1, 1, tzinfo=UTC)
# QR symbol: the label code at error correction level M, in the smallest symbol it fits
# (version 1, 21 x 21 modules, for every label code), encoded by segno.
QR_ERROR = "m"
QR_QUIET = 2  # modules of white around the symbol (the label's white space adds more)
QR_SIZE = 24.0  # mm, quiet zone included
QR_X, QR_Y = PAGE_W - MARGIN - QR_SIZE + 1.0, MARGIN + 6.6  # top left of the quiet zone

# Baselines (mm from the top) of the lines that carry the participant's own data.
Y_IDS, Y_CODE, Y_TIMES = 19.6, 25.0, 62.6
# Where anything specific to one participant is drawn (x0, y0, x1, y1 in mm): their
# identifiers, the QR symbol of their label code, and the preparation times. Everything
# outside these is the same on every participant's label of the same weight.
PARTICIPANT_REGIONS: tuple[tuple[float, float, float, float], ...] = (
    (MARGIN + 14.0, Y_IDS - 4.0, MARGIN + 68.0, Y_CODE + 1.5),
    (QR_X, QR_Y, QR_X + QR_SIZE, QR_Y + QR_SIZE),
    (MARGIN, Y_TIMES - 3.6, PAGE_W - MARGIN, Y_TIMES + 1.2),
)

# Characters the PDF core fonts (Latin-1) cannot show, as the nearest Latin-1 text.
_LATIN1 = str.maketrans(
    {
        "\u2013": "-",
        "\u2014": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "\u2265": ">=",
        "\u2264": "<=",
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
    }
)


# Where labels' PDFs are saved when no path is given: this environment variable, else the
# protocol's ``[labels] folder``, else the current folder.
LABEL_DIR_ENV = "TRIALKIT_LABEL_DIR"


def label_folder(protocol_folder: str | None = None) -> Path:
    """The folder labels are saved to unless told otherwise: ``TRIALKIT_LABEL_DIR``, else the
    protocol's ``[labels] folder`` (``protocol_folder``), else the current folder; absolute,
    so the path shown to the user says where the file is."""
    folder = os.environ.get(LABEL_DIR_ENV, "").strip() or (protocol_folder or "").strip()
    return Path(folder).expanduser().absolute() if folder else Path.cwd()


def default_label_file(participant_id: str, protocol_folder: str | None = None) -> Path:
    """``labels-<PID>.pdf`` in :func:`label_folder`."""
    return label_folder(protocol_folder) / f"labels-{participant_id}.pdf"


@dataclass(frozen=True)
class LabelItem:
    """What one label says about its preparation (the same for every arm)."""

    preparation_id: str
    name: str
    volume: str
    rate: str
    duration: str
    instructions: str


@dataclass(frozen=True)
class LabelSheet:
    """Everything printed on one participant's labels. Deliberately arm-free."""

    trial_code: str
    protocol_number: str
    registry: str
    sponsor: str
    product: str
    route: str
    storage: str
    caution: str
    emergency_contact: str
    participant_id: str
    randomization_number: str
    label_code: str
    dosing_weight: str
    items: tuple[LabelItem, ...]
    prepared_at: datetime  # in the site's zone: printed as the site's wall clock reads
    expires_at: datetime
    prepared_by: str  # initials
    checked_by: str  # initials
    print_number: int  # 1 for the first print, 2 for the first reprint, ...
    training: bool
    # 1 for the first preparation; 2, 3, ... when prepared again (the earlier labels void)
    preparation_number: int = 1


def initials(user_name: str) -> str:
    """A pharmacist's initials from their user name: ``j.smith`` -> ``JS``, ``phil`` -> ``PH``."""
    parts = [p for p in user_name.replace("_", ".").replace("-", ".").split(".") if p]
    if len(parts) >= 2:
        return "".join(p[0] for p in parts[:3]).upper()
    return user_name[:2].upper()


def _item(dose: Dose) -> LabelItem:
    if dose.kind == "bolus":
        rate, duration = "IV bolus", "Single dose"
    else:
        assert dose.rate_ml_h is not None and dose.hours is not None
        rate = f"{format_ml(dose.rate_ml_h)} mL/h"
        duration = f"{format_number(dose.hours)} h"
    return LabelItem(
        preparation_id=dose.preparation_id,
        name=dose.name,
        volume=f"{format_ml(dose.volume_ml)} mL",
        rate=rate,
        duration=duration,
        instructions=dose.instructions or "",
    )


def label_sheet(
    protocol: Protocol,
    plan: DosePlan,
    *,
    participant_id: str,
    randomization_number: str,
    label_code: str,
    prepared_at: datetime,
    expires_at: datetime,
    prepared_by: str,
    checked_by: str,
    print_number: int,
    training: bool,
    preparation_number: int = 1,
) -> LabelSheet:
    """The labels of one participant, from the protocol's label text and the dose plan."""
    text = protocol.labels
    return LabelSheet(
        trial_code=protocol.trial.id,
        protocol_number=protocol.trial.protocol_number,
        registry=protocol.trial.registry or "",
        sponsor=text.sponsor,
        product=text.product,
        route=text.route,
        storage=text.storage,
        caution=text.caution,
        emergency_contact=text.emergency_contact,
        participant_id=participant_id,
        randomization_number=randomization_number,
        label_code=label_code,
        dosing_weight=f"{format_number(plan.dosing_weight_kg)} kg",
        items=tuple(_item(d) for d in plan.doses),
        prepared_at=prepared_at,
        expires_at=expires_at,
        prepared_by=initials(prepared_by),
        checked_by=initials(checked_by),
        print_number=print_number,
        preparation_number=preparation_number,
        training=training,
    )


def _latin1(text: str) -> str:
    return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def _when(at: datetime) -> str:
    # The sheet holds the site's local times (services.pharmacy.dispensing): shown with their zone.
    return shown(at)


def print_note(print_number: int, preparation_number: int = 1) -> str:
    """What the label says about how many times it has been printed, and, for a
    preparation made again, its number (the labels of the earlier ones are void)."""
    if preparation_number <= 1:
        return "Original print" if print_number <= 1 else f"REPRINT {print_number - 1}"
    if print_number <= 1:
        return f"PREP {preparation_number}: EARLIER VOID"
    return f"PREP {preparation_number} REPRINT {print_number - 1}"


# --- drawing ----------------------------------------------------------------------------------
#
# Coordinates are mm from the top left of the page; text is placed by its baseline. The
# unit tests read every line back from the PDF and decode the QR symbol from the rendered
# page.

# The fonts: PDF core fonts (Latin-1), as (family, style).
REGULAR, BOLD, MONO = ("Helvetica", ""), ("Helvetica", "B"), ("Courier", "B")
CAPTION_GREY = 70
BAR_H = 6.2
BOX_TOP, BOX_H = 39.0, 11.5
TEXT_W = 66.0  # the width left of the QR symbol


def _text(
    pdf: FPDF,
    x: float,
    y: float,
    text: str,
    *,
    size: float,
    font: tuple[str, str] = REGULAR,
    width: float = PAGE_W - 2 * MARGIN,
    align: str = "left",
    grey: int = 0,
) -> None:
    """Show ``text`` with its baseline at (x, y); shrunk (not below 5 pt) to fit
    ``width``; ``align`` right or centre makes x its right end or middle."""
    shown = _latin1(text)
    pdf.set_font(*font, size=size)
    per_point = pdf.get_string_width(shown) / size
    while size > 5 and per_point * size > width:
        size -= 0.5
    pdf.set_font_size(size)
    used = per_point * size
    left = x - used if align == "right" else x - used / 2 if align == "centre" else x
    pdf.set_text_color(grey)
    pdf.text(left, y, shown)


def qr_symbol(code: str) -> list[list[bool]]:
    """The QR symbol of ``code`` (segno, error level M), dark modules True, no quiet zone."""
    import segno

    qr = segno.make_qr(code, error=QR_ERROR, boost_error=False)
    return [[bool(module) for module in row] for row in qr.matrix]


def draw_qr(pdf: FPDF, matrix: Sequence[Sequence[bool]], x: float, y: float) -> None:
    """Fill the dark modules of a symbol whose quiet zone starts at (x, y), one rectangle
    per run of dark modules in a row (vector, so it prints sharp)."""
    n = len(matrix)
    unit = QR_SIZE / (n + 2 * QR_QUIET)
    left, top = x + QR_QUIET * unit, y + QR_QUIET * unit
    pdf.set_fill_color(0)
    for r, row in enumerate(matrix):
        c = 0
        while c < n:
            if row[c]:
                start = c
                while c < n and row[c]:
                    c += 1
                pdf.rect(left + start * unit, top + r * unit, (c - start) * unit, unit,
                         style="F")
            else:
                c += 1


def _watermark(pdf: FPDF, text: str) -> None:
    """TRAINING across the body of the label, clear of the QR symbol so it cannot disturb a
    scan, turned 20 degrees about its middle."""
    with pdf.rotation(20, x=44.0, y=50.0):
        _text(pdf, 44.0, 55.0, text, size=40, font=BOLD, width=90, align="centre",
              grey=220)


@dataclass(frozen=True)
class LabelWords:
    """Every word one label shows, exactly as printed (in the PDF core fonts' Latin-1): the
    one source of a label's content, drawn by :func:`render_labels` and shown as text by
    the TUI's preview (:meth:`lines`). Blinded, as :class:`LabelSheet` is."""

    caution: str
    tag: str
    trial_line: str
    participant_id: str
    randomization_number: str
    label_code: str
    product: str
    preparation: str
    volume: str
    rate: str
    duration: str
    route: str
    dosing_weight: str
    instructions: str
    prepared: str
    expires: str
    storage: str
    signed: str
    print_note: str
    footer: str
    watermark: str  # "" unless a training trial

    def lines(self) -> tuple[str, ...]:
        """The label as lines of text, top to bottom, captions included (blank lines left
        out)."""
        rows = (
            f"{self.caution}  {self.tag}",
            self.trial_line,
            f"Participant {self.participant_id}  Rand. no. {self.randomization_number}",
            f"Label code {self.label_code}",
            self.product,
            self.preparation,
            f"VOLUME {self.volume}  RATE {self.rate}  DURATION {self.duration}",
            f"{self.route}  {self.dosing_weight}",
            self.instructions,
            f"{self.prepared}  {self.expires}",
            self.storage,
            f"{self.signed}  {self.print_note}",
            self.footer,
            self.watermark,
        )
        return tuple(r for r in rows if r.strip())


def label_words(sheet: LabelSheet, index: int) -> LabelWords:
    """What label ``index`` (1 for the first preparation) of the sheet says."""
    item = sheet.items[index - 1]
    tag = f"{index} of {len(sheet.items)}"
    trial_line = f"{sheet.trial_code}  |  Protocol {sheet.protocol_number}"
    if sheet.registry:
        trial_line += f"  |  {sheet.registry}"
    words = LabelWords(
        caution=sheet.caution.upper(),
        tag=f"TRAINING  {tag}" if sheet.training else tag,
        trial_line=trial_line,
        participant_id=sheet.participant_id,
        randomization_number=sheet.randomization_number,
        label_code=sheet.label_code,
        product=sheet.product.upper(),
        preparation=item.name,
        volume=item.volume,
        rate=item.rate,
        duration=item.duration,
        route=sheet.route,
        dosing_weight=f"Dosing weight {sheet.dosing_weight}",
        instructions=item.instructions,
        prepared=f"Prepared {_when(sheet.prepared_at)}",
        expires=f"Expires {_when(sheet.expires_at)}",
        storage=sheet.storage,
        signed=f"Prepared by {sheet.prepared_by}    Checked by {sheet.checked_by}",
        print_note=print_note(sheet.print_number, sheet.preparation_number),
        footer=f"{sheet.sponsor}  |  {sheet.emergency_contact}",
        watermark="TRAINING" if sheet.training else "",
    )
    latin1 = {f.name: _latin1(getattr(words, f.name)) for f in fields(LabelWords)}
    return LabelWords(**latin1)


def label_lines(sheet: LabelSheet) -> tuple[tuple[str, ...], ...]:
    """Each label of the sheet as its lines of text (:meth:`LabelWords.lines`)."""
    return tuple(label_words(sheet, i).lines() for i in range(1, len(sheet.items) + 1))


def _draw_label(pdf: FPDF, w: LabelWords) -> None:
    """One label: the protocol's wording and rules, then this participant's own fields."""
    left, right = MARGIN, PAGE_W - MARGIN
    column = (right - left) / 3
    grey = CAPTION_GREY
    if w.watermark:
        _watermark(pdf, w.watermark)
    pdf.set_fill_color(0)
    pdf.rect(left, MARGIN, right - left, BAR_H, style="F")
    pdf.set_draw_color(0)
    pdf.set_line_width(0.3)
    pdf.rect(left, BOX_TOP, right - left, BOX_H, style="D")
    for i in (1, 2):
        pdf.line(left + i * column, BOX_TOP, left + i * column, BOX_TOP + BOX_H)
    pdf.set_line_width(0.2)
    pdf.line(left, 71.8, right, 71.8)
    # the caution reversed out of the black bar, and which label of how many this is
    _text(pdf, left + 1.5, MARGIN + 4.4, w.caution, size=8.5, font=BOLD, grey=255, width=62)
    _text(pdf, right - 1.5, MARGIN + 4.4, w.tag, size=7.5, font=BOLD, grey=255, align="right",
          width=30)
    _text(pdf, left, 14.2, w.trial_line, size=6.5, grey=grey, width=TEXT_W)
    _text(pdf, left, Y_IDS, "Participant", size=6.5, grey=grey)
    _text(pdf, left + 40, Y_IDS, "Rand. no.", size=6.5, grey=grey)
    _text(pdf, left, Y_CODE, "Label code", size=6.5, grey=grey)
    # what it is: the blinded product wording and the preparation
    _text(pdf, left, 32.2, w.product, size=13, font=BOLD, width=TEXT_W)
    _text(pdf, left, 37.0, w.preparation, size=8.5, font=BOLD, width=TEXT_W)
    for i, caption in enumerate(("VOLUME", "RATE", "DURATION")):
        _text(pdf, left + i * column + 2, BOX_TOP + 3.6, caption, size=6, font=BOLD, grey=grey,
              width=column - 4)
    _text(pdf, left, 54.4, w.route, size=7.5, font=BOLD, width=60)
    _text(pdf, left, 58.3, w.instructions, size=6.5)
    _text(pdf, left, 66.4, w.storage, size=6.5)
    _text(pdf, left, 74.3, w.footer, size=5.5, grey=grey)
    # what is this participant's own: identifiers, doses, times, initials
    _text(pdf, left + 15, Y_IDS, w.participant_id, size=10, font=BOLD, width=24)
    _text(pdf, left + 51, Y_IDS, w.randomization_number, size=10, font=BOLD, width=16)
    _text(pdf, left + 15, Y_CODE, w.label_code, size=10, font=MONO, width=40)
    for i, value in enumerate((w.volume, w.rate, w.duration)):
        _text(pdf, left + i * column + 2, BOX_TOP + 9.2, value, size=11, font=BOLD,
              width=column - 4)
    _text(pdf, right, 54.4, w.dosing_weight, size=7, align="right", width=34)
    _text(pdf, left, Y_TIMES, w.prepared, size=7.5, width=47)
    _text(pdf, left + 48, Y_TIMES, w.expires, size=7.5, font=BOLD, width=48)
    _text(pdf, left, 70.4, w.signed, size=7.5, font=BOLD, width=60)
    _text(pdf, right, 70.4, w.print_note, size=7, font=BOLD, align="right", width=34)


def render_labels(sheet: LabelSheet) -> bytes:
    """The PDF of one participant's labels, one page per preparation."""
    from fpdf import FPDF

    pdf = FPDF(unit="mm", format=(PAGE_W, PAGE_H))
    pdf.set_creation_date(PDF_CREATION_DATE)
    pdf.set_auto_page_break(False)
    pdf.set_title(_latin1(f"{sheet.trial_code} labels {sheet.participant_id}"))
    pdf.set_creator("trialkit")
    symbol = qr_symbol(sheet.label_code)
    for index in range(1, len(sheet.items) + 1):
        pdf.add_page()
        _draw_label(pdf, label_words(sheet, index))
        draw_qr(pdf, symbol, QR_X, QR_Y)
    return bytes(pdf.output())
