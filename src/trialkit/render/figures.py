"""The status figure: the enrolment curve and the CONSORT flow, as one SVG document written
by hand (no plotting library: the figure must look the same on every machine and never
pull a heavy dependency into the CLI). Blinded: counts only, never split by arm."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

if TYPE_CHECKING:
    from trialkit.services.exports.status import Consort, TrialStatus


WIDTH = 960
CURVE_HEIGHT = 380
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
INK, GRID, MUTED, TARGET = "#1f2933", "#d9dee3", "#616e7c", "#c2410c"
# One colour per site, then the total; colour-blind safe (Okabe-Ito).
SITE_COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442")
TOTAL_COLOUR = "#000000"
# And one dash pattern per site, so sites with the same count stay visible on each other.
SITE_DASHES = ("", "7 4", "2 3", "10 3 2 3")
MAX_REASONS = 8  # ineligibility reasons listed before "... n more"


def _text(x: float, y: float, content: str, *, size: int = 12, anchor: str = "start",
          weight: str = "normal", fill: str = INK, extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}"{extra}>{escape(content)}</text>')


def _nice_step(top: int, ticks: int = 5) -> int:
    """A round step (1, 2, 5 x 10^k) giving about ``ticks`` gridlines up to ``top``."""
    raw = max(1.0, top / ticks)
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power:
            return int(m * power)
    return int(10 * power)


def _date_ticks(first: date, last: date, count: int = 6) -> list[date]:
    span = max(1, (last - first).days)
    step = max(1, math.ceil(span / (count - 1)))
    ticks = [first + timedelta(days=i * step) for i in range(count) if i * step <= span]
    return ticks


# --- the enrolment curve's data (one source for the SVG and the TUI's plot) -----------------


@dataclass(frozen=True)
class StepLine:
    """A cumulative count as the corners of a step plot: ``xs`` are days after the plot's
    start, ``ys`` whole counts. Everyone randomized on one day is one vertical step."""

    label: str
    xs: tuple[int, ...]
    ys: tuple[int, ...]
    site: str | None  # None: all sites


@dataclass(frozen=True)
class EnrolmentPlot:
    """What the enrolment curve shows: from the day before the first randomization to
    today (the trial clock), one line per site and the total, and the target."""

    start: date
    end: date
    lines: tuple[StepLine, ...]  # the sites in protocol order, then all sites
    target: int
    y_top: int
    y_ticks: tuple[int, ...]  # whole numbers, 0 to y_top
    x_ticks: tuple[date, ...]

    def day(self, d: date) -> int:
        """``d`` as days after the start."""
        return (d - self.start).days

    @property
    def span(self) -> int:
        return max(1, self.day(self.end))


def _steps(counts: Sequence[tuple[int, int]], span: int) -> tuple[tuple[int, ...],
                                                                  tuple[int, ...]]:
    xs, ys, level = [0], [0], 0
    for x, n in counts:
        if n != level:
            xs += [x, x]
            ys += [level, n]
            level = n
    xs.append(span)
    ys.append(level)
    return tuple(xs), tuple(ys)


def enrolment_plot(status: TrialStatus) -> EnrolmentPlot | None:
    """The enrolment curve's data, or None before the first randomization."""
    points = status.curve
    if not points:
        return None
    start = points[0].day - timedelta(days=1)
    end = max(status.as_of, points[-1].day)
    span = max(1, (end - start).days)
    y_max = max(status.target, points[-1].total, 1)
    step = _nice_step(y_max)
    y_top = math.ceil(y_max / step) * step
    lines = []
    for site in status.sites:
        counts = [((p.day - start).days, dict(p.by_site).get(site.code, 0)) for p in points]
        lines.append(StepLine(f"{site.code} ({counts[-1][1]} of {site.target})",
                              *_steps(counts, span), site=site.code))
    total = [((p.day - start).days, p.total) for p in points]
    lines.append(StepLine(f"All sites ({points[-1].total})", *_steps(total, span), site=None))
    return EnrolmentPlot(start, end, tuple(lines), status.target, y_top,
                         tuple(range(0, y_top + 1, step)), tuple(_date_ticks(start, end)))


# --- the enrolment curve -------------------------------------------------------------------


