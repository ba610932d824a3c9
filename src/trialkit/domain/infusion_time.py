"""When an infusion was given, and whether its preparation was still good then: the one rule
``infuse`` applies, to the minute.

The infusion time is what the coordinator records, in the site's local time:

- ``--date D --time HH:MM``: that minute at the site (``D`` and ``HH:MM`` as the site's wall
  clock reads them);
- ``--date D`` alone, ``D`` being the site's today: now;
- ``--date D`` alone, ``D`` an earlier day: the whole of that day. It is enough when the
  preparation was good for all of that day (prepared before it began, expiring after it
  ended) or for none of it; otherwise the time is needed (``--time``), since the day alone
  cannot say whether the infusion ran before the expiry or after it.

A preparation is good from the minute it was prepared up to, not including, the minute it
expires: an infusion at the expiry minute or later is refused (the pharmacy prepares again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from trialkit.domain.errors import InvalidInput, NextStep, Refused
from trialkit.domain.site_time import SiteTime


@dataclass(frozen=True)
class InfusionTime:
    """What was recorded: the day, and the instant when one is known (None: the day only)."""

    day: date
    at: datetime | None


class PreparationExpired(Refused):
    """The preparation had expired at the infusion time: the pharmacy must prepare again."""


def parse_time(text: str) -> time:
    """``HH:MM`` on a 24-hour clock."""
    hours, colon, minutes = text.strip().partition(":")
    if (colon and hours.isdigit() and minutes.isdigit() and len(hours) <= 2
            and len(minutes) == 2 and int(hours) < 24 and int(minutes) < 60):
        return time(int(hours), int(minutes))
    raise InvalidInput(f"infusion time {text!r}: use HH:MM on a 24-hour clock, e.g. 14:30")


def infusion_time(day: date, at: time | None, *, now: datetime, site: SiteTime) -> InfusionTime:
    """The infusion time recorded as ``day`` (and ``at``, the site's wall clock), checked
    against the clock: neither may be in the future."""
    today = site.today(now)
    if day > today:
        raise InvalidInput(f"infusion date {day} is in the future (today is {today})")
    if at is None:
        return InfusionTime(day, now if day == today else None)
    instant = datetime.combine(day, at, tzinfo=site.tz)
    # A wall-clock time the zone skips (spring forward) or repeats (fall back) is taken as
    # zoneinfo takes it (fold=0); the recorded minute is what the site's staff read.
    if instant > now:
        raise InvalidInput(f"infusion time {site.show(instant)} is in the future "
                           f"(it is now {site.show(now)})")
    return InfusionTime(day, instant)


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def has_expired(expires_at: datetime, now: datetime) -> bool:
    """Whether a preparation expiring at ``expires_at`` is no longer good at ``now``: from
    its expiry minute on (the rule ``check_preparation_good`` applies to an infusion)."""
    return _minute(now) >= _minute(expires_at)


def check_preparation_good(
    when: InfusionTime, *, pid: str, prepared_at: datetime, expires_at: datetime, site: SiteTime
) -> None:
    """Refuse an infusion before the minute its preparation was made (bad input) or at or
    after the minute it expires (``PreparationExpired``); a day alone that straddles either
    asks for the time."""
    made, expiry = _minute(prepared_at), _minute(expires_at)
    if when.at is not None:
        start = end = _minute(when.at)
        before, expired = start < made, has_expired(expires_at, when.at)
    else:
        start = datetime.combine(when.day, time(0), tzinfo=site.tz)
        end = datetime.combine(when.day + timedelta(days=1), time(0), tzinfo=site.tz)
        before, expired = end <= made, start >= expiry
    if before:
        raise InvalidInput(
            f"{pid}: the infusion ({_shown(when, site)}) is before the pharmacy prepared it "
            f"({site.show(prepared_at)})"
        )
    if expired:
        raise PreparationExpired(
            f"{pid}'s prepared infusion expired at {site.show(expires_at)}, before the "
            f"infusion ({_shown(when, site)}): the pharmacy prepares it again",
            next_step=NextStep("prepare-again", pid),
        )
    if when.at is None and (start < made or end > expiry):
        raise InvalidInput(
            f"{pid}: on {when.day} the preparation was good only from "
            f"{site.show(max(start, made))} to {site.show(min(end, expiry))}, so the "
            "infusion time is needed (the site's local time)", needs=("infusion-time",)
        )


def _shown(when: InfusionTime, site: SiteTime) -> str:
    return site.show(when.at) if when.at is not None else str(when.day)
