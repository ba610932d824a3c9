"""The headache diary's rules: what a valid diary day is, which days count as headache days,
which window a date falls in, and each window's outcomes (counts, proration to the window
length, change from baseline). Pure functions; every clinical number comes from the
protocol's ``[diary]`` section.

Choices the protocol leaves open, made here once:

- ``severity_levels[0]`` is the level of a day without headache ("none"): headache=no
  goes with that level and 0 h; headache=yes needs another level and more than 0 h.
- Acute medication may be taken on a day without headache (it is then an acute-medication
  day but never a headache day).
- The diary starts at consent: no day before it may be recorded, none before it is
  expected, and a day before it (kept by an older version) counts nowhere.
- A window's ``days_expected`` counts its dates from consent on that are over (up to
  yesterday; for a withdrawn participant up to the withdrawal date at the latest); windows
  relative to the infusion expect nothing before the infusion is recorded. Today's diary
  may already be recorded, so ``days_recorded`` can exceed ``days_expected`` by one.
- Before randomization the baseline shown is the one randomizing on the first day the
  whole window is from consent on would use (the 28 days from consent), or, once that
  day has passed, the one randomizing today would use (:func:`provisional_randomization`).
- A window with no day recorded has every count missing (None), never zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from trialkit.domain.errors import InvalidInput
from trialkit.domain.protocol import Diary, Window

# A day has 24 hours: a physical fact, not a clinical rule.
HOURS_IN_DAY = 24.0
_YES = ("yes", "y", "true")
_NO = ("no", "n", "false")


@dataclass(frozen=True)
class DiaryDay:
    """What a participant reports for one calendar date."""

    day: date
    headache: bool
    severity: str
    duration_hours: float
    acute_medication: bool


# --- reading and checking a day ---------------------------------------------------------------


def parse_yes_no(text: str, what: str) -> bool:
    """yes/no (also y/n, true/false, any case) as a bool."""
    value = text.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise InvalidInput(f"{what} {text!r} is not yes or no")


def day_problems(d: DiaryDay, rules: Diary) -> list[str]:
    """Everything wrong with a day's values, as the person entering it should read it."""
    problems: list[str] = []
    levels, none = rules.severity_levels, rules.severity_levels[0]
    if d.severity not in levels:
        problems.append(f"severity {d.severity!r} is not one of {', '.join(levels)}")
    elif d.headache and d.severity == none:
        problems.append(f"headache=yes needs a severity other than {none}")
    elif not d.headache and d.severity != none:
        problems.append(f"headache=no with severity {d.severity!r}: a day without headache "
                        f"has severity {none}")
    hours = d.duration_hours
    if not math.isfinite(hours) or not 0 <= hours <= HOURS_IN_DAY:
        problems.append(f"duration {hours:g} h is outside 0-{HOURS_IN_DAY:g} h")
    elif d.headache and hours == 0:
        problems.append("headache=yes needs a duration above 0 h")
    elif not d.headache and hours > 0:
        problems.append(f"headache=no with a duration of {hours:g} h")
    return problems


def check_day(d: DiaryDay, rules: Diary) -> DiaryDay:
    """The day itself, or InvalidInput naming every problem."""
    problems = day_problems(d, rules)
    if problems:
        raise InvalidInput(f"{d.day}: " + "; ".join(problems))
    return d


def read_day(
    day: date,
    *,
    headache: str,
    severity: str | None,
    duration_hours: str | float | None,
    acute_medication: str | None,
    rules: Diary,
) -> tuple[DiaryDay | None, list[str]]:
    """Turn typed values (command options, CSV cells) into a day, or say what is wrong.
    Empty severity and duration mean none and 0 for a day without headache."""
    problems: list[str] = []
    try:
        has_headache: bool | None = parse_yes_no(headache, "headache")
    except InvalidInput as err:
        has_headache = None
        problems.append(err.message)
    level = (severity or "").strip().lower()
    if not level:
        if has_headache:
            problems.append("severity is required when headache=yes")
        level = rules.severity_levels[0]
    hours = _read_hours(duration_hours, has_headache, problems)
    medication = False
    if acute_medication is not None:
        try:
            medication = parse_yes_no(acute_medication, "acute_medication")
        except InvalidInput as err:
            problems.append(err.message)
    if problems or has_headache is None or hours is None:
        return None, problems
    d = DiaryDay(day, has_headache, level, hours, medication)
    problems = day_problems(d, rules)
    return (None, problems) if problems else (d, [])