def _curve(status: TrialStatus, top: float) -> list[str]:
    left, right, plot_top, bottom = 70.0, WIDTH - 190.0, top + 50.0, top + CURVE_HEIGHT - 50.0
    out = [_text(20, top + 26, "Enrolment: participants randomized (cumulative)", size=16,
                 weight="bold")]
    plot = enrolment_plot(status)
    if plot is None:
        out.append(_text((left + right) / 2, (plot_top + bottom) / 2,
                         "No participant has been randomized yet", size=14, anchor="middle",
                         fill=MUTED))
        return out

    def x_of(days: float) -> float:
        return left + (right - left) * days / plot.span

    def y_of(n: float) -> float:
        return bottom - (bottom - plot_top) * n / plot.y_top

    for n in plot.y_ticks:
        y = y_of(n)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" '
                   f'stroke="{GRID}" stroke-width="1"/>')
        out.append(_text(left - 8, y + 4, str(n), size=11, anchor="end", fill=MUTED))
    for d in plot.x_ticks:
        x = x_of(plot.day(d))
        out.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" '
                   f'stroke="{MUTED}"/>')
        out.append(_text(x, bottom + 19, d.isoformat(), size=11, anchor="middle", fill=MUTED))
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="{INK}"/>')
    out.append(f'<line x1="{left}" y1="{plot_top}" x2="{left}" y2="{bottom}" stroke="{INK}"/>')
    middle = (plot_top + bottom) / 2
    out.append(_text(18, middle, "participants", size=11, anchor="middle", fill=MUTED,
                     extra=f' transform="rotate(-90 18 {middle:.1f})"'))
    # Target: a dashed line with its number.
    y_target = y_of(plot.target)
    out.append(f'<line x1="{left}" y1="{y_target:.1f}" x2="{right}" y2="{y_target:.1f}" '
               f'stroke="{TARGET}" stroke-width="1.5" stroke-dasharray="6 4"/>')
    out.append(_text(right - 4, y_target - 6, f"target {plot.target}", size=11, anchor="end",
                     fill=TARGET))
    series: list[Series] = []
    for i, line in enumerate(plot.lines):
        if line.site is None:
            series.append((line.label, TOTAL_COLOUR, 2.6, "", line))
        else:
            series.append((line.label, SITE_COLOURS[i % len(SITE_COLOURS)], 1.8,
                           SITE_DASHES[i % len(SITE_DASHES)], line))
    for _label, colour, width, dash, line in series:
        out.append(_step_path(line, x_of, y_of,
                              f'stroke="{colour}" stroke-width="{width}"{_dashes(dash)}'))
    out += _legend(series, right + 16, plot_top + 6)
    return out


# label, colour, width, dash pattern, line
Series = tuple[str, str, float, str, StepLine]


def _dashes(pattern: str) -> str:
    return f' stroke-dasharray="{pattern}"' if pattern else ""


def _step_path(line: StepLine, x_of: Callable[[float], float], y_of: Callable[[float], float],
               stroke: str) -> str:
    """A step line through its corners."""
    corners = " L".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in zip(line.xs, line.ys,
                                                                       strict=True))
    return f'<path d="M{corners}" fill="none" {stroke} stroke-linejoin="round"/>'


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    out: list[str] = []
    for i, (label, colour, width, dash, _line) in enumerate(series):
        yy = y + 20 * i
        out.append(f'<line x1="{x:.1f}" y1="{yy:.1f}" x2="{x + 22:.1f}" y2="{yy:.1f}" '
                   f'stroke="{colour}" stroke-width="{width}"{_dashes(dash)}/>')
        out.append(_text(x + 28, yy + 4, label, size=11))
    return out


# --- the CONSORT flow ----------------------------------------------------------------------


def _box(x: float, y: float, w: float, lines: Sequence[str], *, bold_first: bool = True
         ) -> tuple[list[str], float]:
    """A box of text lines; returns its SVG and its height."""
    h = 14 + 17 * len(lines)
    out = [f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="4" '
           f'fill="#ffffff" stroke="{INK}" stroke-width="1.2"/>']
    for i, line in enumerate(lines):
        out.append(_text(x + 10, y + 21 + 17 * i, line, size=12 if i == 0 else 11,
                         weight="bold" if (i == 0 and bold_first) else "normal",
                         fill=INK if i == 0 else MUTED))
    return out, h


def _arrow(x1: float, y1: float, x2: float, y2: float) -> str:
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{INK}" '
            f'stroke-width="1.2" marker-end="url(#arrow)"/>')


def _reasons(c: Consort) -> list[str]:
    shown = [f"{cid}: {n}" for cid, n in c.ineligible_by_criterion[:MAX_REASONS]]
    rest = len(c.ineligible_by_criterion) - MAX_REASONS
    if rest > 0:
        shown.append(f"... and {rest} more criteria")
    return shown


