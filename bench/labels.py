"""How long one participant's label pair takes to render (blank fpdf2 pages for reference).

Run with the project's interpreter:  .venv/bin/python bench/labels.py [--participants N]

Builds ``--participants`` (default 200) label sheets from protocols/kethead.toml, each with
its own participant id, randomization number, random label code, weight and times, and
times ``trialkit.render.labels.render_labels`` on each (one PDF of two labels per participant,
QR symbol included: the PDF bytes a pharmacist's `dispense --label-out` writes).

The baseline is what fpdf2 costs for the same output without content: one document per
participant with the same two pages (the same page size), blank. The two are timed in
alternating rounds (``--rounds``, default 5) so load from elsewhere hits both alike; the
script prints the minimum, median and maximum per participant over the rounds.
``--out FILE.pdf`` also writes one sample label pair to look at.

Exit status 0 unless something fails; times are never enforced."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fpdf import FPDF

from trialkit.domain.codes import new_label_code
from trialkit.domain.dosing import dose_plan
from trialkit.domain.protocol import load_protocol
from trialkit.render.labels import PAGE_H, PAGE_W, LabelSheet, label_sheet, render_labels

ROOT = Path(__file__).resolve().parents[1]
KETHEAD = ROOT / "protocols" / "kethead.toml"


def sheets(n: int) -> list[LabelSheet]:
    protocol = load_protocol(KETHEAD).protocol
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    out = []
    for i in range(n):
        prepared = start + timedelta(minutes=37 * i)
        out.append(label_sheet(
            protocol,
            dose_plan(protocol.dosing, 45.0 + (i * 7.3) % 90),
            participant_id=f"{('TWH', 'SHS')[i % 2]}-{i + 1:03d}",
            randomization_number=f"R{i + 1:04d}",
            label_code=new_label_code(),
            prepared_at=prepared,
            expires_at=prepared + timedelta(hours=protocol.dosing.expiry_hours),
            prepared_by="phil",
            checked_by="pia",
            print_number=1,
            training=False,
        ))
    return out


def blank_pair(pages: int) -> bytes:
    pdf = FPDF(unit="mm", format=(PAGE_W, PAGE_H))
    for _ in range(pages):
        pdf.add_page()
    return bytes(pdf.output())


def per_item(work: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write one sample label pair here")
    args = parser.parse_args()

    batch = sheets(args.participants)
    pages = len(batch[0].items)
    render_labels(batch[0]), blank_pair(pages)  # warm up: imports, font metrics
    labels: list[float] = []
    blanks: list[float] = []
    for _ in range(args.rounds):
        labels.append(per_item(lambda: [render_labels(s) for s in batch], len(batch)))
        blanks.append(per_item(lambda: [blank_pair(pages) for _ in batch], len(batch)))
    size = len(render_labels(batch[0]))
    print(f"{args.participants} participants x {pages} labels, {args.rounds} alternating rounds")
    for name, runs in ((f"blank fpdf2 document of {pages} pages", blanks),
                       ("label pair (render_labels)", labels)):
        ms = sorted(t * 1e3 for t in runs)
        print(f"{name}: min {ms[0]:.2f} ms, median {statistics.median(ms):.2f} ms, "
              f"max {ms[-1]:.2f} ms per participant")
    print(f"a label pair is {size:,} bytes")
    if args.out:
        args.out.write_bytes(render_labels(batch[0]))
        print(f"sample written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
