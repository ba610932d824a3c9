"""One injectable clock: every service reads "now" from it, never from datetime directly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from trialkit.domain.errors import InvalidInput


class Clock(Protocol):
    """Something that says what time it is, always timezone-aware UTC."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class FixedClock:
    """A stated time, for training trials (``TRIALKIT_CLOCK``) and tests."""

    at: datetime

    def now(self) -> datetime:
        return self.at


def parse_clock(text: str) -> FixedClock:
    """Parse an ISO 8601 timestamp (as in ``TRIALKIT_CLOCK``); a date alone means midnight UTC."""
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"TRIALKIT_CLOCK: {text!r} is not an ISO 8601 time (e.g. 2026-03-01T09:30:00Z)"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return FixedClock(at.astimezone(UTC))