def consort_rows(c: Consort) -> list[tuple[str, int]]:
    """CONSORT 2010's boxes as (label, count), sub-counts indented (blinded: arms pooled).
    "Withdrawn": everyone whose status is withdrawn, as the participants list counts them."""
    return [
        ("Assessed for eligibility", c.screened),
        ("Excluded", c.ineligible + c.not_randomized),
        ("  not eligible", c.ineligible),
        ("  declined (no consent)", c.declined),
        ("  withdrew after consent", c.withdrew_after_consent),
        ("  not yet randomized", c.awaiting_randomization),
        ("Randomized (arms pooled)", c.randomized),
        ("Received the infusion", c.infused),
        ("Not infused", c.randomized - c.infused),
        ("  withdrew before it", c.not_infused_withdrawn),
        ("  not given yet", c.awaiting_infusion),
        ("Lost to follow-up", c.lost_to_follow_up),
        ("Discontinued (withdrew)", c.withdrawn),
        (f"Completed {c.primary_window}", c.completed_primary),
        (f"Completed {c.last_window}", c.completed_last),
        ("Analysed (ITT)", c.analysed),
        ("  primary outcome missing", c.primary_missing),
        ("Withdrawn (all)", c.withdrew_before_randomization + c.withdrawn),
    ]


def _flow(status: TrialStatus, top: float) -> tuple[list[str], float]:
    """The flow's SVG and where it ends."""
    c = status.consort
    out = [_text(20, top + 26, "CONSORT flow (blinded: counts are not split by arm)", size=16,
                 weight="bold")]
    main_x, main_w, side_x, side_w = 150.0, 300.0, 540.0, 380.0
    excluded = c.ineligible + c.not_randomized
    not_infused = c.randomized - c.infused
    stages = [
        ("Enrolment", [f"Assessed for eligibility (n={c.screened})"],
         [f"Excluded (n={excluded})",
          f"not meeting eligibility criteria: {c.ineligible}", *_reasons(c),
          f"declined (no consent): {c.declined}",
          f"withdrew after consent, before randomization: {c.withdrew_after_consent}",
          f"not yet randomized: {c.awaiting_randomization}"]),
        ("Allocation", [f"Randomized (n={c.randomized})", "arms pooled: blinded"],
         [f"Did not receive the allocated infusion (n={not_infused})",
          f"withdrew before the infusion: {c.not_infused_withdrawn}",
          f"infusion not given yet: {c.awaiting_infusion}"]),
        ("", [f"Received the allocated infusion (n={c.infused})"], []),
        ("Follow-up", [f"Completed {c.primary_window} (n={c.completed_primary})",
                       f"completed {c.last_window}: {c.completed_last}",
                       "window over and still in the trial on its last day"],
         [f"Lost to follow-up (n={c.lost_to_follow_up})",
          f"{c.primary_window} over, its outcome missing, not withdrawn",
          f"Discontinued (n={c.withdrawn})",
          f"withdrew after the infusion: {c.discontinued}",
          f"withdrew before it: {c.not_infused_withdrawn}"]),
        ("Analysis", [f"Analysed (n={c.analysed})", "intention to treat: everyone randomized",
                      f"primary outcome ({c.primary_window}) missing: {c.primary_missing}"],
         []),
    ]
    y = top + 50.0
    previous_bottom: float | None = None
    for label, main, side in stages:
        box, h = _box(main_x, y, main_w, main)
        side_h = 0.0
        if side:
            side_svg, side_h = _box(side_x, y, side_w, side)
            out += side_svg
            out.append(_arrow(main_x + main_w, y + 20, side_x - 2, y + 20))
        out += box
        if previous_bottom is not None:
            out.append(_arrow(main_x + main_w / 2, previous_bottom, main_x + main_w / 2, y - 2))
        if label:
            out.append(_text(20, y + 20, label, size=13, weight="bold", fill=MUTED))
        previous_bottom = y + h
        y += max(h, side_h) + 28
    return out, y


# --- the document --------------------------------------------------------------------------


def status_svg(status: TrialStatus) -> str:
    """The enrolment curve above the CONSORT flow, as a standalone SVG document."""
    banner = 34 if status.training else 0
    header = 56
    flow, bottom = _flow(status, banner + header + CURVE_HEIGHT)
    height = bottom + 10
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" font-family={quoteattr(FONT)}>',
        f"<title>{escape(status.trial_code)} status on {status.as_of.isoformat()}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{INK}"/></marker></defs>',
        f'<rect width="{WIDTH}" height="{height:.0f}" fill="#ffffff"/>',
    ]
    if status.training:
        out.append(f'<rect width="{WIDTH}" height="{banner}" fill="{TARGET}"/>')
        out.append(_text(WIDTH / 2, 23, "TRAINING - not for clinical use", size=16,
                         anchor="middle", weight="bold", fill="#ffffff"))
    locked = (f"database locked {status.locked_at:%Y-%m-%d}" if status.locked_at
              else "database open")
    out.append(_text(20, banner + 26, f"{status.trial_code}: status on "
                     f"{status.as_of.isoformat()}", size=18, weight="bold"))
    out.append(_text(20, banner + 46, f"{locked}; {status.consort.randomized} of "
                     f"{status.target} randomized; blinded", size=12, fill=MUTED))
    out += _curve(status, banner + header)
    out += flow
    out.append("</svg>")
    return "\n".join(out) + "\n"
