"""What every command needs: the database, the clock, who is acting, and how to print.

Heavy modules (SQLAlchemy, cryptography, Textual) are imported here lazily so that
``trialkit --help`` starts as fast as Typer itself."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from trialkit.domain.errors import InvalidInput, Refused

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Engine

    from trialkit.application.signing_in import PendingSignIn
    from trialkit.application.trial_database import TrialDatabase
    from trialkit.domain.clock import Clock
    from trialkit.services.actor import Actor
    from trialkit.services.administration.trial import TrialInfo

DEFAULT_DB = "trialkit.db"


def env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def ask_secret(prompt: str, env_name: str) -> str:
    """A secret from the environment, or typed at a prompt that does not echo."""
    value = os.environ.get(env_name)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise InvalidInput(f"no password given: set {env_name} or run in a terminal")
    return getpass.getpass(prompt)


def ask_code(prompt: str, env_name: str) -> str:
    """A one-time code from the environment, or typed at a prompt."""
    value = os.environ.get(env_name)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise InvalidInput(f"no code given: set {env_name} or run in a terminal")
    return input(prompt)


def ask_new_password(prompt: str = "New password: ") -> str:
    """A new password from TRIALKIT_NEW_PASSWORD, or typed twice at a prompt."""
    value = os.environ.get("TRIALKIT_NEW_PASSWORD")
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise InvalidInput("no new password given: set TRIALKIT_NEW_PASSWORD or run in a terminal")
    first = getpass.getpass(prompt)
    if getpass.getpass("Same password again: ") != first:
        raise InvalidInput("the two passwords differ; nothing was changed")
    return first


def confirm_irreversible(question: str, *, yes: bool, what: str) -> None:
    """The one rule for commands that cannot be undone (lock, emergency unblinding, a schema
    upgrade): at a terminal they ask ``question`` (default no); without a terminal they
    need ``--yes``. "n", an empty answer or the end of input refuses (exit 1) — called
    before the command signs anyone in or writes anything, so nothing is written."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise Refused(
            f"{what} cannot be undone and there is no terminal to confirm it at: "
            "give --yes to confirm; nothing was changed"
        )
    try:
        confirmed = typer.confirm(question, default=False)
    except typer.Abort:  # end of input, Ctrl-C
        confirmed = False
    if not confirmed:
        raise Refused(f"not confirmed: {what} was not done; nothing was changed")


# The option every irreversible command takes.
YES_HELP = "Confirm without being asked (needed without a terminal): this cannot be undone"


