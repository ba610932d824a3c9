"""How a database is named on screen, in output and on a command line: never with its
password. Light to import (SQLAlchemy only for a URL), so the TUI can label its header
before the database opens."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


def public_url(db: str | URL) -> str:
    """``db`` as a user may see it: a file path as given, a URL without its password (neither
    in the user part nor as a ``password=`` query option), e.g. ``postgresql://USER@HOST/DB``."""
    if isinstance(db, str) and "://" not in db:
        return db
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db)
    except (ArgumentError, ValueError):
        return "(a database URL that cannot be read)"
    query = {k: v for k, v in url.query.items() if k.lower() != "password"}
    bare = URL.create(url.drivername, url.username, None, url.host, url.port, url.database, query)
    return bare.render_as_string(hide_password=False)


def plain_file(db: str) -> Path | None:
    """The SQLite file ``db`` names when it is a plain path (``trial.db``, ``~/t.db``),
    absolute; None for a URL or a SQLite URI filename (``file:…``). Without SQLAlchemy, so
    the TUI can glance at the file before the engine opens."""
    db = db.strip()
    if not db or db.startswith("file:") or "://" in db:
        return None
    return Path(db).expanduser().resolve()
