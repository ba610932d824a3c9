"""The infusion time and the preparation's expiry, to the minute (issue: an infusion at
15:00 was accepted after an 11:00 expiry because only dates were compared).

Times are written out by hand in the site's zone (Toronto: UTC-5 in winter, UTC-4 in
summer) and in UTC; nothing here is computed by the code under test."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trialkit.domain.errors import InvalidInput, NextStep
from trialkit.domain.infusion_time import (
    InfusionTime,
    PreparationExpired,
    check_preparation_good,
    has_expired,
    infusion_time,
    parse_time,
)
from trialkit.domain.site_time import SiteTime

TORONTO = SiteTime.named("America/Toronto")
UTC_SITE = SiteTime.named("UTC")
# Prepared 2026-03-02 11:00 UTC (06:00 EST); KetHead's expiry_hours = 24: expires
# 2026-03-03 11:00 UTC (06:00 EST).
PREPARED = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
EXPIRES = datetime(2026, 3, 3, 11, 0, tzinfo=UTC)


def check(when: InfusionTime, site: SiteTime = UTC_SITE) -> None:
    check_preparation_good(when, pid="TWH-001", prepared_at=PREPARED, expires_at=EXPIRES,
                           site=site)


def at_utc(day: int, hour: int, minute: int = 0) -> InfusionTime:
    return InfusionTime(date(2026, 3, day), datetime(2026, 3, day, hour, minute, tzinfo=UTC))


def test_an_infusion_at_15_00_after_an_11_00_expiry_is_refused() -> None:
    """The defect: same date as the expiry, later time."""
    with pytest.raises(PreparationExpired, match="expired at 2026-03-03 11:00 UTC") as err:
        check(at_utc(3, 15))
    assert err.value.next_step == NextStep("prepare-again", "TWH-001")
    assert "--" not in err.value.message  # the faces word the next step, not the domain
    assert err.value.exit_code == 1


@pytest.mark.parametrize(("when", "good"), [
    (at_utc(2, 11, 0), True),    # the minute it was prepared
    (at_utc(2, 10, 59), False),  # the minute before: bad input, not an expiry
    (at_utc(3, 10, 59), True),   # the last good minute
    (at_utc(3, 11, 0), False),   # the expiry minute itself
])
def test_good_from_the_minute_prepared_up_to_the_minute_it_expires(
    when: InfusionTime, good: bool
) -> None:
    if good:
        check(when)
    else:
        with pytest.raises(InvalidInput if when.at and when.at < PREPARED else PreparationExpired):
            check(when)


def test_seconds_do_not_count() -> None:
    """Prepared at 11:00:40: an infusion recorded as 11:00 is not before it."""
    check_preparation_good(at_utc(2, 11, 0), pid="TWH-001",
                           prepared_at=PREPARED + timedelta(seconds=40),
                           expires_at=EXPIRES + timedelta(seconds=40), site=UTC_SITE)


@pytest.mark.parametrize(("day", "outcome"), [
    (1, InvalidInput),         # the whole day before it was prepared
    (2, "time"),               # prepared at 11:00 that day: the day alone cannot tell
    (3, "time"),               # expires at 11:00 that day
    (4, PreparationExpired),   # the whole day after the expiry
])
def test_a_day_without_a_time(day: int, outcome: object) -> None:
    when = InfusionTime(date(2026, 3, day), None)
    if outcome == "time":
        with pytest.raises(InvalidInput, match=r"so the infusion time is needed") as err:
            check(when)
        assert err.value.needs == ("infusion-time",)
    else:
        assert isinstance(outcome, type)
        with pytest.raises(outcome):
            check(when)


def test_a_day_without_a_time_inside_a_long_validity_is_enough() -> None:
    check_preparation_good(InfusionTime(date(2026, 3, 3), None), pid="TWH-001",
                           prepared_at=PREPARED, expires_at=PREPARED + timedelta(hours=72),
                           site=UTC_SITE)


def test_the_time_is_the_sites_wall_clock() -> None:
    """05:59 in Toronto on 3 March (EST, UTC-5) is 10:59 UTC: good; 06:00 is the expiry."""
    now = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)
    good = infusion_time(date(2026, 3, 3), time(5, 59), now=now, site=TORONTO)
    assert good.at == datetime(2026, 3, 3, 10, 59, tzinfo=UTC)
    check(good, TORONTO)
    late = infusion_time(date(2026, 3, 3), time(6, 0), now=now, site=TORONTO)
    with pytest.raises(PreparationExpired, match="expired at 2026-03-03 06:00 EST"):
        check(late, TORONTO)


def test_a_summer_time_is_four_hours_behind_utc() -> None:
    now = datetime(2026, 7, 1, 23, 0, tzinfo=UTC)
    when = infusion_time(date(2026, 7, 1), time(14, 30), now=now, site=TORONTO)
    assert when.at == datetime(2026, 7, 1, 18, 30, tzinfo=UTC)


def test_without_a_time_today_means_now() -> None:
    now = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # 22:00 EST on 2 March in Toronto
    assert infusion_time(date(2026, 3, 2), None, now=now, site=TORONTO) == InfusionTime(
        date(2026, 3, 2), now)
    # in UTC it is already the 3rd: the 2nd is an earlier day, known by its date only
    assert infusion_time(date(2026, 3, 2), None, now=now, site=UTC_SITE) == InfusionTime(
        date(2026, 3, 2), None)


def test_no_infusion_in_the_future() -> None:
    now = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)  # 07:00 EST
    with pytest.raises(InvalidInput, match="is in the future"):
        infusion_time(date(2026, 3, 3), time(7, 1), now=now, site=TORONTO)
    with pytest.raises(InvalidInput, match="is in the future"):
        infusion_time(date(2026, 3, 4), None, now=now, site=TORONTO)
    assert infusion_time(date(2026, 3, 3), time(7, 0), now=now, site=TORONTO).at == now


@pytest.mark.parametrize("text", ["14:30", " 9:05 ", "00:00", "23:59"])
def test_times_are_hh_mm(text: str) -> None:
    hh, mm = text.strip().split(":")
    assert parse_time(text) == time(int(hh), int(mm))


@pytest.mark.parametrize("text", ["24:00", "14", "2pm", "14:60", "", "14:30:00"])
def test_other_times_are_bad_input(text: str) -> None:
    with pytest.raises(InvalidInput, match="use HH:MM"):
        parse_time(text)


@given(st.integers(-3 * 24 * 60, 4 * 24 * 60))
def test_any_minute_is_good_exactly_inside_the_validity(offset: int) -> None:
    at = PREPARED + timedelta(minutes=offset)
    when = InfusionTime(at.date(), at)
    inside = 0 <= offset < 24 * 60  # from the preparation's minute, for expiry_hours = 24
    if inside:
        check(when)
    else:
        with pytest.raises(InvalidInput if offset < 0 else PreparationExpired):
            check(when)


def test_a_preparation_has_expired_from_its_expiry_minute_on() -> None:
    assert not has_expired(EXPIRES, EXPIRES - timedelta(minutes=1))
    assert not has_expired(EXPIRES + timedelta(seconds=50), EXPIRES - timedelta(seconds=1))
    assert has_expired(EXPIRES, EXPIRES)
    assert has_expired(EXPIRES + timedelta(seconds=50), EXPIRES)
    assert has_expired(EXPIRES, EXPIRES + timedelta(days=3))
