"""Blinded pharmacy labels as PDF: one label per preparation (KetHead: the bolus syringe and
the infusion bag), 102 x 76 mm each (a common 4 x 3 inch label stock), one per page.

Nothing on a label depends on the arm: :class:`LabelSheet` has no field that could hold one,
and the wording comes from the protocol's ``[labels]`` section ("Ketamine or placebo").
Two participants of equal weight get labels that differ only in their identifiers (participant
id, randomization number, label code and its QR symbol) and their preparation times.

Output is deterministic: the same sheet gives the same bytes (fixed creation date, no
random document id, a fixed QR mask), so tests can compare labels byte for byte and a
reprint is the same document apart from its print number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from trialkit.domain.dosing import Dose, DosePlan, format_ml, format_number
from trialkit.domain.protocol import Protocol
from trialkit.qrcode import qr_matrix

PAGE_W, PAGE_H = 102.0, 76.0  # mm
MARGIN = 3.0
# Fixed, so the same labels give the same bytes; the real times are printed on the label.
PDF_CREATION_DATE = datetime(2000, 1, 1, tzinfo=UTC)
# QR symbol: the label code in a version 1 symbol (21 x 21 modules) at error level M with
# mask 0 (see ``trialkit.qrcode``). Any mask scans; choosing the "best" one would cost
# more than the rest of the label.
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
    prepared_at: datetime
    expires_at: datetime
    prepared_by: str  # initials
    checked_by: str  # initials
    print_number: int  # 1 for the first print, 2 for the first reprint, ...
    training: bool


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
        training=training,
    )


def _latin1(text: str) -> str:
    return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def print_note(print_number: int) -> str:
    """What the label says about how many times it has been printed."""
    return "Original print" if print_number <= 1 else f"REPRINT {print_number - 1}"


# --- drawing ----------------------------------------------------------------------------------
#
# Labels are printed in batches, and fpdf2's text() and get_string_width() cost more than
# the text they place (a graphics-state copy and a bidi pass per call). So the page content
# is written as PDF operators here: fpdf2 still makes the document (pages, fonts, compression,
# output), and its own primitives for raw content (_out, _set_font_for_page) put them on the
# page. What every participant's label shares (rules, captions, protocol wording) is built
# once per protocol and reused; per participant only their own fields are formatted. The
# unit tests read every line back from the PDF and check the QR symbol pixel by pixel.

K = 72 / 25.4  # points per mm
# Every document registers these core fonts in this order, so they are /F1, /F2, /F3:
# (family, style, fpdf2's key of its metrics).
FONTS = (("Helvetica", "", "helvetica"), ("Helvetica", "B", "helveticaB"),
         ("Courier", "B", "courierB"))
REGULAR, BOLD, MONO = 1, 2, 3
CAPTION_GREY = 70
BAR_H = 6.2
BOX_TOP, BOX_H = 39.0, 11.5
TEXT_W = 66.0  # the width left of the QR symbol


@lru_cache(maxsize=1)
def _widths() -> dict[int, dict[str, int]]:
    """Glyph widths (1/1000 em) of the three fonts, from fpdf2's core font metrics."""
    from fpdf.fonts import CORE_FONTS_CHARWIDTHS

    return {i: CORE_FONTS_CHARWIDTHS[key] for i, (_f, _s, key) in enumerate(FONTS, start=1)}


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").replace("\r", "")


def _text(
    x: float,
    y: float,
    text: str,
    *,
    size: float,
    font: int = REGULAR,
    width: float = PAGE_W - 2 * MARGIN,
    align: str = "left",
    grey: int = 0,
) -> str:
    """Operators showing ``text`` with its baseline at (x, y) mm; shrunk (not below 5 pt) to
    fit ``width``; ``align`` right or centre makes x its right end or middle."""
    shown = _latin1(text)
    widths = _widths()[font]
    per_point = sum(widths[ch] for ch in shown) / 1000 / K
    while size > 5 and per_point * size > width:
        size -= 0.5
    used = per_point * size
    left = x - used if align == "right" else x - used / 2 if align == "centre" else x
    return (f"{grey / 255:.3f} g BT /F{font} {size:.2f} Tf {left * K:.2f} "
            f"{(PAGE_H - y) * K:.2f} Td ({_escape(shown)}) Tj ET")


