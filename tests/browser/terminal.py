"""What the browser's terminal shows, read as a person reads it: every frame the app's
WebSocket brings to the page is fed to a terminal emulator of its own (pyte), sized as
the page asks the app to be. The tests wait for words on that screen before the next key,
never for a fixed time, so they hold on a loaded machine."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pyte
from playwright.sync_api import Page, WebSocket

NAMED = {"Enter", "Escape", "Tab", "Backspace", "ArrowDown", "ArrowUp", "ArrowLeft",
         "ArrowRight", "Space"}


class Terminal:
    """The screen of the app in ``page`` (attach before the app page loads)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.screen = pyte.Screen(80, 24)
        self.stream = pyte.ByteStream(self.screen)
        self.sockets = 0
        page.on("websocket", self._attach)

    def _attach(self, ws: WebSocket) -> None:
        parts = urlsplit(ws.url)
        if not parts.path.endswith("/ws"):
            return
        self.sockets += 1
        query = parse_qs(parts.query)
        if "width" in query and "height" in query:
            self.screen.resize(int(query["height"][0]), int(query["width"][0]))
        ws.on("framereceived", self._received)
        ws.on("framesent", self._sent)

    def _received(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            self.stream.feed(payload)

    def _sent(self, payload: str | bytes) -> None:
        if isinstance(payload, str) and payload.startswith('["resize"'):
            size = json.loads(payload)[1]
            self.screen.resize(int(size["height"]), int(size["width"]))

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for(self, *words: str, timeout: float = 90.0) -> str:
        """Wait until every one of ``words`` is on the screen; return the screen."""
        end = time.monotonic() + timeout
        while True:
            shown = self.text()
            if all(w in shown for w in words):
                return shown
            if time.monotonic() > end:
                raise AssertionError(f"not on the screen after {timeout} s: {words}\n{shown}")
            self.page.wait_for_timeout(100)  # lets Playwright deliver the frames meanwhile

    def wait_until_gone(self, word: str, timeout: float = 90.0) -> str:
        end = time.monotonic() + timeout
        while word in (shown := self.text()):
            if time.monotonic() > end:
                raise AssertionError(f"still on the screen after {timeout} s: {word}\n{shown}")
            self.page.wait_for_timeout(100)
        return shown

    def press(self, *keys: str) -> None:
        """Keys into the terminal: single characters and words are typed, names such as
        Enter, Escape, Tab, ArrowDown or Control+s are pressed."""
        self.page.focus(".xterm-helper-textarea")
        for key in keys:
            if key in NAMED or "+" in key:
                self.page.keyboard.press(key)
            else:
                self.page.keyboard.type(key)
