"""A command's sign-in, as the CLI makes it before its use case runs: the trial's settings,
a stated training time checked, the password checked, and the sign-in recorded.

A command that only reads never takes the write lock for its sign-in: the password is
checked in a read transaction (:func:`check_password`) and the sign-in is recorded
afterwards (:class:`PendingSignIn`), first in the command's next write transaction, or in a
short write of its own before anything is shown. A sign-in that must change the account (a
refusal, failures to forget, a second-factor code to spend) is made and recorded at once
(:func:`sign_in`).

Services are imported inside each call: ``trialkit --help`` loads none of this."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from trialkit.application.unit_of_work import (
    read_transaction,
    with_first_write,
    write_transaction,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlmodel import Session

    from trialkit.domain.clock import Clock
    from trialkit.services.actor import Actor
    from trialkit.services.administration.trial import TrialInfo


def read_trial_info(engine: Engine) -> TrialInfo:
    """Title, version, sites and settings of the trial (a read transaction)."""
    from trialkit.services.administration.trial import trial_info

    with read_transaction(engine) as session:
        return trial_info(session)


def check_stated_time(engine: Engine, at: datetime) -> None:
    """Refuse a training trial's stated time earlier than its last audit event."""
    from trialkit.services.administration.trial import check_stated_time as check

    with read_transaction(engine) as session:
        check(session, at)


def sign_in(engine: Engine, name: str, password: str, code: str | None, *,
            clock: Clock) -> Actor:
    """Sign ``name`` in (the audited sign-in; failures slow further attempts)."""
    from trialkit.services.administration.sign_in import login

    with write_transaction(engine) as session:
        return login(session, name, password, clock=clock, code=code)


def check_password(engine: Engine, name: str, password: str) -> Actor | None:
    """The actor when the password is right and recording the sign-in would change nothing
    but the trail (checked in a read transaction, nothing written); None when
    :func:`sign_in` must decide and record it."""
    from trialkit.services.administration.sign_in import check_sign_in

    with read_transaction(engine) as session:
        return check_sign_in(session, name, password)


class PendingSignIn:
    """A reader's sign-in, checked and not recorded yet. :meth:`bind` gives the engine whose
    next write transaction records it first (a refusal recorded after a read goes through
    such a write too); :meth:`record` records it in a write of its own. Recorded once."""

    def __init__(self, actor: Actor, *, clock: Clock, on_wait: Callable[[], None]) -> None:
        self.actor = actor
        self.clock = clock
        self.on_wait = on_wait
        self.recorded = False

    def bind(self, engine: Engine) -> Engine:
        """``engine`` whose next write records this sign-in first (unless it is recorded)."""
        if self.recorded:
            return engine
        return with_first_write(engine, self._record_in, self.on_wait)

    def record(self, engine: Engine) -> None:
        """Record the sign-in now, in a short write, unless a write has recorded it."""
        if not self.recorded:
            with write_transaction(self.bind(engine)):
                pass

    def _record_in(self, session: Session) -> None:
        if self.recorded:
            return
        from trialkit.services.administration.sign_in import record_sign_in

        self.recorded = True
        record_sign_in(session, self.actor, clock=self.clock)
