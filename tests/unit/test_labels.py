"""The blinded label PDF: what a label says, that it says it the same way every time, that
its QR symbol is the label code, and that two participants of equal weight get labels that
differ only where their own identifiers and times are printed.

PDFs are read back with pypdf (text) and pypdfium2 (pixels), and the QR symbol is decoded
from the rendered page by zxing-cpp, a reader independent of the encoder (segno); nothing
here needs poppler."""

from __future__ import annotations

import dataclasses
import io
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pypdfium2 as pdfium
import pytest
import segno
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from tests.builders import PROTOCOL
from trialkit.domain.codes import new_label_code
from trialkit.domain.dosing import dose_plan
from trialkit.render.labels import (
    PAGE_H,
    PAGE_W,
    PARTICIPANT_REGIONS,
    QR_QUIET,
    QR_SIZE,
    QR_X,
    QR_Y,
    LabelSheet,
    initials,
    label_sheet,
    print_note,
    render_labels,
)

PREPARED = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
MM = 72 / 25.4  # points per mm
SCALE = 3.0  # pixels per point when rendering


def make_sheet(weight: float = 70.0, **changes: object) -> LabelSheet:
    base = label_sheet(
        PROTOCOL,
        dose_plan(PROTOCOL.dosing, weight),
        participant_id="TWH-001",
        randomization_number="R0001",
        label_code="K7MX-Q2PA-T",
        prepared_at=PREPARED,
        expires_at=PREPARED + timedelta(hours=PROTOCOL.dosing.expiry_hours),
        prepared_by="phil",
        checked_by="pia",
        print_number=1,
        training=False,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def page_texts(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


@dataclasses.dataclass(frozen=True)
class Bitmap:
    """One rendered page in 8-bit grey, row by row."""

    width: int
    height: int
    rows: tuple[bytes, ...]
    image: Any  # the same page as a PIL image, for the QR reader

    def pixel(self, x_mm: float, y_mm: float) -> int:
        return self.rows[int(y_mm * MM * SCALE)][int(x_mm * MM * SCALE)]


def render(pdf: bytes) -> list[Bitmap]:
    doc = pdfium.PdfDocument(pdf)
    try:
        pages = []
        for page in doc:
            bitmap = page.render(scale=SCALE, grayscale=True)
            raw = bytes(bitmap.buffer)
            rows = tuple(raw[r * bitmap.stride : r * bitmap.stride + bitmap.width]
                         for r in range(bitmap.height))
            pages.append(Bitmap(bitmap.width, bitmap.height, rows, bitmap.to_pil()))
        return pages
    finally:
        doc.close()


def masked(page: Bitmap) -> Iterator[tuple[int, int]]:
    """Pixel positions inside the regions that hold participant-specific data."""
    for x0, y0, x1, y1 in PARTICIPANT_REGIONS:
        for r in range(int(y0 * MM * SCALE), min(page.height, int(y1 * MM * SCALE) + 2)):
            for c in range(int(x0 * MM * SCALE), min(page.width, int(x1 * MM * SCALE) + 2)):
                yield r, c


def differences(a: Bitmap, b: Bitmap) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """(differing pixels outside the participant regions, differing pixels inside them)."""
    assert (a.width, a.height) == (b.width, b.height)
    inside = set(masked(a))
    differ = {(r, c) for r in range(a.height) if a.rows[r] != b.rows[r]
              for c in range(a.width) if a.rows[r][c] != b.rows[r][c]}
    return differ - inside, differ & inside


# --- what a label says -------------------------------------------------------------------------


def test_two_labels_of_4_by_3_inches_one_per_preparation() -> None:
    reader = PdfReader(io.BytesIO(render_labels(make_sheet())))
    assert len(reader.pages) == 2
    for page in reader.pages:
        assert (float(page.mediabox.width), float(page.mediabox.height)) == pytest.approx(
            (PAGE_W * MM, PAGE_H * MM), abs=0.01)


def test_each_label_carries_everything_the_protocol_label_section_asks_for() -> None:
    bolus, bag = page_texts(render_labels(make_sheet()))
    for text in (bolus, bag):
        for wanted in ("KETHEAD", "Protocol KETHEAD-2022-01", "NCT05306899",
                       "TWH-001", "R0001", "K7MX-Q2PA-T", "KETAMINE OR PLACEBO",
                       "FOR CLINICAL TRIAL USE ONLY", "For intravenous use only",
                       "Prepared 2026-03-02 09:15 UTC", "Expires 2026-03-03 09:15 UTC",
                       "Store at room temperature (15-25 °C). Do not freeze.",
                       "Prepared by PH", "Checked by PI", "Dosing weight 70 kg",
                       "University Health Network, Toronto",
                       "Emergency unblinding: contact the site research pharmacy",
                       "VOLUME", "RATE", "DURATION", "Original print"):
            assert wanted in text, wanted
    assert "Bolus syringe" in bolus and "1 of 2" in bolus
    assert "7.0 mL IV bolus Single dose" in bolus
    assert "Infusion bag" in bag and "2 of 2" in bag
    assert "210.0 mL 35.0 mL/h 6 h" in bag


def test_no_label_names_a_product_of_either_arm() -> None:
    products = {text for prep in PROTOCOL.dosing.preparations for text in prep.products.values()}
    text = "\n".join(page_texts(render_labels(make_sheet())))
    assert not [p for p in products if p in text]
    for word in ("Ketamine 10", "mg/mL", "Sodium chloride", "saline", " KET ", " PLA "):
        assert word not in text
    assert not [f.name for f in dataclasses.fields(LabelSheet) if "arm" in f.name]


def test_a_reprint_says_how_many_times_it_was_printed_again() -> None:
    assert print_note(1) == "Original print"
    assert print_note(3) == "REPRINT 2"
    text = "\n".join(page_texts(render_labels(make_sheet(print_number=3))))
    assert "REPRINT 2" in text and "Original print" not in text


def test_a_training_trial_marks_every_label() -> None:
    live, training = (page_texts(render_labels(make_sheet(training=t))) for t in (False, True))
    assert all("TRAINING" in t for t in training)
    assert not any("TRAINING" in t for t in live)


def test_pharmacist_initials() -> None:
    assert [initials(n) for n in ("phil", "pia", "j.smith", "mary-ann_lee", "x")] == [
        "PH", "PI", "JS", "MAL", "X"]


def test_text_the_core_fonts_lack_is_printed_as_near_latin_1() -> None:
    sheet = make_sheet(storage="Store at 15\u201325 \u00b0C \u2014 do not freeze")
    text = page_texts(render_labels(sheet))[0]
    assert "Store at 15-25 °C - do not freeze" in text


def test_long_protocol_text_is_shrunk_to_fit_not_cut() -> None:
    long = "Store at room temperature, away from light and out of reach of children; " * 2
    text = page_texts(render_labels(make_sheet(storage=long.strip())))[0]
    assert long.strip() in text.replace("\n", " ")


# --- the same labels, every time ---------------------------------------------------------------


def test_the_same_sheet_gives_the_same_bytes() -> None:
    assert render_labels(make_sheet()) == render_labels(make_sheet())
    meta = PdfReader(io.BytesIO(render_labels(make_sheet()))).metadata
    assert meta is not None and meta["/CreationDate"] == "D:20000101000000Z"


def decoded(page: Bitmap) -> list[tuple[str, float, float]]:
    """Every QR symbol a reader finds on the page: (text, x, y of its centre in mm)."""
    found = []
    for result in zxingcpp.read_barcodes(page.image, formats=zxingcpp.BarcodeFormat.QRCode):
        corners = [result.position.top_left, result.position.top_right,
                   result.position.bottom_left, result.position.bottom_right]
        x = sum(p.x for p in corners) / 4 / (MM * SCALE)
        y = sum(p.y for p in corners) / 4 / (MM * SCALE)
        found.append((result.text, x, y))
    return found


def test_a_reader_decodes_the_label_code_from_every_printed_label() -> None:
    codes = ["K7MX-Q2PA-T", *(new_label_code() for _ in range(12))]
    for i, code in enumerate(codes):
        sheet = make_sheet(label_code=code, training=i % 3 == 0)  # TRAINING must not disturb it
        for page in render(render_labels(sheet)):
            [(text, x, y)] = decoded(page)
            assert text == code
            # where the layout puts it: in the symbol's region, clear of everything else
            assert QR_X < x < QR_X + QR_SIZE and QR_Y < y < QR_Y + QR_SIZE


def test_the_qr_symbol_is_drawn_module_for_module_with_its_quiet_zone() -> None:
    """Sample the centre of every module of the rendered symbol and compare it with a QR
    symbol of the label code at error level M: dark where it is dark, white around it."""
    code = "K7MX-Q2PA-T"
    expected = [list(row) for row in segno.make_qr(code, error="m", boost_error=False).matrix]
    assert len(expected) == 21  # version 1: every label code fits it
    for page in render(render_labels(make_sheet(label_code=code))):
        modules = len(expected) + 2 * QR_QUIET
        unit = QR_SIZE / modules
        for r in range(-QR_QUIET, len(expected) + QR_QUIET):
            for c in range(-QR_QUIET, len(expected) + QR_QUIET):
                x = QR_X + (QR_QUIET + c + 0.5) * unit
                y = QR_Y + (QR_QUIET + r + 0.5) * unit
                inside = 0 <= r < len(expected) and 0 <= c < len(expected)
                dark = inside and bool(expected[r][c])
                assert (page.pixel(x, y) < 128) == dark, (r, c)


# --- equal weights, different participants -----------------------------------------------------


def other_participant(sheet: LabelSheet) -> LabelSheet:
    return dataclasses.replace(
        sheet, participant_id="SHS-014", randomization_number="R0027",
        label_code="9QZD-W4HT-V", prepared_at=PREPARED + timedelta(days=3, minutes=41),
        expires_at=PREPARED + timedelta(days=4, minutes=41))


def test_labels_of_equal_weight_differ_only_in_identifiers_and_times() -> None:
    first = make_sheet()
    second = other_participant(first)
    pdfs = [render_labels(s) for s in (first, second)]
    assert pdfs[0] != pdfs[1]

    def normalised(sheet: LabelSheet, pdf: bytes) -> list[str]:
        out = []
        for text in page_texts(pdf):
            for value, placeholder in (
                (sheet.participant_id, "<pid>"), (sheet.randomization_number, "<rand>"),
                (sheet.label_code, "<code>"),
                (f"{sheet.prepared_at:%Y-%m-%d %H:%M}", "<prepared>"),
                (f"{sheet.expires_at:%Y-%m-%d %H:%M}", "<expires>"),
            ):
                text = text.replace(value, placeholder)
            out.append(text)
        return out

    assert normalised(first, pdfs[0]) == normalised(second, pdfs[1])
    for a, b in zip(render(pdfs[0]), render(pdfs[1]), strict=True):
        outside, inside = differences(a, b)
        assert not outside
        assert inside  # the regions do hold what differs


def test_a_different_weight_shows_outside_the_participant_regions() -> None:
    """The control for the test above: the comparison does see a label that differs."""
    a, b = (render(render_labels(make_sheet(weight=w)))[1] for w in (70.0, 68.3))
    outside, _inside = differences(a, b)
    assert outside


# --- the preview says what the PDF says -------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(
    weight=st.floats(min_value=40, max_value=160).map(lambda w: round(w, 1)),
    number=st.integers(min_value=1, max_value=9999),
    site=st.sampled_from(["TWH", "MSH", "SMH"]),
    prints=st.integers(min_value=1, max_value=4),
    preparations=st.integers(min_value=1, max_value=3),
    training=st.booleans(),
    storage=st.sampled_from(["Store at 15\u201325 \u00b0C \u2014 do not freeze",
                             "Keep cold (2-8 °C)", "Store at room temperature"]),
)
def test_the_tui_preview_shows_every_word_the_pdf_prints_and_no_other(
    weight: float, number: int, site: str, prints: int, preparations: int, training: bool,
    storage: str,
) -> None:
    """The preview (tui.dialogs.labels.label_text) and the PDF, read back by pypdf, hold the
    same words, label by label, for varied participants; neither names one arm."""
    from trialkit.tui.dialogs.labels import label_text

    sheet = make_sheet(
        weight, participant_id=f"{site}-{number:03d}", randomization_number=f"R{number:04d}",
        label_code=new_label_code(), print_number=prints, preparation_number=preparations,
        training=training, storage=storage,
    )
    pages = page_texts(render_labels(sheet))
    previews = label_text(sheet).split("\n\n")
    assert len(previews) == len(pages) == len(sheet.items)
    for page, preview in zip(pages, previews, strict=True):
        assert Counter(preview.split()) == Counter(page.split())
        assert sheet.product.upper() in preview.splitlines()  # "KETAMINE OR PLACEBO"
        assert print_note(prints, preparations) in preview
    products = {t for prep in PROTOCOL.dosing.preparations for t in prep.products.values()}
    for text in (*pages, *previews):
        assert not [p for p in products if p in text]
        left = text.replace(sheet.product.upper(), "")  # the wording naming every arm
        assert not [a.name for a in PROTOCOL.arms if a.name.lower() in left.lower()]
