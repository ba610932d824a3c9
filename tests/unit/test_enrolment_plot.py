"""The enrolment curve's data (``figures.enrolment_plot``, drawn by the status SVG and the
TUI dashboard): whole-number y ticks, time up to today, one step line per site plus the total,
and the protocol's target. Expected values are counted here from the randomization dates
themselves, not from the code under test."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from trialkit.render.figures import EnrolmentPlot, StepLine, enrolment_plot
from trialkit.services.exports.status import Consort, CurvePoint, Enrolment, TrialStatus

SITES = ("TWH", "SHS", "MGH")
FIRST = date(2026, 3, 2)


def _status(randomized: list[tuple[int, str]], today: int, targets: dict[str, int]
            ) -> TrialStatus:
    """A status whose curve is what the report gives: by the end of each day with a
    randomization, the cumulative count in all and per site."""
    per_day: Counter[tuple[int, str]] = Counter(randomized)
    days = sorted({d for d, _ in randomized})
    points = []
    for day in days:
        by_site = tuple((s, sum(n for (d, site), n in per_day.items() if site == s and d <= day))
                        for s in targets)
        points.append(CurvePoint(FIRST + timedelta(days=day), sum(n for _, n in by_site),
                                 by_site))
    sites = tuple(Enrolment(s, s, t, 0, 0, 0, 0, 0) for s, t in targets.items())
    consort = Consort(**dict.fromkeys(Consort.__dataclass_fields__, 0)  # type: ignore[arg-type]
                      | {"ineligible_by_criterion": (), "primary_window": "D1-28"})
    return TrialStatus("T", "t", False, FIRST + timedelta(days=today), None, None,
                       sum(targets.values()), sites, (), None, (), (), consort, tuple(points))


def _level_at(line: StepLine, x: int) -> int:
    """The line's height just after ``x`` (the last corner at or before it)."""
    level = 0
    for cx, cy in zip(line.xs, line.ys, strict=True):
        if cx <= x:
            level = cy
    return level


randomizations = st.lists(st.tuples(st.integers(0, 60), st.sampled_from(SITES)),
                          min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(randomizations, st.integers(0, 90), st.lists(st.integers(1, 400), min_size=3,
                                                     max_size=3))
def test_plot_follows_the_randomizations(rs: list[tuple[int, str]], extra: int,
                                         targets: list[int]) -> None:
    targets_by_site = dict(zip(SITES, targets, strict=True))
    last = max(d for d, _ in rs)
    today = last + extra
    plot = enrolment_plot(_status(rs, today, targets_by_site))
    assert isinstance(plot, EnrolmentPlot)
    first_day = min(d for d, _ in rs)
    # From the day before the first randomization to today (the trial clock).
    assert plot.start == FIRST + timedelta(days=first_day - 1)
    assert plot.end == FIRST + timedelta(days=today)
    assert plot.target == sum(targets)
    # y ticks: whole numbers from 0, evenly spaced, reaching the target and the total.
    ticks = plot.y_ticks
    assert all(isinstance(t, int) for t in ticks)
    assert ticks[0] == 0 and ticks[-1] == plot.y_top >= max(sum(targets), len(rs))
    gaps = {b - a for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(gaps) == 1 and gaps.pop() >= 1
    assert 2 <= len(ticks) <= 11
    # One line per site in order, then the total.
    assert [ln.site for ln in plot.lines] == [*SITES, None]
    for line in plot.lines:
        chosen = [d for d, s in rs if line.site in (None, s)]
        # Steps only: every segment is horizontal or vertical, and time never goes back.
        corners = list(zip(line.xs, line.ys, strict=True))
        for (x0, y0), (x1, y1) in zip(corners, corners[1:], strict=False):
            assert x0 == x1 or y0 == y1
            assert x1 >= x0
        assert (line.xs[0], line.ys[0]) == (0, 0)
        assert line.xs[-1] == (plot.end - plot.start).days
        # At every day, the height is everyone randomized by the end of that day.
        for x in range(line.xs[-1] + 1):
            day = (plot.start - FIRST).days + x
            assert _level_at(line, x) == sum(1 for d in chosen if d <= day)
        # One vertical step per day with randomizations, whatever their number.
        rises = sum(1 for a, b in zip(line.ys, line.ys[1:], strict=False) if b > a)
        assert rises == len(set(chosen))


def test_four_randomized_at_one_moment_are_one_step() -> None:
    plot = enrolment_plot(_status([(3, "TWH")] * 4, 10, {"TWH": 28, "SHS": 28}))
    assert plot is not None
    total = plot.lines[-1]
    assert list(zip(total.xs, total.ys, strict=True)) == [(0, 0), (1, 0), (1, 4), (8, 4)]
    assert plot.y_ticks == (0, 20, 40, 60)


def test_small_trial_ticks_are_whole_numbers() -> None:
    # The complaint: a target of 2 drew 0.00, 0.67, 1.33...
    plot = enrolment_plot(_status([(0, "TWH")], 0, {"TWH": 1, "SHS": 1}))
    assert plot is not None
    assert plot.y_ticks == (0, 1, 2)


def test_no_randomization_no_plot() -> None:
    assert enrolment_plot(_status([], 0, {"TWH": 28})) is None
