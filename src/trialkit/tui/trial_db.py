"""The service calls the TUI makes, as plain Python run inside thread workers.

No Textual here. Services and SQLAlchemy are imported inside each call so that importing
the TUI stays light and the first screen shows before any database work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trialkit.domain.errors import TrialkitError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from trialkit.domain.clock import Clock
    from trialkit.services.actor import Actor
    from trialkit.services.trial import TrialInfo


class DatabaseUnavailable(TrialkitError):
    """The database did not answer (network, file lock, server down)."""


@dataclass(frozen=True)
class SignIn:
    """Who signed in, and the trial as it stood at that moment."""

    actor: Actor
    trial: TrialInfo


@contextmanager
def _driver_errors(label: str) -> Iterator[None]:
    """Turn a driver's connection failure into a one-line message instead of a traceback."""
    from sqlalchemy.exc import OperationalError

    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(f"cannot use the database {label}: {reason}") from None


@dataclass(frozen=True)
class TrialDatabase:
    """The trial database as the TUI sees it. Every method blocks: call it from a worker."""

    engine: Engine
    clock: Clock
    label: str

    def trial_info(self) -> TrialInfo:
        """Title, version, sites and settings of the trial (a read-only transaction)."""
        from trialkit.services.trial import trial_info
        from trialkit.store.db import read_only

        with _driver_errors(self.label), read_only(self.engine) as session:
            return trial_info(session)

    def sign_in(self, name: str, password: str) -> SignIn:
        """Check the password through the audited sign-in service (failures count toward
        lockout) and read the trial in the same transaction."""
        from trialkit.services.auth import login
        from trialkit.services.trial import trial_info
        from trialkit.store.db import transaction

        with _driver_errors(self.label), transaction(self.engine) as session:
            actor = login(session, name, password, clock=self.clock)
            return SignIn(actor=actor, trial=trial_info(session))
