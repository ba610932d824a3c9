"""The primary outcome's change from baseline, checked against the protocol's words rather
than against the code: a small reference implementation below (integers only, written from
the KetHead protocol text) and hand-worked cases.

The protocol (KetHead, section diary): a headache day is a headache lasting 4 hours or
more, or any headache treated with acute medication. A 28-day window with at least 21
days recorded is prorated: headache days x 28 / days recorded, rounded half up to one
decimal; with fewer days it is missing. The baseline is the 28 days before
randomization; the change from baseline is a window's prorated headache days minus the
baseline's prorated headache days (headache days, whatever their severity)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from trialkit.domain.diary import Anchors, DiaryDay, derive_outcomes
from trialkit.domain.protocol import load_protocol

KETHEAD = Path(__file__).resolve().parents[2] / "protocols" / "kethead.toml"
RULES = load_protocol(KETHEAD).protocol.diary
RANDOMIZED = date(2026, 4, 1)
INFUSED = date(2026, 4, 3)
TODAY = date(2026, 8, 1)  # every window is over

# --- the reference: the protocol's words, nothing read from the code ---------------------------

MIN_HOURS_TENTHS = 40  # "a headache lasting 4 hours or more" (hours in tenths: exact)
MIN_DAYS = 21  # "at least 21 days recorded"
WINDOW = 28
# The windows: baseline = the 28 days before randomization; then days 1-28, 29-56 and
# 57-84 after the infusion (day 0).
SPANS = {
    "BASELINE": (RANDOMIZED - timedelta(days=28), RANDOMIZED - timedelta(days=1)),
    "D1-28": (INFUSED + timedelta(days=1), INFUSED + timedelta(days=28)),
    "D29-56": (INFUSED + timedelta(days=29), INFUSED + timedelta(days=56)),
    "D57-84": (INFUSED + timedelta(days=57), INFUSED + timedelta(days=84)),
}


def ref_headache_day(headache: bool, hours_tenths: int, medicated: bool) -> bool:
    return headache and (hours_tenths >= MIN_HOURS_TENTHS or medicated)


def ref_per_28_tenths(headache_days: int, recorded: int) -> int | None:
    """Prorated headache days in tenths, rounded half up; None (missing) below 21 days.
    x = 280 * hd / n tenths; half up: floor(x + 1/2) = (560 * hd + n) // (2 * n)."""
    if recorded < MIN_DAYS:
        return None
    return (2 * 10 * WINDOW * headache_days + recorded) // (2 * recorded)


Entry = tuple[int, bool, str, int, bool]  # day offset from randomization, headache,
# severity, hours in tenths, acute medication


def reference(entries: list[Entry]) -> dict[str, tuple[float | None, float | None,
                                                        float | None]]:
    """Per window: (headache_days_28, baseline_headache_days_28, change_from_baseline)."""
    tenths: dict[str, int | None] = {}
    for code, (first, last) in SPANS.items():
        inside = [e for e in entries if first <= RANDOMIZED + timedelta(days=e[0]) <= last]
        hd = sum(ref_headache_day(h, t, m) for _, h, _, t, m in inside)
        tenths[code] = ref_per_28_tenths(hd, len(inside))
    base = tenths["BASELINE"]
    out: dict[str, tuple[float | None, float | None, float | None]] = {}
    for code, value in tenths.items():
        change = (None if code == "BASELINE" or value is None or base is None
                  else (value - base) / 10)
        out[code] = (None if value is None else value / 10,
                     None if base is None else base / 10, change)
    return out


def as_days(entries: list[Entry]) -> list[DiaryDay]:
    return [DiaryDay(RANDOMIZED + timedelta(days=k), h, s, t / 10, m) for k, h, s, t, m in entries]


def derived(entries: list[Entry]) -> dict[str, tuple[float | None, float | None,
                                                      float | None]]:
    got = derive_outcomes(as_days(entries), Anchors(RANDOMIZED, INFUSED), RULES, today=TODAY)
    return {o.window: (o.headache_days_28, o.baseline_headache_days_28, o.change_from_baseline)
            for o in got}


# --- hand-worked cases --------------------------------------------------------------------------


def block(first: int, kinds: list[tuple[int, bool, str, int, bool]]) -> list[Entry]:
    """Consecutive days from offset ``first``: (count, headache, severity, tenths, medicated)."""
    out: list[Entry] = []
    for count, h, s, t, m in kinds:
        out += [(first + len(out) + i, h, s, t, m) for i in range(count)]
    return out


