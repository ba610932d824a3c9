"""Site-local time: an instant read at a Toronto site, checked against the law's own words
(Eastern Standard Time is UTC-5; daylight time, UTC-4, runs from 02:00 local on the second
Sunday of March to 02:00 local on the first Sunday of November, in force since 2007)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trialkit.domain.site_time import UTC_TIME, SiteTime, shown, trial_time, zone

TORONTO = SiteTime.named("America/Toronto")


def _sunday(year: int, month: int, nth: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (nth - 1))


def eastern(at: datetime) -> tuple[datetime, str]:
    """Eastern wall-clock time (naive) and abbreviation, from the rule, not from a tz database."""
    year = at.year
    # 02:00 EST (07:00 UTC) springs forward; 02:00 EDT (06:00 UTC) falls back.
    starts = datetime.combine(_sunday(year, 3, 2), datetime.min.time(), UTC) + timedelta(hours=7)
    ends = datetime.combine(_sunday(year, 11, 1), datetime.min.time(), UTC) + timedelta(hours=6)
    summer = starts <= at < ends
    offset, name = (-4, "EDT") if summer else (-5, "EST")
    return (at + timedelta(hours=offset)).replace(tzinfo=None), name


def z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("instant", "shown", "day"),
    [
        # the brief's examples: evening in Toronto is already tomorrow in UTC
        ("2026-03-02T23:30Z", "2026-03-02 18:30 EST", date(2026, 3, 2)),
        ("2026-03-03T04:30Z", "2026-03-02 23:30 EST", date(2026, 3, 2)),
        ("2026-03-03T05:00Z", "2026-03-03 00:00 EST", date(2026, 3, 3)),
        # 2026-03-08: 02:00 EST becomes 03:00 EDT
        ("2026-03-08T06:59Z", "2026-03-08 01:59 EST", date(2026, 3, 8)),
        ("2026-03-08T07:00Z", "2026-03-08 03:00 EDT", date(2026, 3, 8)),
        # 2026-11-01: 02:00 EDT becomes 01:00 EST, so 01:30 happens twice
        ("2026-11-01T05:30Z", "2026-11-01 01:30 EDT", date(2026, 11, 1)),
        ("2026-11-01T06:30Z", "2026-11-01 01:30 EST", date(2026, 11, 1)),
        ("2026-11-02T03:59Z", "2026-11-01 22:59 EST", date(2026, 11, 1)),
        # the label of the issue: 07:24 UTC is the small hours in Toronto, the day before
        ("2026-06-10T07:24Z", "2026-06-10 03:24 EDT", date(2026, 6, 10)),
        ("2026-06-10T03:24Z", "2026-06-09 23:24 EDT", date(2026, 6, 9)),
    ],
)
def test_a_toronto_site_reads_its_own_wall_clock(instant: str, shown: str, day: date) -> None:
    at = z(instant)
    assert TORONTO.show(at) == shown
    assert TORONTO.date_of(at) == day
    assert TORONTO.today(at) == day
    assert TORONTO.show_time(at) == shown[11:]


def instants(first: int, last: int) -> st.SearchStrategy[datetime]:
    """UTC instants from the start of year ``first`` to the end of year ``last``."""
    low, high = date(first, 1, 1), date(last, 12, 31)
    # hypothesis takes naive bounds and attaches the zone itself
    return st.datetimes(min_value=datetime.combine(low, datetime.min.time()),
                        max_value=datetime.combine(high, datetime.max.time()),
                        timezones=st.just(UTC))


@given(instants(2008, 2036))
def test_any_instant_matches_the_eastern_time_rule(at: datetime) -> None:
    wall, name = eastern(at)
    assert TORONTO.show(at) == f"{wall:%Y-%m-%d %H:%M} {name}"
    assert TORONTO.today(at) == wall.date()
    assert TORONTO.local(at) == at  # the same instant, only read differently
    assert TORONTO.iso(at) == f"{wall:%Y-%m-%dT%H:%M:%S}{'-04:00' if name == 'EDT' else '-05:00'}"


@given(instants(2000, 2099))
def test_utc_is_shown_as_utc(at: datetime) -> None:
    assert UTC_TIME.show(at) == f"{at:%Y-%m-%d %H:%M} UTC"
    assert UTC_TIME.today(at) == at.date()


def test_the_same_instant_is_a_different_date_in_different_zones() -> None:
    at = z("2026-03-03T04:30Z")
    assert SiteTime.named("Asia/Tokyo").show(at) == "2026-03-03 13:30 JST"
    assert TORONTO.date_of(at) == date(2026, 3, 2)


def test_a_naive_time_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="naive"):
        TORONTO.show(datetime(2026, 3, 2, 18, 30))  # noqa: DTZ001 - the point of the test


@pytest.mark.parametrize("name", ["America/Toronot", "Toronto", "", " UTC", "/etc/localtime",
                                  "../zoneinfo/UTC", "-05:00"])
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"time zone"):
        zone(name)


def test_the_trial_time_is_the_sites_zone_when_they_share_one() -> None:
    assert trial_time(["America/Toronto", "America/Toronto"]).name == "America/Toronto"
    assert trial_time(["America/Toronto", "Europe/London"]) == UTC_TIME


@given(instants(2008, 2036))
def test_a_local_time_is_shown_as_the_site_shows_it(at: datetime) -> None:
    local = TORONTO.local(at)
    assert shown(local) == TORONTO.show(at)
    assert shown(at) == UTC_TIME.show(at)
