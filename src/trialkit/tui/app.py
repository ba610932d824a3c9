"""The Textual app: who is signed in, the trial, the idle lock, and the app-wide commands.

``make_app`` is the one factory the CLI, the tests and ``trialkit serve`` use. Nothing here
touches the database before the sign-in screen is up: screens read the trial in workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Literal, TypeVar, overload

from textual import events, work
from textual.app import App
from textual.reactive import var
from textual.screen import Screen
from textual.widget import AwaitMount

from trialkit.application.opening import public_url
from trialkit.application.trial_database import SignIn, TrialDatabase
from trialkit.domain.roles import Role
from trialkit.domain.text import printable
from trialkit.tui.commands import APP_COMMANDS, LOCK_SCREEN, SIGN_OUT
from trialkit.tui.messages import LoginSucceeded, ServiceFailed, TrialHeadingRead, TrialLoaded
from trialkit.tui.screens.login import LoginScreen
from trialkit.tui.wording import ALL_SITES, BROWSER_DB_LABEL, NO_SITE, tui_message

if TYPE_CHECKING:
    import tempfile
    from pathlib import Path

    from sqlalchemy import Engine
    from textual.command import Provider
    from textual.notifications import SeverityLevel

    from trialkit.domain.clock import Clock
    from trialkit.services.actor import Actor
    from trialkit.services.administration.trial import TrialInfo
    from trialkit.tui.browser_session import Ticket

ResultT = TypeVar("ResultT")

# How often the idle check runs; the idle limit itself comes from the protocol.
IDLE_POLL_SECONDS = 1.0


def _commands_provider() -> type[Provider]:
    # Imported when the palette first opens, not at start-up.
    from trialkit.tui.commands import TrialkitCommands

    return TrialkitCommands


class TrialkitApp(App[None]):
    """trialkit's terminal UI. Sign-in first; home after; a lock screen when idle."""

    CSS_PATH = "trialkit.tcss"
    TITLE = "trialkit"
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {
        _commands_provider
    }
    BINDINGS = [command.binding() for command in APP_COMMANDS]

    training: var[bool] = var(False)
    """Whether the database holds a training trial (TRAINING on every screen)."""
    trial: var[TrialInfo | None] = var(None)
    """The trial as last read from the database."""
    actor: var[Actor | None] = var(None, bindings=True)
    """Who is signed in, or None on the sign-in screen."""
    locked: var[bool] = var(False, bindings=True)
    """Whether the lock screen is up."""

    def __init__(
        self,
        db: TrialDatabase,
        *,
        training: bool,
        idle_seconds: float | None = None,
        ticket: Ticket | None = None,
    ) -> None:
        super().__init__()
        self.db = db
        self.ticket = ticket
        self._browser_files: tempfile.TemporaryDirectory[str] | None = None
        self._idle_override = idle_seconds
        self._last_activity = time.monotonic()
        self._held_notes: list[str] = []
        self.set_reactive(TrialkitApp.training, training)

    # --- start-up and the header -------------------------------------------------------

    def on_mount(self) -> None:
        """Show the sign-in screen and start watching for idleness."""
        self._show_title()
        self.push_screen(LoginScreen(self.db))
        if self.ticket is not None:
            self.run_worker(self._open_browser_session, thread=True, exclusive=True)
        poll = IDLE_POLL_SECONDS
        if self._idle_override is not None:
            poll = min(poll, max(self._idle_override / 2, 0.05))
        self.set_interval(poll, self.lock_if_idle)

    def watch_training(self) -> None:
        """Keep TRAINING in the title."""
        self._show_title()

    def watch_trial(self) -> None:
        """Keep the trial code in the sub-title."""
        self._show_title()

    def _show_title(self) -> None:
        self.title = "trialkit — TRAINING" if self.training else "trialkit"
        if self.ticket is not None:
            # A browser user sees the trial and their sites, never the server's file
            # system or database URL.
            self.sub_title = self._browser_heading()
            return
        where = self.db.label
        self.sub_title = f"{self.trial.trial_code} · {where}" if self.trial else where

    def _browser_heading(self) -> str:
        if self.trial is None:
            return ""
        if self.actor is None:
            return self.trial.trial_code
        names = {s.code: s.name for s in self.trial.sites}
        scope = self.actor.scope
        if scope is None:
            where = ALL_SITES
        elif len(scope) == 1:
            [code] = scope
            where = f"{names.get(code, code)} ({code})"
        else:
            where = ", ".join(sorted(scope)) or NO_SITE
        return f"{self.trial.trial_code} · {where}"

    def on_trial_heading_read(self, message: TrialHeadingRead) -> None:
        """TRAINING from the first glance at the database, before the full read."""
        self.training = message.heading.training

    def on_trial_loaded(self, message: TrialLoaded) -> None:
        """Remember the trial a screen read."""
        self.trial = message.trial
        self.training = message.trial.training

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification shows its words as they are: what a service says may quote
        what someone typed, so it is neither read as markup nor allowed a control
        character."""
        super().notify(printable(message), title=printable(title), severity=severity,
                       timeout=timeout, markup=False)

    def on_service_failed(self, message: ServiceFailed) -> None:
        """A refused or failed database call: a notification, never a traceback."""
        self.notify(message.message, title="trialkit", severity="error", timeout=10)

    # --- signing in and out ------------------------------------------------------------

    async def on_login_succeeded(self, message: LoginSucceeded) -> None:
        """Signed in from the sign-in screen: go home."""
        # Screens after sign-in are imported when first needed, keeping start-up light.
        from trialkit.tui.screens.home import HomeScreen

        self._accept(message.signin)
        home = HomeScreen(self.db)
        await self.switch_screen(home)
        if message.signin.actor.role is Role.PHARMACIST:  # the pharmacist's home is the queue
            home.action_open_dispense_queue()
        if message.signin.enrol_second_factor:
            self._offer_second_factor(message.signin.actor)

    @work(thread=True, exclusive=True, group="second-factor")
    def _offer_second_factor(self, actor: Actor) -> None:
        """A custodian without the second factor the protocol asks for: show a new secret
        once and enrol it with the app's code."""
        from trialkit.domain.errors import TrialkitError
        from trialkit.tui.dialogs.second_factor import SecondFactorDialog

        try:
            offer = self.db.offer_second_factor(actor)
        except TrialkitError as exc:
            self.call_from_thread(self.notify, tui_message(exc), severity="error")
            return

        def enrol(answer: tuple[str, str] | None) -> None:
            if answer is not None:
                self._enrol_second_factor(actor, offer.secret, *answer)

        self.call_from_thread(self.push_screen, SecondFactorDialog(offer), enrol)

    @work(thread=True, exclusive=True, group="second-factor")
    def _enrol_second_factor(self, actor: Actor, secret: str, password: str,
                             code: str) -> None:
        from trialkit.domain.errors import TrialkitError

        try:
            self.db.enrol_second_factor(actor, password=password, secret=secret, code=code)
        except TrialkitError as exc:
            self.call_from_thread(
                self.notify, f"{tui_message(exc)} (you are asked again at your next sign-in)",
                severity="error")
            return
        self.call_from_thread(
            self.notify, "Second factor enrolled: from now on sign in with your password "
            "and the code your app shows.")

    def _open_browser_session(self) -> None:
        """Started by ``trialkit serve`` after its sign-in page: open signed in as that
        user, or end (the browser says the session ended) if the ticket is refused."""
        from trialkit.domain.errors import TrialkitError
        from trialkit.tui.browser_session import redeem

        assert self.ticket is not None
        try:
            user = redeem(self.ticket)
            signin = self.db.open_browser_session(user.name, user.signing_key)
        except TrialkitError as exc:
            self.call_from_thread(self.exit, message=exc.message)
            return
        self.post_message(LoginSucceeded(signin))

    # --- files for the user: on this disk at a terminal, downloads in a browser ----------

    def place(self, text: str) -> str:
        """Where a file the user names is written: as named, at a terminal; in a browser
        session, under that name in this session's own folder on the server, from where
        :meth:`hand_over` sends it to the browser."""
        if self.ticket is None:
            return text
        import tempfile
        from pathlib import Path

        if self._browser_files is None:
            self._browser_files = tempfile.TemporaryDirectory(prefix="trialkit-files-")
        name = Path(text.strip()).expanduser().name or "file"
        return str(Path(self._browser_files.name) / name)

    def hand_over(self, *paths: Path) -> None:
        """In a browser session, deliver written files to the browser as downloads
        (Textual's file delivery); at a terminal they are already where the user said."""
        if self.ticket is None:
            return
        import mimetypes

        for path in paths:
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            self.deliver_binary(path, save_filename=path.name, open_method="download",
                                mime_type=kind)

    def _accept(self, signin: SignIn) -> None:
        self.trial = signin.trial
        self.training = signin.trial.training
        self.actor = signin.actor
        if self.ticket is not None:  # a browser session's sub-title names the user's sites
            self._show_title()
        self.record_activity()

    async def action_sign_out(self) -> None:
        """Forget who is signed in and return to a fresh sign-in screen (a browser session
        ends instead: its sign-in page is the server's)."""
        if self.ticket is not None:
            self.exit()
            return
        self.actor = None
        self.locked = False
        self.clear_notifications()
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        await self.push_screen(LoginScreen(self.db))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Lock and sign out only make sense while someone is signed in."""
        if action == LOCK_SCREEN.action:
            return self.actor is not None and not self.locked
        if action == SIGN_OUT.action:
            return self.actor is not None
        return True

    # --- the idle lock -----------------------------------------------------------------

    @property
    def idle_seconds(self) -> float | None:
        """Idle time before the screen locks: the override given to ``make_app``, else the
        protocol's ``ui.idle_lock_minutes`` (None until the trial has been read)."""
        if self._idle_override is not None:
            return self._idle_override
        return None if self.trial is None else self.trial.idle_lock_minutes * 60.0

    @property
    def last_activity(self) -> float:
        """When the last key press or mouse event arrived (on the monotonic clock)."""
        return self._last_activity

    def record_activity(self) -> None:
        """Restart the idle count."""
        self._last_activity = time.monotonic()

    async def on_event(self, event: events.Event) -> None:
        """Any key or mouse event counts as activity."""
        if isinstance(event, events.InputEvent | events.Paste):
            self.record_activity()
        await super().on_event(event)

    def lock_if_idle(self, now: float | None = None) -> bool:
        """Lock the screen if someone is signed in and has been idle long enough.
        Returns whether it locked. ``now`` (monotonic seconds) lets tests skip the wait."""
        limit = self.idle_seconds
        if self.actor is None or self.locked or limit is None:
            return False
        # Compared as "the deadline has come", not as an elapsed difference: (t + 300) - t
        # can come out as 299.99999999999994 in floating point.
        if (time.monotonic() if now is None else now) < self._last_activity + limit:
            return False
        self.action_lock_screen()
        return True

    def action_lock_screen(self) -> None:
        """Hide everything behind the lock screen until the password is given again."""
        from trialkit.tui.screens.lock import LockScreen

        if self.actor is None or self.locked:
            return
        self.locked = True
        # The signing key is dropped with the screen: unlocking signs in again, which
        # unlocks it afresh with the password.
        self.actor = self.actor.without_key()
        self.clear_notifications()
        second_factor = self.trial is not None and self.trial.second_factor
        self.push_screen(LockScreen(self.db, self.actor, second_factor=second_factor),
                         callback=self._unlocked)

    def _unlocked(self, signin: SignIn | None) -> None:
        self.locked = False
        if signin is not None:
            self._accept(signin)
        for note in self._held_notes:
            self.notify(note, title="trialkit", severity="warning", timeout=15)
        self._held_notes.clear()

    def discard_while_locked(self, what: str) -> bool:
        """Whether a result that arrived from a worker must be thrown away because the
        screen is locked (an opened envelope, an unblinding): it is never shown on a locked
        terminal, and ``what`` is said once the owner has unlocked."""
        if not self.locked:
            return False
        self._held_notes.append(what)
        return True

    # The lock screen stays on top while locked: whatever a worker that finished meanwhile
    # would push (an UNBLINDED preparation screen, a dialog) is dropped, never rendered.
    if TYPE_CHECKING:

        @overload
        def push_screen(
            self,
            screen: Screen[ResultT] | str,
            callback: Callable[[ResultT | None], object] | None = None,
            wait_for_dismiss: Literal[False] = False,
            *,
            mode: str | None = None,
        ) -> AwaitMount: ...

        @overload
        def push_screen(
            self,
            screen: Screen[ResultT] | str,
            callback: Callable[[ResultT | None], object] | None = None,
            wait_for_dismiss: Literal[True] = True,
            *,
            mode: str | None = None,
        ) -> asyncio.Future[ResultT]: ...

    def push_screen(
        self,
        screen: Screen[ResultT] | str,
        callback: Callable[[ResultT | None], object] | None = None,
        wait_for_dismiss: bool = False,
        *,
        mode: str | None = None,
    ) -> AwaitMount | asyncio.Future[ResultT]:
        """Push a screen, except over the lock screen (see above). The command palette may
        open there: while locked it offers only Quit and Sign out."""
        from textual.command import CommandPalette

        from trialkit.tui.screens.lock import LockScreen

        if self.locked and not isinstance(screen, LockScreen | CommandPalette):
            self.log.warning(f"not shown while the screen is locked: {screen!r}")
            if wait_for_dismiss:
                refused: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
                refused.cancel()
                return refused
            return AwaitMount(self.screen, [])
        return super().push_screen(screen, callback, wait_for_dismiss, mode=mode)  # type: ignore[call-overload,no-any-return]


def make_app(
    engine: Engine | Callable[[], Engine],
    *,
    clock: Clock,
    db_label: str,
    training: bool,
    idle_seconds: float | None = None,
    ticket: Ticket | None = None,
    sqlite_file: Path | None = None,
) -> TrialkitApp:
    """The app over this database. ``engine`` may be a function that opens it, called in
    the first worker, so the sign-in screen paints before any database work. ``training``
    marks the screens before the trial has been read; ``idle_seconds`` overrides the
    protocol's idle-lock time (tests); ``sqlite_file``, the SQLite file the database is (when
    given by its path), lets the sign-in screen show the trial's title before the engine
    opens. The header names the database without its password."""
    # A browser session's messages never name the server's file or database URL.
    label = BROWSER_DB_LABEL if ticket is not None else public_url(db_label)
    db = TrialDatabase(engine=engine, clock=clock, label=label,
                       sqlite_file=sqlite_file)
    return TrialkitApp(db, training=training, idle_seconds=idle_seconds, ticket=ticket)
