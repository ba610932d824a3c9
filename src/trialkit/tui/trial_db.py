"""The service calls the TUI makes, as plain Python run inside thread workers.

No Textual here. Services and SQLAlchemy are imported inside each call so that importing
the TUI stays light and the first screen shows before any database work."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from trialkit.domain.errors import TrialkitError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from trialkit.domain.clock import Clock
    from trialkit.domain.protocol import Protocol
    from trialkit.services.actor import Actor
    from trialkit.services.allocation import SealResult, StratumUse
    from trialkit.services.enrolment import ParticipantView, Randomization
    from trialkit.services.trial import TrialInfo


class DatabaseUnavailable(TrialkitError):
    """The database did not answer (network, file lock, server down)."""


@dataclass(frozen=True)
class SignIn:
    """Who signed in, and the trial as it stood at that moment."""

    actor: Actor
    trial: TrialInfo


@dataclass(frozen=True)
class ScreeningEntry:
    """What the screening form collected, as the screening service takes it."""

    site: str
    age: int
    sex: str
    weight_kg: float
    factors: Mapping[str, str]
    answers: Mapping[str, str]


@contextmanager
def _driver_errors(label: str) -> Iterator[None]:
    """Turn a driver's failure into a one-line message instead of a traceback."""
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(f"cannot use the database {label}: {reason}") from None


class TrialDatabase:
    """The trial database as the TUI sees it. Every method blocks: call it from a worker.

    ``engine`` is an open engine, or a function that opens one: then the first call (in a
    worker, after the sign-in screen has painted) opens it, once; a failure to open is
    raised as the user's message and the next call tries again."""

    def __init__(
        self, *, engine: Engine | Callable[[], Engine], clock: Clock, label: str
    ) -> None:
        self.clock = clock
        self.label = label
        self._engine: Engine | None = None
        self._open: Callable[[], Engine] | None = None
        if callable(engine):
            self._open = engine
        else:
            self._engine = engine
        self._opening = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The engine, opened on first use."""
        with self._opening:
            if self._engine is None:
                assert self._open is not None
                self._engine = self._open()
            return self._engine

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

    def protocol(self) -> Protocol:
        """The protocol stored with the trial (criteria, factors, consent form versions)."""
        from trialkit.services.trial import stored_protocol
        from trialkit.store.db import read_only

        with _driver_errors(self.label), read_only(self.engine) as session:
            return stored_protocol(session)

    # --- enrolment (coordinators) ------------------------------------------------------

    def participants(
        self, actor: Actor, *, site: str | None, status: str | None, search: str | None
    ) -> list[ParticipantView]:
        """The participants this user may see (a coordinator: their own sites), filtered."""
        from trialkit.services.enrolment import list_participants
        from trialkit.store.db import read_only

        with _driver_errors(self.label), read_only(self.engine) as session:
            return list_participants(session, actor, site=site, status=status, search=search)

    def screen(self, actor: Actor, entry: ScreeningEntry) -> ParticipantView:
        """Record a screening; the answer says the new id and whether they are eligible."""
        from trialkit.services.enrolment import screen
        from trialkit.store.db import transaction

        with _driver_errors(self.label), transaction(self.engine) as session:
            return screen(
                session, actor, site=entry.site, age=entry.age, sex=entry.sex,
                weight_kg=entry.weight_kg, factors=entry.factors, answers=entry.answers,
                clock=self.clock,
            )

    def consent(self, actor: Actor, pid: str, *, on: date, form_version: str) -> ParticipantView:
        """Record informed consent."""
        from trialkit.services.enrolment import consent
        from trialkit.store.db import transaction

        with _driver_errors(self.label), transaction(self.engine) as session:
            return consent(session, actor, pid, on=on, form_version=form_version, clock=self.clock)

    def randomize(self, actor: Actor, pid: str) -> Randomization:
        """Claim the next sealed envelope: a randomization number and label code, no arm."""
        from trialkit.services.enrolment import randomize
        from trialkit.store.db import transaction

        with _driver_errors(self.label), transaction(self.engine) as session:
            return randomize(session, actor, pid, clock=self.clock)

    def withdraw(self, actor: Actor, pid: str, *, reason: str) -> ParticipantView:
        """Withdraw a participant, keeping what was recorded."""
        from trialkit.services.enrolment import withdraw
        from trialkit.store.db import transaction

        with _driver_errors(self.label), transaction(self.engine) as session:
            return withdraw(session, actor, pid, reason=reason, clock=self.clock)

    # --- allocation lists (admin) ------------------------------------------------------

    def stratum_usage(self, actor: Actor) -> list[StratumUse]:
        """Sealed, used and left envelopes per stratum (never sizes or arms)."""
        from trialkit.services.allocation import stratum_usage
        from trialkit.store.db import read_only

        with _driver_errors(self.label), read_only(self.engine) as session:
            return stratum_usage(session, actor)

    def seal_lists(
        self,
        actor: Actor,
        *,
        per_stratum: int,
        block_sizes: Sequence[int] | None,
        progress: Callable[[int, int], None],
    ) -> SealResult:
        """Generate and seal a list per stratum; ``progress(done, total)`` after each."""
        from trialkit.services.allocation import seal_lists
        from trialkit.store.db import transaction

        with _driver_errors(self.label), transaction(self.engine) as session:
            return seal_lists(
                session, actor, per_stratum=per_stratum, block_sizes=block_sizes,
                clock=self.clock, progress=progress,
            )

    def extend_list(self, actor: Actor, *, stratum: str, count: int) -> SealResult:
        """Append envelopes to one stratum (block sizes from the protocol)."""
        from trialkit.services.allocation import extend_list
        from trialkit.store.db import transaction

        with _driver_errors(self.label), transaction(self.engine) as session:
            return extend_list(
                session, actor, stratum=stratum, count=count, block_sizes=None, clock=self.clock
            )
