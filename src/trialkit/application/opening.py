"""Naming and opening a trial database, as the faces need it: the name a user may see, the
heading the sign-in screen paints before the database opens, and an engine checked to be
reachable and of this trialkit's schema. Light on import (SQLAlchemy loads when used)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trialkit.store.heading import TrialHeading, read_heading
from trialkit.store.urls import plain_file, public_url

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["TrialHeading", "open_engine", "plain_file", "public_url", "read_heading",
           "sqlite_file"]


def open_engine(
    db: str, *, must_exist: bool = True, read_only: bool = False, check_schema: bool = True
) -> Engine:
    """The trial database ``db`` (a URL or a file path), checked to be reachable and, unless
    ``check_schema`` is False (a schema upgrade), to be of this trialkit's schema."""
    from trialkit.store.db import check_reachable, make_engine
    from trialkit.store.schema import check_current

    engine = make_engine(db, must_exist=must_exist, read_only=read_only)
    check_reachable(engine)
    if check_schema:
        check_current(engine)
    return engine


def sqlite_file(db: str) -> Path | None:
    """The SQLite file behind ``db`` (a URL or a path), or None for any other database. A
    plain path is answered without importing SQLAlchemy."""
    path = plain_file(db)
    if path is not None:
        return path
    from trialkit.store.db import normalize_url, sqlite_path

    return sqlite_path(normalize_url(db))