def test_mild_and_short_medicated_baseline_days_count_and_short_untreated_ones_do_not() -> None:
    # Baseline: 24 of its 28 days recorded (offsets -28..-5; -4..-1 not recorded).
    baseline = block(-28, [
        (7, True, "severe", 80, False),    # headache days, moderate/severe
        (5, True, "mild", 60, False),      # headache days, NOT moderate/severe
        (3, True, "moderate", 20, False),  # short, untreated: not headache days
        (2, True, "mild", 10, True),       # short but treated: headache days
        (1, True, "moderate", 30, True),   # short but treated: headache day
        (6, False, "none", 0, False),
    ])
    assert len(baseline) == 24
    # 15 headache days (7 + 5 + 2 + 1); 11 moderate/severe days (7 + 3 + 1).
    # 15 x 28 / 24 = 17.5 exactly.  (The moderate/severe count would give 12.8.)
    # D1-28 (offsets 3..30): all 28 days, 9 headache days -> 9.0; change 9.0 - 17.5 = -8.5.
    primary = block(3, [
        (4, True, "severe", 50, False),
        (3, True, "mild", 40, False),       # exactly 4 h: a headache day
        (2, True, "mild", 5, True),         # half an hour, treated: headache days
        (2, True, "moderate", 35, False),   # 3.5 h untreated: not
        (17, False, "none", 0, False),
    ])
    got = {o.window: o for o in derive_outcomes(
        as_days(baseline + primary), Anchors(RANDOMIZED, INFUSED), RULES, today=TODAY)}
    base, d1 = got["BASELINE"], got["D1-28"]
    assert (base.days_recorded, base.headache_days, base.moderate_severe_days) == (24, 15, 11)
    assert (base.headache_days_28, d1.baseline_headache_days_28) == (17.5, 17.5)
    assert (d1.days_recorded, d1.headache_days, d1.headache_days_28) == (28, 9, 9.0)
    assert d1.change_from_baseline == -8.5


def test_the_issues_participant_improved_by_five_days_not_worsened() -> None:
    # Baseline: 28 days; 20 headache days of which only 9 moderate or severe (11 mild).
    # D1-28: 28 days, 15 headache days. Change 15 - 20 = -5.0 (the bug said 15 - 9 = +6.0).
    baseline = block(-28, [(9, True, "moderate", 60, False), (11, True, "mild", 60, False),
                           (8, False, "none", 0, False)])
    primary = block(3, [(15, True, "mild", 50, False), (13, False, "none", 0, False)])
    assert derived(baseline + primary)["D1-28"] == (15.0, 20.0, -5.0)


def test_a_thin_baseline_leaves_every_change_missing() -> None:
    baseline = block(-28, [(20, True, "severe", 80, False)])  # 20 < 21 days: missing
    primary = block(3, [(28, True, "mild", 50, False)])
    assert derived(baseline + primary)["D1-28"] == (28.0, None, None)


# --- properties: the code agrees with the reference on varied diaries ----------------------------

_SEVERE = st.sampled_from(["mild", "moderate", "severe"])
# Hours in tenths: many around the 4-hour threshold (3.9, 4.0, 4.1), short and long ones.
_TENTHS = st.one_of(st.sampled_from([1, 5, 20, 39, 40, 41, 60]),
                    st.integers(min_value=1, max_value=240))


@st.composite
def diaries(draw: st.DrawFn) -> list[Entry]:
    """Days with gaps around and inside every window; mixed severities and durations."""
    keep = draw(st.floats(min_value=0.6, max_value=1.0))  # how full the diary is
    out: list[Entry] = []
    for k in range(-30, 90):
        if draw(st.floats(min_value=0, max_value=1)) > keep:
            continue  # a gap
        if draw(st.booleans()):
            out.append((k, True, draw(_SEVERE), draw(_TENTHS), draw(st.booleans())))
        else:
            out.append((k, False, "none", 0, draw(st.booleans())))
    return out


@settings(max_examples=150, deadline=None)
@given(entries=diaries())
def test_every_window_agrees_with_the_protocols_words(entries: list[Entry]) -> None:
    assert derived(entries) == reference(entries)


@settings(max_examples=100, deadline=None)
@given(entries=diaries(), consent=st.integers(min_value=-40, max_value=10))
def test_the_diary_starts_at_consent(entries: list[Entry], consent: int) -> None:
    """A day before consent counts nowhere, and no date before it is expected: a window's
    expected days are its dates from consent on (every window is over here)."""
    consented_on = RANDOMIZED + timedelta(days=consent)
    got = derive_outcomes(as_days(entries), Anchors(RANDOMIZED, INFUSED), RULES, today=TODAY,
                          first_day=consented_on)
    kept = [e for e in entries if e[0] >= consent]
    assert {o.window: (o.headache_days_28, o.baseline_headache_days_28, o.change_from_baseline)
            for o in got} == reference(kept)
    for o in got:
        first, last = SPANS[o.window]
        assert o.days_expected == max(0, (last - max(first, consented_on)).days + 1)