def _rect(x: float, y: float, w: float, h: float, paint: str) -> str:
    return f"{x * K:.2f} {(PAGE_H - y - h) * K:.2f} {w * K:.2f} {h * K:.2f} re {paint}"


def _line(x0: float, y0: float, x1: float, y1: float) -> str:
    return f"{x0 * K:.2f} {(PAGE_H - y0) * K:.2f} m {x1 * K:.2f} {(PAGE_H - y1) * K:.2f} l S"


def qr_drawing(matrix: Sequence[Sequence[int]], x: float, y: float) -> str:
    """Operators filling the dark modules of a symbol whose quiet zone starts at (x, y) mm,
    one rectangle per run of dark modules (vector, so it prints sharp)."""
    n = len(matrix)
    unit = QR_SIZE / (n + 2 * QR_QUIET) * K
    left, top = x * K + QR_QUIET * unit, (PAGE_H - y) * K - QR_QUIET * unit
    xs = [f"{left + c * unit:.3f}" for c in range(n)]
    widths = [f"{length * unit:.3f} {unit:.3f} re" for length in range(n + 1)]
    ops = ["q 0 g"]
    for r, row in enumerate(matrix):
        bottom = f"{top - (r + 1) * unit:.3f}"
        c = 0
        while c < n:
            if row[c]:
                start = c
                while c < n and row[c]:
                    c += 1
                ops.append(f"{xs[start]} {bottom} {widths[c - start]}")
            else:
                c += 1
    ops.append("f Q")
    return "\n".join(ops)


def _watermark() -> str:
    """TRAINING across the body of the label, clear of the QR symbol so it cannot disturb a
    scan, rotated 20 degrees about its middle."""
    cx, cy, angle = 44.0 * K, (PAGE_H - 50.0) * K, math.radians(20)
    cos, sin = math.cos(angle), math.sin(angle)
    # drawn about the origin, baseline 5 mm below it, then moved and turned into place
    word = _text(0, PAGE_H + 5, "TRAINING", size=40, font=BOLD, width=90, align="centre",
                 grey=220)
    return f"q 1 0 0 1 {cx:.2f} {cy:.2f} cm {cos:.4f} {sin:.4f} {-sin:.4f} {cos:.4f} 0 0 cm " \
           f"{word} Q"


@lru_cache(maxsize=64)
def _shared(
    caution: str,
    trial_line: str,
    product: str,
    route: str,
    storage: str,
    footer: str,
    name: str,
    instructions: str,
    index: int,
    count: int,
    training: bool,
) -> bytes:
    """Everything on a label that is the same for every participant: rules, captions and
    the protocol's wording. Built once per protocol and preparation, as page content."""
    left, right = MARGIN, PAGE_W - MARGIN
    column = (right - left) / 3
    grey = CAPTION_GREY
    tag = f"{index} of {count}"
    ops = [_watermark()] if training else []
    ops += [
        "0 g " + _rect(left, MARGIN, right - left, BAR_H, "f"),
        f"0 G {0.3 * K:.3f} w " + _rect(left, BOX_TOP, right - left, BOX_H, "S"),
        _line(left + column, BOX_TOP, left + column, BOX_TOP + BOX_H),
        _line(left + 2 * column, BOX_TOP, left + 2 * column, BOX_TOP + BOX_H),
        f"{0.2 * K:.3f} w " + _line(left, 71.8, right, 71.8),
        # the caution reversed out of the black bar, and which label of how many this is
        _text(left + 1.5, MARGIN + 4.4, caution.upper(), size=8.5, font=BOLD, grey=255,
              width=62),
        _text(right - 1.5, MARGIN + 4.4, f"TRAINING  {tag}" if training else tag, size=7.5,
              font=BOLD, grey=255, align="right", width=30),
        _text(left, 14.2, trial_line, size=6.5, grey=grey, width=TEXT_W),
        _text(left, Y_IDS, "Participant", size=6.5, grey=grey),
        _text(left + 40, Y_IDS, "Rand. no.", size=6.5, grey=grey),
        _text(left, Y_CODE, "Label code", size=6.5, grey=grey),
        # what it is: the blinded product wording and the preparation
        _text(left, 32.2, product.upper(), size=13, font=BOLD, width=TEXT_W),
        _text(left, 37.0, name, size=8.5, font=BOLD, width=TEXT_W),
        *(_text(left + i * column + 2, BOX_TOP + 3.6, caption, size=6, font=BOLD, grey=grey,
                width=column - 4)
          for i, caption in enumerate(("VOLUME", "RATE", "DURATION"))),
        _text(left, 54.4, route, size=7.5, font=BOLD, width=60),
        _text(left, 58.3, instructions, size=6.5),
        _text(left, 66.4, storage, size=6.5),
        _text(left, 74.3, footer, size=5.5, grey=grey),
    ]
    return ("q " + "\n".join(ops) + " Q").encode("latin-1")


