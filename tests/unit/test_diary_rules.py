"""The diary's rules, without a database: what a valid day is, what counts as a headache
day, which window a date is in, and each window's outcomes — all read from the protocol
(the same tests run against a changed protocol to show no number is written in code)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialkit.domain.diary import (
    Anchors,
    DiaryDay,
    check_baseline,
    check_day,
    date_problem,
    derive_outcomes,
    is_headache_day,
    is_moderate_severe_day,
    prorate,
    read_day,
    study_day,
    window_dates,
    window_of,
)
from trialkit.domain.errors import InvalidInput
from trialkit.domain.protocol import Diary, load_protocol

KETHEAD = Path(__file__).resolve().parents[2] / "protocols" / "kethead.toml"
RULES = load_protocol(KETHEAD).protocol.diary
# Another trial's rules: a shorter headache, no acute-medication rule, a lower proration
# threshold and two decimals.
OTHER = RULES.model_copy(update={"headache_day_min_hours": 2.0,
                                 "headache_day_if_acute_medication": False,
                                 "proration_min_days": 14, "proration_decimals": 2})
RANDOMIZED = date(2026, 4, 1)
INFUSED = date(2026, 4, 3)
ANCHORS = Anchors(RANDOMIZED, INFUSED)


def day(d: date = date(2026, 3, 10), headache: bool = True, severity: str = "moderate",
        hours: float = 5.0, acute: bool = False) -> DiaryDay:
    return DiaryDay(d, headache, severity, hours, acute)


# --- a valid day ------------------------------------------------------------------------------


def test_a_typed_day_is_read_from_the_words_people_use() -> None:
    d, problems = read_day(date(2026, 3, 10), headache="Yes", severity=" Severe ",
                           duration_hours="6.5", acute_medication="y", rules=RULES)
    assert problems == []
    assert d == DiaryDay(date(2026, 3, 10), True, "severe", 6.5, True)


def test_a_day_without_headache_may_leave_severity_and_duration_empty() -> None:
    d, problems = read_day(date(2026, 3, 10), headache="no", severity="", duration_hours="",
                           acute_medication="no", rules=RULES)
    assert (d, problems) == (DiaryDay(date(2026, 3, 10), False, "none", 0.0, False), [])


def test_acute_medication_without_headache_is_allowed_but_is_no_headache_day() -> None:
    d, problems = read_day(date(2026, 3, 10), headache="no", severity=None, duration_hours=None,
                           acute_medication="yes", rules=RULES)
    assert problems == [] and d is not None
    assert d.acute_medication and not is_headache_day(d, RULES)


@pytest.mark.parametrize(("values", "problem"), [
    ({"headache": "maybe"}, "headache 'maybe' is not yes or no"),
    ({"severity": "awful"}, "severity 'awful' is not one of none, mild, moderate, severe"),
    ({"duration_hours": "25"}, "duration 25 h is outside 0-24 h"),
    ({"duration_hours": "-1"}, "duration -1 h is outside 0-24 h"),
    ({"duration_hours": "nan"}, "duration nan h is outside 0-24 h"),
    ({"duration_hours": "four"}, "duration_hours 'four' is not a number of hours"),
    ({"duration_hours": ""}, "duration_hours is required when headache=yes"),
    ({"duration_hours": "0"}, "headache=yes needs a duration above 0 h"),
    ({"severity": ""}, "severity is required when headache=yes"),
    ({"severity": "none"}, "headache=yes needs a severity other than none"),
    ({"headache": "no", "duration_hours": "0"},
     "headache=no with severity 'mild': a day without headache has severity none"),
    ({"headache": "no", "severity": "none"}, "headache=no with a duration of 3 h"),
    ({"acute_medication": "often"}, "acute_medication 'often' is not yes or no"),
])
def test_each_bad_value_gets_its_own_message(values: dict[str, str], problem: str) -> None:
    given_ = {"headache": "yes", "severity": "mild", "duration_hours": "3",
              "acute_medication": "no"} | values
    d, problems = read_day(date(2026, 3, 10), rules=RULES, **given_)
    assert d is None
    assert problems == [problem]


def test_several_problems_on_one_day_are_all_named() -> None:
    d, problems = read_day(date(2026, 3, 10), headache="perhaps", severity="",
                           duration_hours="x", acute_medication="?", rules=RULES)
    assert d is None and len(problems) == 3


def test_check_day_refuses_a_day_built_in_code_too() -> None:
    with pytest.raises(InvalidInput, match="2026-03-10: headache=no with a duration of 2 h"):
        check_day(day(headache=False, severity="none", hours=2), RULES)
    assert check_day(day(), RULES) == day()


# --- what a day counts as ---------------------------------------------------------------------


@pytest.mark.parametrize(("d", "kethead", "other"), [
    (day(hours=4.0), True, True),  # the minimum duration counts
    (day(hours=3.99), False, True),  # short, untreated: a headache day only in OTHER (2 h)
    (day(hours=1.0, acute=True), True, False),  # treated: KetHead counts it, OTHER does not
    (day(headache=False, severity="none", hours=0, acute=True), False, False),
    (day(hours=24.0, severity="mild"), True, True),
])
def test_headache_day_follows_the_protocol(d: DiaryDay, kethead: bool, other: bool) -> None:
    assert is_headache_day(d, RULES) is kethead
    assert is_headache_day(d, OTHER) is other


def test_moderate_and_severe_days_are_the_protocols_levels() -> None:
    assert [is_moderate_severe_day(day(severity=s, headache=s != "none",
                                       hours=1 if s != "none" else 0), RULES)
            for s in RULES.severity_levels] == [False, False, True, True]


# --- dates and windows ------------------------------------------------------------------------


def test_windows_count_from_randomization_and_from_the_infusion() -> None:
    spans = {w.code: window_dates(w, ANCHORS) for w in RULES.windows}
    assert spans == {
        "BASELINE": (date(2026, 3, 4), date(2026, 3, 31)),
        "D1-28": (date(2026, 4, 4), date(2026, 5, 1)),
        "D29-56": (date(2026, 5, 2), date(2026, 5, 29)),
        "D57-84": (date(2026, 5, 30), date(2026, 6, 26)),
    }
    assert window_of(date(2026, 3, 31), ANCHORS, RULES).code == "BASELINE"  # type: ignore[union-attr]
    assert window_of(date(2026, 4, 1), ANCHORS, RULES) is None  # randomization day
    assert window_of(INFUSED, ANCHORS, RULES) is None  # day 0
    assert window_of(date(2026, 4, 4), ANCHORS, RULES).code == "D1-28"  # type: ignore[union-attr]
    assert window_of(date(2026, 6, 27), ANCHORS, RULES) is None


def test_before_the_infusion_only_the_baseline_window_exists() -> None:
    anchors = Anchors(RANDOMIZED, None)
    assert window_of(date(2026, 4, 10), anchors, RULES) is None
    assert study_day(date(2026, 4, 10), None) is None
    assert study_day(date(2026, 4, 10), INFUSED) == 7
    assert study_day(date(2026, 4, 1), INFUSED) == -2


@pytest.mark.parametrize(("d", "problem"), [
    (date(2026, 7, 2), "date 2026-07-02 is in the future (today is 2026-07-01)"),
    (date(2026, 2, 28), "date 2026-02-28 is before consent (2026-03-01): the diary starts at "
                        "consent"),
    (date(2026, 6, 27), "date 2026-06-27 is more than 84 days after the infusion "
                        "(2026-04-03; last diary day 2026-06-26)"),
    (date(2026, 6, 26), None),
    (date(2026, 3, 1), None),
])
def test_diary_dates_run_from_consent_to_the_last_protocol_day(
    d: date, problem: str | None
) -> None:
    assert date_problem(d, consented_on=date(2026, 3, 1), infused_on=INFUSED,
                        today=date(2026, 7, 1), rules=RULES) == problem


# --- outcomes ---------------------------------------------------------------------------------


def days_in(start: date, n: int, headache_every: int = 2) -> list[DiaryDay]:
    return [day(start + timedelta(days=i)) if i % headache_every == 0
            else day(start + timedelta(days=i), False, "none", 0.0) for i in range(n)]


def test_headache_days_are_prorated_to_28_when_enough_days_are_recorded() -> None:
    # 22 of 28 baseline days recorded, 11 headache days: 11 x 28 / 22 = 14.0
    baseline = days_in(date(2026, 3, 4), 22)
    # 27 days of D1-28, 14 headache days: 14 x 28 / 27 = 14.518... -> 14.5
    primary = days_in(date(2026, 4, 4), 27)
    # 20 days of D29-56: below the protocol's 21 -> missing
    later = days_in(date(2026, 5, 2), 20)
    got = {o.window: o for o in derive_outcomes(baseline + primary + later, ANCHORS, RULES,
                                                today=date(2026, 7, 1))}
    b, p, m, last = got["BASELINE"], got["D1-28"], got["D29-56"], got["D57-84"]
    assert (b.days_recorded, b.headache_days, b.headache_days_28) == (22, 11, 14.0)
    assert (b.change_from_baseline, b.baseline_headache_days_28) == (None, 14.0)
    assert (p.days_expected, p.days_recorded, p.headache_days) == (28, 27, 14)
    assert (p.headache_days_28, p.change_from_baseline, p.primary) == (14.5, 0.5, True)
    assert (m.days_recorded, m.headache_days, m.headache_days_28) == (20, 10, None)
    assert m.change_from_baseline is None
    assert (last.days_expected, last.days_recorded, last.headache_days) == (28, 0, None)
    assert (last.moderate_severe_days, last.acute_medication_days) == (None, None)


def test_proration_rounds_half_up_to_the_protocols_decimals() -> None:
    assert prorate(15, 24, RULES) == pytest.approx(17.5)  # exactly 17.5
    assert str(prorate(1, 24, RULES)) == "1.2"  # 1.1666...
    assert str(prorate(3, 21, RULES)) == "4.0"
    assert str(prorate(3, 21, OTHER)) == "4.00"
    assert prorate(3, 13, OTHER) is None and prorate(3, 14, OTHER) is not None
    assert prorate(None, 28, RULES) is None


def test_days_expected_stop_at_yesterday_and_at_withdrawal() -> None:
    got = derive_outcomes([], ANCHORS, RULES, today=date(2026, 4, 10))
    assert [o.days_expected for o in got] == [28, 6, 0, 0]  # 4-9 April: today is not over
    got = derive_outcomes([], ANCHORS, RULES, today=date(2026, 7, 1),
                          last_day=date(2026, 5, 3))
    assert [o.days_expected for o in got] == [28, 28, 2, 0]
    not_infused = derive_outcomes([], Anchors(RANDOMIZED, None), RULES, today=date(2026, 7, 1))
    assert [(o.days_expected, o.start) for o in not_infused][1:] == [(0, None)] * 3


def test_the_baseline_gate_says_which_minimum_is_short_and_by_how_much() -> None:
    window_start = RANDOMIZED - timedelta(days=28)
    enough = days_in(window_start, 28, headache_every=1)[:24]
    assert check_baseline(enough, RANDOMIZED, RULES).passed
    thin = check_baseline(days_in(window_start, 23, headache_every=1), RANDOMIZED, RULES)
    assert thin.shortfalls == ("23 of 28 days recorded (at least 24 needed)",)
    mild = check_baseline(days_in(window_start, 28), RANDOMIZED, RULES)
    assert mild.shortfalls == ("14 headache days (at least 15 needed)",)
    # days outside the window (before it, or on the randomization day) do not count
    outside = days_in(window_start - timedelta(days=5), 5) + [day(RANDOMIZED)]
    empty = check_baseline(outside, RANDOMIZED, RULES)
    assert (empty.days_recorded, empty.headache_days) == (0, 0)
    assert len(empty.shortfalls) == 2


# --- properties -------------------------------------------------------------------------------

_WINDOW_DAYS = st.sets(st.integers(min_value=-40, max_value=100), max_size=140)


@st.composite
def diaries(draw: st.DrawFn) -> list[DiaryDay]:
    offsets = sorted(draw(_WINDOW_DAYS))
    out = []
    for k in offsets:
        headache = draw(st.booleans())
        level = draw(st.sampled_from(RULES.severity_levels[1:])) if headache else "none"
        hours = draw(st.floats(min_value=0.1, max_value=24)) if headache else 0.0
        out.append(DiaryDay(RANDOMIZED + timedelta(days=k), headache, level, hours,
                            draw(st.booleans())))
    return out


@settings(max_examples=200, deadline=None)
@given(days=diaries(), rules=st.sampled_from([RULES, OTHER]),
       today=st.dates(min_value=date(2026, 3, 1), max_value=date(2026, 8, 1)))
def test_outcomes_never_exceed_what_was_recorded(
    days: list[DiaryDay], rules: Diary, today: date
) -> None:
    for o in derive_outcomes(days, ANCHORS, rules, today=today):
        assert 0 <= o.days_recorded <= rules.window_days
        assert 0 <= o.days_expected <= rules.window_days
        if o.days_recorded == 0:  # missing, not zero
            assert (o.headache_days, o.moderate_severe_days, o.acute_medication_days,
                    o.headache_days_28, o.change_from_baseline) == (None,) * 5
            continue
        for count in (o.headache_days, o.moderate_severe_days, o.acute_medication_days):
            assert count is not None and 0 <= count <= o.days_recorded
        if o.days_recorded < rules.proration_min_days:
            assert o.headache_days_28 is None
        else:
            assert o.headache_days_28 is not None
            assert 0 <= o.headache_days_28 <= rules.window_days
            assert o.headache_days_28 >= o.headache_days  # scaling up, never down
        if o.change_from_baseline is not None:
            assert o.headache_days_28 is not None and o.baseline_headache_days_28 is not None
            assert abs(o.change_from_baseline) <= rules.window_days


@given(count=st.integers(min_value=0, max_value=28), recorded=st.integers(min_value=1,
                                                                          max_value=28))
def test_proration_never_exceeds_28(count: int, recorded: int) -> None:
    count = min(count, recorded)
    value = prorate(count, recorded, RULES)
    if recorded < RULES.proration_min_days:
        assert value is None
    else:
        assert value is not None and 0 <= value <= RULES.window_days
        assert value == round(value, RULES.proration_decimals)


@given(d=st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31)))
def test_a_date_is_in_at_most_one_window_and_that_window_holds_it(d: date) -> None:
    w = window_of(d, ANCHORS, RULES)
    holding = [x.code for x in RULES.windows
               if (span := window_dates(x, ANCHORS)) and span[0] <= d <= span[1]]
    assert holding == ([w.code] if w else [])