@dataclass
class Cli:
    """Options shared by every command (``--db``, ``--user``, ``--json``), and the command's
    sign-in. Commands call the application layer (:meth:`use_cases`), which does the
    database work; none is done here."""

    db: str = DEFAULT_DB
    user: str | None = None
    json: bool = False
    training: bool = False
    copy_read_only: bool = False  # audit verify --read-only
    _engine: Engine | None = field(default=None, repr=False)
    _clock: Clock | None = field(default=None, repr=False)
    _info: TrialInfo | None = field(default=None, repr=False)
    _pending: PendingSignIn | None = field(default=None, repr=False)  # see sign_in_to_read()

    def engine(self, *, must_exist: bool = True, check_schema: bool = True) -> Engine:
        """The trial database, checked to be reachable and of this trialkit's schema."""
        if self._engine is None:
            from trialkit.application.opening import open_engine

            self._engine = open_engine(self.db, must_exist=must_exist,
                                       read_only=self.copy_read_only, check_schema=check_schema)
        if self._pending is not None:  # every write records the reader's sign-in first
            return self._pending.bind(self._engine)
        return self._engine

    def use_cases(self) -> TrialDatabase:
        """The trial's use cases (the application layer) over this database, on this
        command's clock (resolved when first read: a command that never asks the time never
        checks TRIALKIT_CLOCK); a reader's sign-in not recorded yet goes first in their
        writes."""
        from trialkit.application.opening import public_url
        from trialkit.application.trial_database import TrialDatabase

        clock = self._clock if self._clock is not None else CommandClock(self)
        return TrialDatabase(engine=self.engine(), clock=clock, label=public_url(self.db))

    def trial(self) -> TrialInfo:
        if self._info is None:
            from trialkit.application.signing_in import read_trial_info

            self._info = read_trial_info(self.engine())
            self.training = self._info.training
        return self._info

    def clock(self) -> Clock:
        """Real time, or TRIALKIT_CLOCK in a training trial (a live trial refuses it, and
        a training trial refuses a time before its last audit event)."""
        if self._clock is None:
            clock = resolve_clock(training=self.trial().training)
            if env("TRIALKIT_CLOCK") is not None:
                from trialkit.application.signing_in import check_stated_time

                check_stated_time(self.engine(), clock.now())
            self._clock = clock
        return self._clock

    def actor(self) -> Actor:
        """Sign the acting user in (name from --user/TRIALKIT_USER, password from
        TRIALKIT_PASSWORD or a prompt). Every sign-in is audited."""
        name, password = self._credentials()
        return self.sign_in(name, password, self.second_factor_code())

    def _credentials(self) -> tuple[str, str]:
        name = self.user or env("TRIALKIT_USER")
        if name is None:
            if not sys.stdin.isatty():
                raise InvalidInput("who is acting? give --user NAME or set TRIALKIT_USER")
            name = input("User: ").strip()
        return name, ask_secret(f"Password for {name}: ", "TRIALKIT_PASSWORD")

    def sign_in(self, name: str, password: str, code: str | None) -> Actor:
        """Sign ``name`` in with the password (and a second-factor code) already read."""
        from trialkit.application.signing_in import sign_in

        clock = self.clock()
        return sign_in(self.engine(), name, password, code, clock=clock)

    def second_factor_code(self) -> str | None:
        """A custodian's code from their authenticator app: TRIALKIT_TOTP, or asked of
        everyone at a terminal when the protocol uses a second factor (so the question
        tells nobody who has one)."""
        code = env("TRIALKIT_TOTP")
        if code is None and self.trial().second_factor and sys.stdin.isatty():
            code = input("Code from your authenticator app (custodians; Enter if none): ")
        return code

    def sign_in_to_read(self) -> Actor:
        """Sign in for a command that only reads, without taking the write lock: the password
        is checked without writing and the sign-in is recorded afterwards, first in
        the command's next write or in a short write of its own before anything is shown
        (:meth:`as_reader` and :meth:`emit` record it). A sign-in that must change the account
        (a refusal, failures to forget, a second-factor code to spend) is made and recorded
        at once, as :meth:`actor` makes it."""
        from trialkit.application.signing_in import PendingSignIn, check_password

        name, password = self._credentials()
        code = self.second_factor_code()  # asked of everyone alike, as at any sign-in
        clock = self.clock()  # a stated time is checked before anything else
        actor = check_password(self.engine(), name, password)
        if actor is None:
            return self.sign_in(name, password, code)
        self._pending = PendingSignIn(actor, clock=clock, on_wait=self._waiting)
        return actor

    @contextmanager
    def as_reader(self) -> Iterator[tuple[Actor, TrialDatabase]]:
        """Sign in (:meth:`sign_in_to_read`) for use cases that only read and never wait for a
        writer; the sign-in is recorded when the reading ends, before the command shows
        anything (a refusal raised while reading is recorded after it, by the use case)."""
        actor = self.sign_in_to_read()
        try:
            yield actor, self.use_cases()
        finally:
            self.record_sign_in()

    def record_sign_in(self) -> None:
        """Record a reader's sign-in now if no write has recorded it yet."""
        if self._pending is not None and self._engine is not None:
            self._pending.record(self._engine)

    def _waiting(self) -> None:
        print("Waiting for another change to the trial to finish, to record your sign-in...",
              file=sys.stderr, flush=True)

    def emit(self, doc: Any, human: Callable[[], str] | str) -> None:
        """One JSON document with --json, else human text (TRAINING marked first). A
        reader's sign-in is recorded before anything is shown."""
        self.record_sign_in()
        if self.json:
            if isinstance(doc, dict) and self.training:
                doc = {"training": True} | doc
            typer.echo(json.dumps(doc, indent=2, default=str, ensure_ascii=False))
            return
        if self.training:
            typer.echo("TRAINING — not for clinical use")
        typer.echo(human if isinstance(human, str) else human())


@dataclass(frozen=True)
class CommandClock:
    """The command's clock (:meth:`Cli.clock`), resolved when a use case first asks the
    time."""

    command: Cli

    def now(self) -> datetime:
        return self.command.clock().now()


def resolve_clock(*, training: bool) -> Clock:
    from trialkit.domain.clock import SystemClock, parse_clock

    stated = env("TRIALKIT_CLOCK")
    if stated is None:
        return SystemClock()
    if not training:
        raise Refused(
            "TRIALKIT_CLOCK is set, but this is a live trial: only training trials take a "
            "stated time; unset it"
        )
    return parse_clock(stated)


def cli(ctx: typer.Context) -> Cli:
    obj = ctx.find_root().obj
    assert isinstance(obj, Cli)
    return obj
