"""The trial's title and whether it is a training trial, read from a SQLite file with the
standard library alone. The sign-in screen shows them at once, while SQLAlchemy (about a
third of a second to import on a small machine) loads for the full read that follows;
that read, with its schema check, stays the one that counts."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlmodel import Session

HEADING = "SELECT trial_code, title, training FROM trial WHERE id = 1"


@dataclass(frozen=True)
class TrialHeading:
    """What the sign-in screen shows before the database is fully open."""

    trial_code: str
    title: str
    training: bool


def read_heading(path: Path) -> TrialHeading | None:
    """The heading of the trial in the SQLite file ``path``, opened read-only; None if the
    file holds no trial or cannot be read this way at once (the full read then says why).
    Never waits for a lock: the sign-in screen reads it before its first frame."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0)
    except (sqlite3.Error, ValueError):
        return None
    try:
        row = conn.execute(HEADING).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return heading_from(row)


def heading_in(session: Session) -> TrialHeading | None:
    """The same heading, by the same light query in an open session (any backend): no
    models, no protocol parse."""
    from sqlalchemy import text

    row = session.connection().execute(text(HEADING)).first()
    return heading_from(None if row is None else tuple(row))


def heading_from(row: tuple[object, ...] | None) -> TrialHeading | None:
    """The heading in a row of the heading query, or None if there is none."""
    if row is None or not isinstance(row[0], str) or not isinstance(row[1], str):
        return None
    return TrialHeading(row[0], row[1], bool(row[2]))
