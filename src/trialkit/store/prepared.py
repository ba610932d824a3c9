"""Core statements compiled once and run on the bare driver connection.

For the one path whose time is mostly SQLAlchemy's own bookkeeping while the write lock is
held (randomizing: a few short statements per call, see ``services/randomization.py``).
The statements are still written with SQLAlchemy Core against the models' tables, and
values are converted by each column type's own bind and result processors (the public
``TypeEngine`` API), so what is stored and read is exactly what the ORM stores and reads.
Only the per-call machinery (sessions, the compiled cache, events, result objects) is
skipped. Transactions are the caller's: :func:`raw_transaction` takes the same write lock
as every other write transaction (``store.db``)."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from trialkit.store.db import begin_read, begin_write


class Prepared:
    """One statement compiled for one dialect: run it with :meth:`run`, read its rows (as
    named tuples of processed values) with :meth:`fetch_first` and :meth:`fetch_all`."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled: Any = statement.compile(dialect=dialect)  # an SQLCompiler
        self.sql = compiled.string
        self._defaults: dict[str, Any] = dict(compiled.construct_params(_check=False))
        types = {name: bind.type for bind, name in compiled.bind_names.items()}
        self._bind = {
            name: t.dialect_impl(dialect).bind_processor(dialect) for name, t in types.items()
        }
        self._order = list(compiled.positiontup or []) if dialect.positional else None
        # a SELECT's columns, or what an INSERT/UPDATE ... RETURNING returns (else none)
        columns = list(getattr(statement, "exported_columns", None) or [])
        self._dialect = dialect
        # psycopg prepares a statement on the server after five runs by default; these run
        # on every call of a hot path, so prepare them on the first (same round trip).
        self._execute_options = {"prepare": True} if dialect.driver == "psycopg" else {}
        self._columns = columns
        self._result: list[Any] | None = None  # from the driver's column types, on first read
        self.Row = namedtuple("Row", [c.key for c in columns]) if columns else None

    def params(self, values: Mapping[str, Any]) -> Any:
        merged = {**self._defaults, **values}
        for name, process in self._bind.items():
            if process is not None and merged.get(name) is not None:
                merged[name] = process(merged[name])
        if self._order is None:
            return merged
        return tuple(merged[name] for name in self._order)

    def run(self, cursor: Any, values: Mapping[str, Any]) -> Any:
        cursor.execute(self.sql, self.params(values), **self._execute_options)
        return cursor

    def _processors(self, description: Any) -> list[Any]:
        if self._result is None:
            d = self._dialect
            self._result = [
                c.type.dialect_impl(d).result_processor(d, column[1])
                for c, column in zip(self._columns, description, strict=True)
            ]
        return self._result

    def _rows(self, raws: list[Any], cursor: Any) -> list[Any]:
        assert self.Row is not None, "this statement returns no rows"
        if not raws:
            return []
        # psycopg builds ``description`` anew on each access: read it once, and only once
        # per statement (the driver's column types never change).
        processors = self._result or self._processors(cursor.description)
        return [
            self.Row(*(
                value if process is None or value is None else process(value)
                for value, process in zip(raw, processors, strict=True)
            ))
            for raw in raws
        ]

    def fetch_first(self, cursor: Any) -> Any:
        """The first row of this statement's last :meth:`run` on ``cursor``, or None."""
        raw = cursor.fetchone()
        return None if raw is None else self._rows([raw], cursor)[0]

    def fetch_all(self, cursor: Any) -> list[Any]:
        """Every row of this statement's last :meth:`run` on ``cursor``."""
        return self._rows(cursor.fetchall(), cursor)


class PreparedSet:
    """Statements compiled on first use, once per dialect (an engine's dialect is fixed):
    a statement one backend never runs is never compiled for it."""

    def __init__(self, **statements: ClauseElement) -> None:
        self._statements = statements
        self._compiled: dict[tuple[str, str, str], Prepared] = {}

    def get(self, dialect: Dialect, name: str) -> Prepared:
        key = (dialect.name, dialect.driver, name)
        prepared = self._compiled.get(key)
        if prepared is None:
            prepared = self._compiled[key] = Prepared(self._statements[name], dialect)
        return prepared


def _end(dbapi: Any, dialect_name: str, *, commit: bool) -> None:
    if dialect_name == "sqlite":  # the connection runs in autocommit mode (store.db)
        dbapi.execute("COMMIT" if commit else "ROLLBACK")
    elif commit:
        dbapi.commit()
    else:
        dbapi.rollback()


@contextmanager
def raw_transaction(engine: Engine, *, write: bool) -> Iterator[Any]:
    """A pooled driver connection in a transaction (make cursors with ``.cursor()``): a
    write transaction takes the write lock first and commits at the end; a read transaction
    rolls back. Any error rolls back."""
    name = engine.dialect.name
    conn = engine.raw_connection()
    try:
        dbapi: Any = conn.driver_connection
        # PostgreSQL: statements are pipelined (psycopg pipeline mode) and sent when a result
        # is read, so BEGIN, the write lock and the first query cost one round trip, and the
        # last writes and COMMIT another. The server still runs them one after the other:
        # the first query starts (and takes its snapshot) only once the lock is held.
        pipelined = dbapi.pipeline() if name == "postgresql" else nullcontext()
        with pipelined:
            if write:
                begin_write(dbapi, name)
            else:
                begin_read(dbapi, name)
            try:
                yield dbapi
            except BaseException:
                _end(dbapi, name, commit=False)
                raise
            _end(dbapi, name, commit=write)
    finally:
        conn.close()
