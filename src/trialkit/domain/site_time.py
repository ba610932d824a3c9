"""Site-local time: the one rule for turning an instant into what a site's staff read.

trialkit keeps every instant in UTC (the clock, the database, the audit trail). People at a
site live in the site's time zone (``[[sites]] timezone`` in the protocol): a day of the study,
"today" for a diary, a consent or infusion date, and the times printed on labels and screens
are the site's local ones, shown with the zone's abbreviation (EST, EDT) so nobody has to guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# What a time zone looks like in a protocol file, for error messages.
EXAMPLE_ZONE = "America/Toronto"

# Stored protocols written before sites had a time zone ran on UTC; they keep doing so.
LEGACY_ZONE = "UTC"


def zone(name: str) -> ZoneInfo:
    """The IANA time zone of this name; ``ValueError`` if there is none."""
    # ZoneInfo would also read a file path ("../../etc/passwd" is refused, but "" or "/x" are
    # odd): only IANA-style names are accepted.
    if not name or name != name.strip() or name.startswith("/") or ".." in name:
        raise ValueError(f"{name!r} is not an IANA time zone name (e.g. {EXAMPLE_ZONE!r})")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"{name!r} is not a known time zone (an IANA name such as {EXAMPLE_ZONE!r})"
        ) from None


# To the minute, with the zone's abbreviation: what every label and screen prints.
_SHOWN = "%Y-%m-%d %H:%M %Z"


def _instant(at: datetime) -> datetime:
    if at.tzinfo is None:
        # Every instant in trialkit is aware; a naive one is a bug, not "probably UTC".
        raise ValueError("naive datetime: trialkit times are always timezone-aware")
    return at


@dataclass(frozen=True)
class SiteTime:
    """Local time at one site (or for the whole trial, see ``trial_time``)."""

    tz: ZoneInfo

    @classmethod
    def named(cls, name: str) -> SiteTime:
        """Local time in the IANA zone ``name``; ``ValueError`` if unknown."""
        return cls(zone(name))

    @property
    def name(self) -> str:
        """The zone's IANA name, e.g. ``America/Toronto``."""
        return self.tz.key

    def local(self, at: datetime) -> datetime:
        """The instant ``at`` as the site's wall clock reads it (aware, in the site's zone)."""
        return _instant(at).astimezone(self.tz)

    def date_of(self, at: datetime) -> date:
        """The site's calendar date at the instant ``at`` (a study day, a diary day)."""
        return self.local(at).date()

    def today(self, now: datetime) -> date:
        """The site's date "today" when the clock says ``now``."""
        return self.date_of(now)

    def show(self, at: datetime) -> str:
        """``2026-03-02 18:30 EST``: the instant to the minute in local time, with the zone."""
        return shown(self.local(at))

    def show_time(self, at: datetime) -> str:
        """``18:30 EST``: the time of day only, for a message about today."""
        return self.local(at).strftime("%H:%M %Z")

    def iso(self, at: datetime) -> str:
        """ISO 8601 local time with its UTC offset (for ``--json``), e.g. ``...T18:30:00-05:00``."""
        return self.local(at).isoformat(timespec="seconds")


def shown(at: datetime) -> str:
    """A time already in a site's zone (``SiteTime.local``) as people read it, with its zone:
    ``2026-03-02 18:30 EST``. Services hand faces local times; faces print them with this."""
    return _instant(at).strftime(_SHOWN)


UTC_TIME = SiteTime(ZoneInfo("UTC"))


def trial_time(zone_names: list[str] | tuple[str, ...]) -> SiteTime:
    """Local time for things that belong to no single site (the lock, a trial-wide report):
    the sites' zone if they all share one, otherwise UTC (a multi-zone trial has no one
    local time, and UTC shown as "UTC" is unambiguous)."""
    names = set(zone_names)
    return SiteTime.named(names.pop()) if len(names) == 1 else UTC_TIME

