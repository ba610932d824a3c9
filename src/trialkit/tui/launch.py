"""Starting the TUI without paying for the database before the sign-in screen paints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trialkit.application.opening import plain_file
from trialkit.domain.clock import SystemClock
from trialkit.domain.errors import InvalidInput
from trialkit.tui.app import make_app
from trialkit.tui.wording import BROWSER_DB_LABEL

if TYPE_CHECKING:
    from sqlalchemy import Engine


def open_tui_lazily(db: str) -> None:
    """Run the TUI over ``db`` (a file path or URL). The sign-in screen paints first; its
    first worker glances at a SQLite file given by its path (title, TRAINING: the standard
    library's sqlite3, in milliseconds), then opens the database, checks the schema and
    reads the trial, which is what signing in waits for."""
    if "://" not in db and not Path(db).expanduser().exists():
        raise InvalidInput(
            f"no trialkit database at {Path(db).expanduser().resolve()} "
            "(create one with `trialkit init`)"
        )

    def open_database() -> Engine:
        from trialkit.application.opening import open_engine

        return open_engine(db)

    from trialkit.tui.browser_session import ticket_from_environment

    ticket = ticket_from_environment()

    def open_for_a_browser() -> Engine:
        """The same, but a browser user is not told the server's database URL or path."""
        from trialkit.application.opening import public_url
        from trialkit.domain.errors import TrialkitError
        from trialkit.tui.wording import without_location

        try:
            return open_database()
        except TrialkitError as exc:
            without_location(exc, public_url(db), BROWSER_DB_LABEL)
            raise

    make_app(open_database if ticket is None else open_for_a_browser, clock=SystemClock(),
             db_label=db, training=False, ticket=ticket, sqlite_file=plain_file(db)).run()