def _own(sheet: LabelSheet, item: LabelItem) -> str:
    """What is this participant's own on a label: identifiers, doses, times, initials."""
    left, right = MARGIN, PAGE_W - MARGIN
    column = (right - left) / 3
    ops = [
        _text(left + 15, Y_IDS, sheet.participant_id, size=10, font=BOLD, width=24),
        _text(left + 51, Y_IDS, sheet.randomization_number, size=10, font=BOLD, width=16),
        _text(left + 15, Y_CODE, sheet.label_code, size=10, font=MONO, width=40),
        *(_text(left + i * column + 2, BOX_TOP + 9.2, value, size=11, font=BOLD,
                width=column - 4)
          for i, value in enumerate((item.volume, item.rate, item.duration))),
        _text(right, 54.4, f"Dosing weight {sheet.dosing_weight}", size=7, align="right",
              width=34),
        _text(left, Y_TIMES, f"Prepared {_when(sheet.prepared_at)}", size=7.5, width=47),
        _text(left + 48, Y_TIMES, f"Expires {_when(sheet.expires_at)}", size=7.5, font=BOLD,
              width=48),
        _text(left, 70.4, f"Prepared by {sheet.prepared_by}    Checked by {sheet.checked_by}",
              size=7.5, font=BOLD, width=60),
        _text(right, 70.4, print_note(sheet.print_number), size=7, font=BOLD, align="right",
              width=34),
    ]
    return "q " + "\n".join(ops) + " Q"


def render_labels(sheet: LabelSheet) -> bytes:
    """The PDF of one participant's labels, one page per preparation."""
    from fpdf import FPDF

    pdf = FPDF(unit="mm", format=(PAGE_W, PAGE_H))
    pdf.set_creation_date(PDF_CREATION_DATE)
    pdf.set_auto_page_break(False)
    pdf.set_title(_latin1(f"{sheet.trial_code} labels {sheet.participant_id}"))
    pdf.set_creator("trialkit")
    fonts: list[Any] = []
    for family, style, _key in FONTS:
        pdf.set_font(family, style)
        fonts.append(pdf.current_font)
    assert [f.i for f in fonts] == [REGULAR, BOLD, MONO]
    trial_line = f"{sheet.trial_code}  |  Protocol {sheet.protocol_number}"
    if sheet.registry:
        trial_line += f"  |  {sheet.registry}"
    footer = f"{sheet.sponsor}  |  {sheet.emergency_contact}"
    qr = qr_drawing(qr_matrix(sheet.label_code), QR_X, QR_Y).encode("latin-1")
    for index, item in enumerate(sheet.items, start=1):
        pdf.add_page()
        for font in fonts:  # put the fonts in this page's resources
            pdf._set_font_for_page(font, 10)
        pdf._out(_shared(sheet.caution, trial_line, sheet.product, sheet.route, sheet.storage,
                         footer, item.name, item.instructions, index, len(sheet.items),
                         sheet.training))
        pdf._out(qr)
        pdf._out(_own(sheet, item))
    return bytes(pdf.output())
