"""The design report as a PDF: the table of exact figures, the trade-off a statistician
draws (predictability against imbalance, one point per design), the distribution of one
stratum's final imbalance and of the trial-wide one. Drawn with fpdf2's public drawing API;
names no arm."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fpdf import FPDF

if TYPE_CHECKING:
    from trialkit.services.enrolment.design_report import DesignReport
    from trialkit.services.exports.randomization_report import RandomizationReport


INK = (31, 41, 51)
GRID = (217, 222, 227)
MUTED = (97, 110, 124)
# Okabe-Ito, colour-blind safe; the protocol's design is always the first colour.
COLOURS = ((0, 114, 178), (230, 159, 0), (0, 158, 115), (204, 121, 167), (86, 180, 233),
           (213, 94, 0), (240, 228, 66))


def _ascii(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def _axes(pdf: FPDF, x: float, y: float, w: float, h: float, *, x_range: tuple[float, float],
          y_range: tuple[float, float], x_label: str, y_label: str, x_ticks: list[float],
          y_ticks: list[float], fmt_x: str = "{:.1f}", fmt_y: str = "{:.2f}") -> None:
    pdf.set_draw_color(*GRID)
    pdf.set_line_width(0.2)
    pdf.set_font("Helvetica", size=7)
    pdf.set_text_color(*MUTED)
    for t in y_ticks:
        yy = y + h - (t - y_range[0]) / (y_range[1] - y_range[0]) * h
        pdf.line(x, yy, x + w, yy)
        pdf.text(x - 9, yy + 1, fmt_y.format(t))
    for t in x_ticks:
        xx = x + (t - x_range[0]) / (x_range[1] - x_range[0]) * w
        pdf.line(xx, y, xx, y + h)
        pdf.text(xx - 2, y + h + 4, fmt_x.format(t))
    pdf.set_draw_color(*INK)
    pdf.set_line_width(0.3)
    pdf.line(x, y + h, x + w, y + h)
    pdf.line(x, y, x, y + h)
    pdf.set_font("Helvetica", size=8)
    pdf.set_text_color(*INK)
    pdf.text(x + w / 2 - len(x_label) * 0.75, y + h + 9, x_label)
    with pdf.rotation(90, x - 12, y + h / 2 + len(y_label) * 0.75):
        pdf.text(x - 12, y + h / 2 + len(y_label) * 0.75, y_label)


def _ticks(low: float, high: float, step: float) -> list[float]:
    out, t = [], low
    while t <= high + 1e-9:
        out.append(round(t, 6))
        t += step
    return out


def _tradeoff(pdf: FPDF, report: DesignReport, x: float, y: float, w: float, h: float) -> None:
    rows = report.rows
    top = max(r.metrics.expected_max_imbalance for r in rows)
    x_hi = max(1.0, float(int(top) + 1))
    y_lo, y_hi = 0.45, max(0.75, max(r.metrics.correct_guess for r in rows) + 0.02)
    _axes(pdf, x, y, w, h, x_range=(0, x_hi), y_range=(y_lo, y_hi),
          x_label="expected largest imbalance in the stratum (participants)",
          y_label="correct guesses (proportion)",
          x_ticks=_ticks(0, x_hi, 1.0), y_ticks=_ticks(0.45, y_hi, 0.05), fmt_x="{:.0f}")
    placed: list[tuple[float, float]] = []
    for i, r in enumerate(rows):
        m = r.metrics
        px = x + m.expected_max_imbalance / x_hi * w
        py = y + h - (m.correct_guess - y_lo) / (y_hi - y_lo) * h
        label_y = py - 2
        while any(abs(label_y - ly) < 3.5 and abs(px - lx) < 35 for lx, ly in placed):
            label_y += 4  # below a label it would overlap
        placed.append((px, label_y))
        pdf.set_fill_color(*COLOURS[i % len(COLOURS)])
        pdf.set_draw_color(*INK)
        radius = 2.2 if r.protocol else 1.6
        pdf.ellipse(px - radius, py - radius, 2 * radius, 2 * radius, style="DF")
        pdf.set_font("Helvetica", "B" if r.protocol else "", 7)
        pdf.set_text_color(*INK)
        label = m.design.label() + (" (protocol)" if r.protocol else "")
        pdf.text(min(px + 3, x + w - 2), label_y, _ascii(label))


def _distribution(pdf: FPDF, title: str, series: list[tuple[str, dict[int, float]]],
                  x: float, y: float, w: float, h: float) -> None:
    """Grouped bars, one group per imbalance that occurs (they share a parity)."""
    values = sorted({k for _, dist in series for k in dist if dist[k] >= 0.0005})
    if not values:
        return
    top = max(p for _, dist in series for p in dist.values())
    y_hi = min(1.0, top * 1.1 + 0.01)
    every = max(1, len(values) // 10)
    _axes(pdf, x, y, w, h, x_range=(0, len(values)), y_range=(0, y_hi),
          x_label=title, y_label="probability", x_ticks=[],
          y_ticks=_ticks(0, y_hi, 0.2 if y_hi > 0.5 else 0.1), fmt_x="{:.0f}")
    slot = w / len(values)
    bar = slot * 0.85 / len(series)
    pdf.set_font("Helvetica", size=7)
    pdf.set_text_color(*MUTED)
    for j, value in enumerate(values):
        if j % every == 0:
            pdf.text(x + (j + 0.5) * slot - 1.5, y + h + 4, str(value))
    for i, (_, dist) in enumerate(series):
        pdf.set_fill_color(*COLOURS[i % len(COLOURS)])
        for j, value in enumerate(values):
            height = dist.get(value, 0.0) / y_hi * h
            if height > 0:
                pdf.rect(x + j * slot + slot * 0.075 + i * bar, y + h - height, bar, height,
                         style="F")


def _legend(pdf: FPDF, names: list[str], x: float, y: float) -> None:
    """Two rows of colour keys."""
    pdf.set_font("Helvetica", size=7)
    per_row = (len(names) + 1) // 2
    for i, name in enumerate(names):
        left, top = x + (i % per_row) * 38, y + (i // per_row) * 4
        pdf.set_fill_color(*COLOURS[i % len(COLOURS)])
        pdf.rect(left, top - 2.5, 3, 3, style="F")
        pdf.set_text_color(*INK)
        pdf.text(left + 4.5, top, _ascii(name[:26]))


def write_design_pdf(report: DesignReport, path: Path) -> None:
    """Write the design report to ``path`` (A4, landscape)."""
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_title(f"{report.trial}: randomization design report")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.set_text_color(*INK)
    pdf.text(15, 15, _ascii(f"{report.trial}: randomization design report"))
    pdf.set_font("Helvetica", size=9)
    pdf.set_text_color(*MUTED)
    pdf.text(15, 21, _ascii(
        f"Exact figures for one stratum's list of {report.n} allocations (1:1), by dynamic "
        "programming; guesses by someone who knows every past allocation and guesses the arm "
        "that is behind."))
    pdf.text(15, 25.5, _ascii(
        "Trial-wide imbalance simulated over the protocol's expected stratum sizes ("
        + ", ".join(map(str, report.stratum_sizes)) + ")."))
    # the table
    headers = ["design", "correct guess", "forced", "E[max imbalance]", "P(final = 0)"]
    widths = [80, 28, 20, 32, 26]
    pdf.set_xy(15, 30)
    pdf.set_font("Helvetica", "B", 8)
    pdf.set_text_color(*INK)
    for head, width in zip(headers, widths, strict=True):
        pdf.cell(width, 5, head, border="B", align="L" if head == "design" else "R")
    pdf.ln()
    for r in report.rows:
        m = r.metrics
        pdf.set_x(15)
        pdf.set_font("Helvetica", "B" if r.protocol else "", 8)
        cells = [m.design.label() + (" (protocol)" if r.protocol else ""),
                 f"{m.correct_guess:.3f}", f"{m.forced:.3f}",
                 f"{m.expected_max_imbalance:.2f}", f"{m.final_imbalance.get(0, 0.0):.3f}"]
        for text, width in zip(cells, widths, strict=True):
            pdf.cell(width, 4.5, _ascii(text), align="L" if width == 80 else "R")
        pdf.ln()
    # the trade-off and the distributions
    pdf.set_font("Helvetica", "B", 9)
    pdf.text(15, 72, "Predictability against imbalance (one point per design)")
    _tradeoff(pdf, report, 32, 77, 105, 105)
    names = [r.metrics.design.label() for r in report.rows]
    stratum = [(n, r.metrics.final_imbalance) for n, r in zip(names, report.rows, strict=True)]
    trial = [(n, r.trial_wide) for n, r in zip(names, report.rows, strict=True)]
    _legend(pdf, names, 170, 72)
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_text_color(*INK)
    pdf.text(170, 86, f"Final imbalance of one stratum ({report.n} allocations), exact")
    _distribution(pdf, "first arm minus second", stratum, 182, 90, 100, 38)
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_text_color(*INK)
    pdf.text(170, 146, "Trial-wide final imbalance, all strata (simulated)")
    _distribution(pdf, "first arm minus second", trial, 182, 150, 100, 38)
    pdf.output(str(path))


def write_randomization_pdf(report: RandomizationReport, path: Path) -> None:
    """The randomization report (after the lock) as a PDF: the segments with their
    procedure, sealing and verification, then every envelope in sequence. UNBLINDED."""
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(True, margin=12)
    pdf.set_title(f"{report.trial}: randomization report")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.set_text_color(*INK)
    pdf.cell(0, 8, _ascii(f"{report.trial}: randomization report (UNBLINDED)"), new_x="LMARGIN",
             new_y="NEXT")
    pdf.set_font("Helvetica", size=8)
    pdf.cell(0, 5, _ascii(f"Made {report.generated_at:%Y-%m-%d %H:%M} UTC by "
                          f"{report.generated_by}; generator: {report.generator}"),
             new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, "List segments", new_x="LMARGIN", new_y="NEXT")
    heads = [("stratum", 20), ("seg", 10), ("list", 32), ("envelopes", 18), ("released", 18),
             ("procedure", 85), ("sealed", 45), ("manifest key", 32), ("verified", 18)]
    _row(pdf, [h for h, _ in heads], [w for _, w in heads], bold=True)
    for s in report.segments:
        procedure = ", ".join(f"{k} {v}" for k, v in s.procedure.items()
                              if k not in ("generator", "block_weights"))[:60]
        _row(pdf, [s.stratum, str(s.segment), s.list_id, str(s.envelopes), str(s.released),
                   procedure, f"{s.sealed_at:%Y-%m-%d %H:%M} by {s.sealed_by}",
                   s.manifest_fingerprint, s.verified], [w for _, w in heads])
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, "Envelopes, per stratum in sequence", new_x="LMARGIN", new_y="NEXT")
    heads = [("stratum", 20), ("seq", 12), ("seg", 10), ("block", 14), ("size", 12),
             ("pos", 10), ("arm", 45), ("released", 16), ("participant", 24), ("number", 18),
             ("randomized", 34), ("by", 22)]
    _row(pdf, [h for h, _ in heads], [w for _, w in heads], bold=True)
    for e in report.envelopes:
        _row(pdf, [e.stratum, str(e.seq), str(e.segment), str(e.block), str(e.block_size),
                   str(e.position), f"{e.arm_code} ({e.arm_name})"[:40],
                   "yes" if e.released else "no", e.participant_id or "",
                   e.randomization_number or "",
                   f"{e.randomized_at:%Y-%m-%d %H:%M}" if e.randomized_at else "",
                   e.randomized_by or ""], [w for _, w in heads])
    pdf.output(str(path))


def _row(pdf: FPDF, cells: list[str], widths: list[int], *, bold: bool = False) -> None:
    pdf.set_font("Helvetica", "B" if bold else "", 7)
    for text, width in zip(cells, widths, strict=True):
        pdf.cell(width, 4, _ascii(text), border="B" if bold else 0)
    pdf.ln()
