"""The unit of work every use case runs in: a read or a write transaction on the trial's
database, with the store's write-lock semantics (SQLite ``BEGIN IMMEDIATE``, PostgreSQL's
transaction-level advisory lock, taken when a write transaction begins) and its rules for
refusals (an audited refusal commits only its record). A driver failure becomes one line
(:class:`DatabaseUnavailable`) instead of a traceback."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from trialkit.domain.errors import TrialkitError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlmodel import Session


class DatabaseUnavailable(TrialkitError):
    """The database did not answer (network, file lock, server down)."""


class UnitOfWork:
    """Transactions on one trial database. ``engine`` is an open engine, or a function that
    opens one: then the first transaction opens it, once (a failure to open is raised as
    the user's message and the next call tries again). ``label`` names the database in
    messages (never with a password)."""

    def __init__(self, engine: Engine | Callable[[], Engine], *, label: str) -> None:
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

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: it holds the write lock from its start, commits on success
        and rolls back on any error (an audited refusal keeps its record)."""
        from trialkit.store.db import transaction

        with self.driver_errors(), transaction(self.engine) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read transaction: it never takes the write lock nor waits for a writer."""
        from trialkit.store.db import read_only

        with self.driver_errors(), read_only(self.engine) as session:
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read transaction that sees one state of the database from its first read to
        its end, without the write lock (``store.db.snapshot``)."""
        from trialkit.store.db import snapshot

        with self.driver_errors(), snapshot(self.engine) as session:
            yield session

    @contextmanager
    def driver_errors(self) -> Iterator[None]:
        """Turn a driver's failure into a one-line message instead of a traceback."""
        from sqlalchemy.exc import DBAPIError

        try:
            yield
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise DatabaseUnavailable(
                f"cannot use the database {self.label}: {reason}") from None


# The transactions themselves on an engine, for a command's sign-in
# (:mod:`trialkit.application.signing_in`): the same ones UnitOfWork opens, without the
# driver-error wording the CLI leaves to its entry point.

def write_transaction(engine: Engine) -> AbstractContextManager[Session]:
    """A write transaction holding the write lock from its start (``store.db.transaction``)."""
    from trialkit.store.db import transaction

    return transaction(engine)


def read_transaction(engine: Engine) -> AbstractContextManager[Session]:
    """A read transaction that takes no write lock (``store.db.read_only``)."""
    from trialkit.store.db import read_only

    return read_only(engine)


def with_first_write(engine: Engine, first: Callable[[Session], None],
                     on_wait: Callable[[], None]) -> Engine:
    """``engine`` whose next write transaction runs ``first`` before anything else (a
    reader's sign-in recorded), calling ``on_wait`` if it has to wait for the write lock."""
    from trialkit.store.db import FIRST, ON_WAIT

    return engine.execution_options(**{FIRST: first, ON_WAIT: on_wait})
