"""Every user action defined once: the same ``Command`` makes its key binding (with an id,
so a keymap can rebind it), its footer entry and its command-palette entry.

The palette offers exactly the commands whose bindings are active on the screen it was
opened from, so a screen that adds a binding built from a ``Command`` gets a palette
entry for free, and a disabled action (say, Lock screen while locked) offers none."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class Command:
    """One user action: its palette title and help, its key and the action it runs."""

    id: str
    title: str
    help: str
    key: str
    action: str
    priority: bool = False

    def binding(self) -> Binding:
        """The key binding for this command, shown in the footer."""
        return Binding(
            self.key, self.action, self.title, tooltip=self.help, priority=self.priority,
            id=self.id,
        )


QUIT = Command(
    "quit", "Quit", "Close trialkit and return to the shell", "ctrl+q", "quit", priority=True
)
LOCK_SCREEN = Command(
    "lock-screen", "Lock screen", "Hide everything until your password is entered again",
    "ctrl+l", "lock_screen", priority=True,
)
SIGN_OUT = Command(
    "sign-out", "Sign out", "End your session and return to the sign-in screen",
    "ctrl+o", "sign_out", priority=True,
)
REFRESH = Command(
    "refresh", "Refresh", "Read the trial details again from the database", "f5", "refresh"
)

APP_COMMANDS: tuple[Command, ...] = (QUIT, LOCK_SCREEN, SIGN_OUT)
ALL_COMMANDS: dict[str, Command] = {c.id: c for c in (*APP_COMMANDS, REFRESH)}


class TrialkitCommands(Provider):
    """Command-palette entries for the actions available on the current screen."""

    def _available(self) -> list[tuple[Command, Callable[[], Awaitable[bool]]]]:
        found: dict[str, tuple[Command, Callable[[], Awaitable[bool]]]] = {}
        for active in self.screen.active_bindings.values():
            command = ALL_COMMANDS.get(active.binding.id or "")
            if command is None or not active.enabled or command.id in found:
                continue
            found[command.id] = (command, partial(self.app.run_action, command.action, active.node))
        return sorted(found.values(), key=lambda pair: pair[0].title)

    async def discover(self) -> Hits:
        """All available commands, shown when the palette opens."""
        for command, run in self._available():
            yield DiscoveryHit(command.title, run, text=command.title, help=command.help)

    async def search(self, query: str) -> Hits:
        """The available commands whose title matches what was typed."""
        matcher = self.matcher(query)
        for command, run in self._available():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(command.title), run, text=command.title,
                    help=command.help,
                )