def _read_hours(
    value: str | float | None, headache: bool | None, problems: list[str]
) -> float | None:
    if isinstance(value, float | int):
        return float(value)
    text = (value or "").strip()
    if not text:
        if headache:
            problems.append("duration_hours is required when headache=yes")
            return None
        return 0.0
    try:
        return float(text)
    except ValueError:
        problems.append(f"duration_hours {text!r} is not a number of hours")
        return None


# --- what a day counts as ---------------------------------------------------------------------


def is_headache_day(d: DiaryDay, rules: Diary) -> bool:
    """A headache lasting at least the protocol's minimum hours, or (if the protocol says
    so) any headache treated with acute medication."""
    if not d.headache:
        return False
    if d.duration_hours >= rules.headache_day_min_hours:
        return True
    return rules.headache_day_if_acute_medication and d.acute_medication


def is_moderate_severe_day(d: DiaryDay, rules: Diary) -> bool:
    return d.headache and d.severity in rules.moderate_severe_levels


# --- dates and windows ------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchors:
    """The dates windows count from: randomization (baseline) and infusion (day 0)."""

    randomized_on: date | None
    infused_on: date | None

    def of(self, w: Window) -> date | None:
        return self.randomized_on if w.relative_to == "randomization" else self.infused_on


def study_day(day: date, infused_on: date | None) -> int | None:
    """Days since the infusion (day 0; negative before it); None before an infusion."""
    return None if infused_on is None else (day - infused_on).days


def window_dates(w: Window, anchors: Anchors) -> tuple[date, date] | None:
    """First and last calendar date of a window, or None while its anchor is unknown."""
    anchor = anchors.of(w)
    if anchor is None:
        return None
    return anchor + timedelta(days=w.start), anchor + timedelta(days=w.end)


def window_of(day: date, anchors: Anchors, rules: Diary) -> Window | None:
    """The window a date falls in, if any."""
    for w in rules.windows:
        span = window_dates(w, anchors)
        if span is not None and span[0] <= day <= span[1]:
            return w
    return None


def not_consented(pid: str) -> str:
    """Why a participant who has not consented has no diary (every face says it alike)."""
    return f"{pid} has not consented: the diary starts at consent"


def allowed_range(
    *, consented_on: date, infused_on: date | None, today: date, rules: Diary
) -> tuple[date, date]:
    """The dates a diary day may be recorded for: from consent to today, and never more
    than the protocol's last day after the infusion."""
    last = today
    if infused_on is not None:
        last = min(last, infused_on + timedelta(days=rules.max_day_after_infusion))
    return consented_on, last


def date_problem(
    day: date, *, consented_on: date, infused_on: date | None, today: date, rules: Diary
) -> str | None:
    """Why a date cannot take a diary day, or None."""
    if day > today:
        return f"date {day} is in the future (today is {today})"
    if day < consented_on:
        return f"date {day} is before consent ({consented_on}): the diary starts at consent"
    if infused_on is not None:
        limit = infused_on + timedelta(days=rules.max_day_after_infusion)
        if day > limit:
            return (f"date {day} is more than {rules.max_day_after_infusion} days after the "
                    f"infusion ({infused_on}; last diary day {limit})")
    return None


# --- outcomes per window ----------------------------------------------------------------------


@dataclass(frozen=True)
class WindowOutcome:
    """One window's derived outcomes. None means missing, never zero."""

    window: str
    primary: bool
    start: date | None
    end: date | None
    days_expected: int
    days_recorded: int
    headache_days: int | None
    moderate_severe_days: int | None
    acute_medication_days: int | None
    headache_days_28: float | None
    baseline_headache_days_28: float | None
    change_from_baseline: float | None


def _quantum(rules: Diary) -> Decimal:
    return Decimal(1).scaleb(-rules.proration_decimals)


def prorate(count: int | None, recorded: int, rules: Diary) -> Decimal | None:
    """``count`` scaled to the window length when enough days are recorded, rounded half up
    to the protocol's decimals; None (missing) otherwise."""
    if count is None or recorded < rules.proration_min_days:
        return None
    exact = Decimal(count * rules.window_days) / Decimal(recorded)
    return exact.quantize(_quantum(rules), rounding=ROUND_HALF_UP)


def _expected(span: tuple[date, date] | None, since: date, until: date) -> int:
    if span is None:
        return 0
    first, last = max(span[0], since), min(span[1], until)
    return max(0, (last - first).days + 1)


def provisional_randomization(consented_on: date | None, today: date, rules: Diary) -> date:
    """The randomization date a participant not yet randomized is shown against: the first
    day whose baseline window lies wholly after consent, or today once that has passed
    (until consent, today: nothing is expected before consent anyway)."""
    if consented_on is None:
        return today
    return max(today, consented_on - timedelta(days=rules.baseline_window.start))


def derive_outcomes(
    days: Iterable[DiaryDay],
    anchors: Anchors,
    rules: Diary,
    *,
    today: date,
    first_day: date | None = None,
    last_day: date | None = None,
) -> list[WindowOutcome]:
    """Every window's counts, proration and change from baseline. Days are expected once
    they are over; ``first_day`` (consent) starts the diary: no day before it is expected
    or counted; ``last_day`` (a withdrawal date) ends what is expected."""
    yesterday = today - timedelta(days=1)
    until = yesterday if last_day is None else min(yesterday, last_day)
    since = date.min if first_day is None else first_day
    # Each window's dates once, not once per diary day (exports derive millions of days).
    spans = {w.code: window_dates(w, anchors) for w in rules.windows}
    placed = [(code, span) for code, span in spans.items() if span is not None]
    by_window: dict[str, list[DiaryDay]] = {w.code: [] for w in rules.windows}
    for d in days:
        if d.day < since:
            continue
        for code, (start, end) in placed:
            if start <= d.day <= end:
                by_window[code].append(d)
                break
    base_code = rules.baseline_window.code
    # The change is measured in headache days (not moderate/severe days): the baseline's
    # headache days prorated exactly as every other window's are.
    base_headache_days = _counts(by_window[base_code], rules)[0]
    base_28 = prorate(base_headache_days, len(by_window[base_code]), rules)
    out: list[WindowOutcome] = []
    for w in rules.windows:
        span = spans[w.code]
        recorded = len(by_window[w.code])
        hd, ms, am = _counts(by_window[w.code], rules)
        hd_28 = prorate(hd, recorded, rules)
        change = None
        if w.code != base_code and hd_28 is not None and base_28 is not None:
            change = hd_28 - base_28
        out.append(
            WindowOutcome(
                window=w.code,
                primary=w.primary,
                start=span[0] if span else None,
                end=span[1] if span else None,
                days_expected=_expected(span, since, until),
                days_recorded=recorded,
                headache_days=hd,
                moderate_severe_days=ms,
                acute_medication_days=am,
                headache_days_28=_float(hd_28),
                baseline_headache_days_28=_float(base_28),
                change_from_baseline=_float(change),
            )
        )
    return out


def _counts(days: Sequence[DiaryDay], rules: Diary) -> tuple[int | None, ...]:
    if not days:
        return None, None, None
    return (
        sum(is_headache_day(d, rules) for d in days),
        sum(is_moderate_severe_day(d, rules) for d in days),
        sum(d.acute_medication for d in days),
    )


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


# --- the randomization gate -------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineCheck:
    """The baseline window as the randomization gate sees it."""

    start: date
    end: date
    days_recorded: int
    headache_days: int
    shortfalls: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.shortfalls


def earliest_randomization(consented_on: date, rules: Diary) -> date:
    """The first day whose baseline window can hold the protocol's minimum of recorded
    days, the diary starting at consent."""
    return consented_on + timedelta(days=rules.baseline_min_days - rules.baseline_window.end - 1)


def check_baseline(days: Iterable[DiaryDay], randomize_on: date, rules: Diary, *,
                   consented_on: date | None = None) -> BaselineCheck:
    """Whether the baseline window before ``randomize_on`` has enough recorded days and
    headache days, and if not, which is short and by how much. Days before consent
    (``consented_on``) count for nothing: the diary starts at consent."""
    w = rules.baseline_window
    start, end = randomize_on + timedelta(days=w.start), randomize_on + timedelta(days=w.end)
    first = start if consented_on is None else max(start, consented_on)
    inside = [d for d in days if first <= d.day <= end]
    recorded = len(inside)
    headache = sum(is_headache_day(d, rules) for d in inside)
    length = w.end - w.start + 1
    shortfalls: list[str] = []
    if recorded < rules.baseline_min_days:
        earliest = None if consented_on is None else earliest_randomization(consented_on, rules)
        when = (f"; the diary starts at consent ({consented_on}), so {earliest} is the "
                "earliest day to randomize" if earliest is not None and earliest > randomize_on
                else "")
        shortfalls.append(f"{recorded} of {length} days recorded "
                          f"(at least {rules.baseline_min_days} needed{when})")
    if headache < rules.baseline_min_headache_days:
        shortfalls.append(f"{headache} headache days "
                          f"(at least {rules.baseline_min_headache_days} needed)")
    return BaselineCheck(start, end, recorded, headache, tuple(shortfalls))
