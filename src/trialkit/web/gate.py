"""``trialkit serve``: the terminal UI in a browser, fit for a hospital network.

textual-serve runs one app process per browser WebSocket. This gate wraps its public parts
(``AppService``, ``DownloadManager`` and its static files) in an aiohttp application that
lets nothing start before its user signed in:

- a sign-in page served by the gate itself, checking the name and password through the
  same audited, throttled service as the TUI (``services.administration.sign_in.login``);
- a signed, expiring session cookie (HttpOnly, SameSite=Strict, Secure over https);
- the Host header and the Origin of every request with a body and of every WebSocket must
  be the public URL's (no cross-site page, no DNS rebinding);
- a cap on app processes, per user and in all; a session idle for the protocol's idle-lock
  time ends (its processes too);
- each app process opens signed in as its user: it gets a single-use ticket in its
  environment (never a password, never on a command line) and redeems it over a socket in
  a directory only this user can read;
- every URL it writes is the public URL's, so it works behind a proxy on a path prefix,
  with TLS (wss://); fonts and scripts are served from here, nothing from the internet."""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import hmac
import html
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager

from trialkit.domain.errors import InvalidInput, TrialkitError
from trialkit.domain.text import printable
from trialkit.tui.browser_session import SOCKET_ENV, TICKET_ENV

COOKIE = "trialkit_session"
TICKET_SECONDS = 60.0  # an app process redeems its ticket within a minute of starting
SESSION_HOURS = 12.0  # a session ends after this even when in use (a long shift)
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})



@dataclass(frozen=True)
class SignedIn:
    """Who signed in at the sign-in page, with the signing key their password unlocked
    (raw Ed25519 private bytes): the session's app process signs their events with it. The
    gate holds it in memory for the session only, and hands it to the app process over
    its private socket with the single-use ticket."""

    user: str
    signing_key: bytes | None = field(default=None, repr=False)


SignInCheck = Callable[[str, str, str | None], SignedIn]
"""Checks a name, password and second-factor code (None: none given; blocking; audited)
and returns who signed in, or raises."""


ActivateCheck = Callable[[str, str, str], str]
"""A first sign-in: activates the account of a name with its enrolment code and the
password its owner chose (blocking; audited), and returns what to tell them, or raises."""


@dataclass(frozen=True)
class GateSettings:
    host: str
    port: int
    public_url: str
    title: str
    training: bool
    idle_seconds: float
    max_sessions: int = 20
    max_per_user: int = 2
    # the protocol gives custodians a second factor: the page asks everyone for a code
    second_factor: bool = False

    @property
    def origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def public_host(self) -> str:
        return urlsplit(self.public_url).netloc

    @property
    def prefix(self) -> str:
        return urlsplit(self.public_url).path.rstrip("/")

    @property
    def secure(self) -> bool:
        return self.public_url.startswith("https://")


def check_binding(host: str, port: int, public_url: str | None) -> str:
    """The public URL to serve under (bad input: exit 2). Anything but loopback serves
    other machines, so it must sit behind a proxy that speaks TLS: ``--public-url https://``."""
    if not 0 < port < 65536:
        raise InvalidInput(f"--port {port}: give a port from 1 to 65535")
    if public_url is None:
        if host not in LOOPBACK:
            raise InvalidInput(
                f"--host {host} serves other machines: put trialkit behind a proxy that "
                "speaks TLS and give --public-url https://… (the address people open)")
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
            or parts.fragment:
        raise InvalidInput(
            f"--public-url {public_url!r}: give the address people open, like "
            "https://trials.example.org/kethead")
    if host not in LOOPBACK and parts.scheme != "https":
        raise InvalidInput(
            f"--host {host} serves other machines: --public-url must be https:// (TLS is "
            "the proxy's job)")
    return public_url.rstrip("/")


@dataclass
class WebSession:
    user: str
    expires: float
    last_seen: float
    signing_key: bytes | None = field(default=None, repr=False)
    sockets: set[web.WebSocketResponse] = field(default_factory=set)


class Gate:
    """The aiohttp application around textual-serve's app processes."""

    def __init__(self, command: str, settings: GateSettings, sign_in: SignInCheck,
                 activate: ActivateCheck | None = None) -> None:
        self.command = command
        self.settings = settings
        self.sign_in_check = sign_in
        self.activate_check = activate
        self.secret = secrets.token_bytes(32)
        self.sessions: dict[str, WebSession] = {}
        self.tickets: dict[str, tuple[WebSession, float]] = {}
        self.apps = 0
        self.apps_by_user: dict[str, int] = {}
        self.downloads = DownloadManager()
        self._spawn_lock = asyncio.Lock()
        self._socket_dir = Path(tempfile.mkdtemp(prefix="trialkit-serve-"))
        self.socket_path = str(self._socket_dir / "tickets.sock")
        self._ticket_server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.static = Path(str(files("textual_serve") / "static"))

    # --- the application ------------------------------------------------------------------

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.add_routes([
            web.get("/", self.index),
            web.get("/signin", self.sign_in_page),
            web.post("/signin", self.sign_in),
            web.get("/activate", self.activate_page),
            web.post("/activate", self.activate),
            web.post("/signout", self.sign_out),
            web.get("/ws", self.websocket),
            web.get("/download/{key}", self.download),
            web.static("/static", self.static),
        ])
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _app: web.Application) -> None:
        os.chmod(self._socket_dir, 0o700)
        self._ticket_server = await asyncio.start_unix_server(self._redeem, self.socket_path)
        self._sweeper = asyncio.create_task(self._sweep())

    async def _stop(self, _app: web.Application) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for session in list(self.sessions.values()):
            await self._end(session)
        if self._ticket_server is not None:
            self._ticket_server.close()
        shutil.rmtree(self._socket_dir, ignore_errors=True)

    def url(self, path: str) -> str:
        return f"{self.settings.public_url}{path}"

    # --- every request: the Host, and the Origin of anything that is not a plain read ----

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.host != self.settings.public_host:
            return _refusal(421, "This server answers only at its own address.")
        origin = request.headers.get("Origin")
        needs_origin = request.method != "GET" or request.path == "/ws"
        if (needs_origin or origin is not None) and origin != self.settings.origin:
            return _refusal(403, "Refused: a request from another site.")
        response = await handler(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        # not "no-referrer": Chromium then sends "Origin: null" with the sign-in form
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    # --- sessions -------------------------------------------------------------------------

    def _sign(self, sid: str) -> str:
        return hmac.new(self.secret, sid.encode(), hashlib.sha256).hexdigest()

    def session_of(self, request: web.Request) -> WebSession | None:
        """The live session the request's cookie names (signature checked), or None."""
        value = request.cookies.get(COOKIE, "")
        sid, _, signature = value.partition(".")
        if not sid or not hmac.compare_digest(signature, self._sign(sid)):
            return None
        session = self.sessions.get(sid)
        now = time.monotonic()
        if session is None or now > session.expires or \
                now - session.last_seen > self.settings.idle_seconds:
            return None
        return session

    def _set_cookie(self, response: web.StreamResponse, sid: str) -> None:
        response.set_cookie(
            COOKIE, f"{sid}.{self._sign(sid)}", max_age=int(SESSION_HOURS * 3600),
            path=f"{self.settings.prefix}/", httponly=True, samesite="Strict",
            secure=self.settings.secure)

    async def _end(self, session: WebSession) -> None:
        for sid, s in list(self.sessions.items()):
            if s is session:
                del self.sessions[sid]
        for ws in list(session.sockets):
            await ws.close(message=b"session ended")

    async def _sweep(self) -> None:
        """End sessions idle for the protocol's idle time, and forget stale tickets."""
        every = max(0.2, min(10.0, self.settings.idle_seconds / 4))
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if now > session.expires or \
                        now - session.last_seen > self.settings.idle_seconds:
                    await self._end(session)
            for token, (_session, until) in list(self.tickets.items()):
                if now > until:
                    del self.tickets[token]

    # --- pages ----------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        session = self.session_of(request)
        if session is None:
            raise web.HTTPSeeOther(self.url("/signin"))
        session.last_seen = time.monotonic()
        return web.Response(text=self._app_page(session.user), content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def sign_in_page(self, request: web.Request) -> web.StreamResponse:
        if self.session_of(request) is not None:
            raise web.HTTPSeeOther(self.url("/"))
        return self._sign_in_response("", 200)

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
        code = str(form.get("code", "")).strip() or None
        if not name or not password:
            return self._sign_in_response("Give your user name and password.", 400)
        try:
            signed_in = await asyncio.to_thread(self.sign_in_check, name, password, code)
        except TrialkitError as exc:
            return self._sign_in_response(exc.message, 401)
        now = time.monotonic()
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = WebSession(signed_in.user, now + SESSION_HOURS * 3600, now,
                                        signed_in.signing_key)
        response = _see_other(self.url("/"))
        self._set_cookie(response, sid)
        return response

    async def sign_out(self, request: web.Request) -> web.StreamResponse:
        session = self.session_of(request)
        if session is not None:
            await self._end(session)
        response = _see_other(self.url("/signin"))
        response.del_cookie(COOKIE, path=f"{self.settings.prefix}/")
        return response

    async def activate_page(self, request: web.Request) -> web.StreamResponse:
        if self.activate_check is None:
            return _refusal(404, "Accounts are activated at a terminal here.")
        return self._page(ACTIVATE_PAGE, "", 200)

    async def activate(self, request: web.Request) -> web.StreamResponse:
        """A first sign-in: the enrolment code the admin handed over and the password the
        person chooses (typed twice), checked and audited by the same service as
        ``trialkit user activate``; then the sign-in page, to sign in with it."""
        if self.activate_check is None:
            return _refusal(404, "Accounts are activated at a terminal here.")
        form = await request.post()
        name, code = str(form.get("name", "")).strip(), str(form.get("code", "")).strip()
        password, again = str(form.get("password", "")), str(form.get("again", ""))
        if not name or not code or not password:
            return self._page(ACTIVATE_PAGE, "Give your user name, your enrolment code and "
                              "the password you choose.", 400)
        if password != again:
            return self._page(ACTIVATE_PAGE, "The two passwords differ; nothing was changed.",
                              400)
        try:
            said = await asyncio.to_thread(self.activate_check, name, code, password)
        except TrialkitError as exc:
            return self._page(ACTIVATE_PAGE, exc.message, 401)
        return self._page(SIGN_IN_PAGE, "", 200, notice=said)

    def _sign_in_response(self, error: str, status: int) -> web.Response:
        return self._page(SIGN_IN_PAGE, error, status)

    def _page(self, page: str, error: str, status: int, notice: str = "") -> web.Response:
        return web.Response(text=self._form_page(page, error, notice), status=status,
                            content_type="text/html", headers={
                                "Cache-Control": "no-store",
                                "Content-Security-Policy": "default-src 'self'; "
                                "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"})

    def _form_page(self, page: str, error: str, notice: str) -> str:
        e = html.escape
        training = ('<p class="training">TRAINING — not for clinical use</p>'
                    if self.settings.training else "")
        shown = f'<p class="error" role="alert">{e(printable(error))}</p>' if error else ""
        if notice:
            shown += "".join(f'<p class="notice" role="status">{e(printable(line))}</p>'
                             for line in notice.splitlines())
        code = CODE_FIELD if self.settings.second_factor else ""
        first = (FIRST_SIGN_IN.format(activate=e(self.url("/activate")))
                 if self.activate_check is not None else "")
        return page.format(
            style=PAGE_STYLE.format(font=e(self.url(
                "/static/fonts/RobotoMono-VariableFont_wght.ttf"))),
            title=e(self.settings.title), training=training, error=shown, code=code,
            first=first, signin=e(self.url("/signin")), activate=e(self.url("/activate")))

    def _app_page(self, user: str) -> str:
        e = html.escape
        ws = self.url("/ws")
        ws = ("wss:" if ws.startswith("https:") else "ws:") + ws.split(":", 1)[1]
        return APP_PAGE.format(
            static=e(self.url("/static/")), websocket=e(ws), title=e(self.settings.title),
            user=e(user), prefix=json.dumps(self.settings.prefix),
            signout=e(self.url("/signout")))

    # --- app processes --------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        session = self.session_of(request)
        if session is None:
            return _refusal(401, "Sign in first.")
        s = self.settings
        if self.apps >= s.max_sessions:
            return _refusal(503, f"All {s.max_sessions} browser sessions are in use; "
                                 "try again later.")
        if self.apps_by_user.get(session.user, 0) >= s.max_per_user:
            return _refusal(429, f"You already have {s.max_per_user} sessions open; close "
                                 "one first.")
        self.apps += 1
        self.apps_by_user[session.user] = self.apps_by_user.get(session.user, 0) + 1
        try:
            await self._run_app(request, session)
        finally:
            self.apps -= 1
            self.apps_by_user[session.user] -= 1
        return web.Response()

    async def _run_app(self, request: web.Request, session: WebSession) -> None:
        ws = web.WebSocketResponse(heartbeat=15)
        await ws.prepare(request)
        session.sockets.add(ws)
        width = _int(request.query.get("width"), 80)
        height = _int(request.query.get("height"), 24)

        async def close() -> None:
            await ws.close()

        service = AppService(self.command, write_bytes=ws.send_bytes, write_str=ws.send_str,
                             close=close, download_manager=self.downloads)
        token = secrets.token_urlsafe(32)
        self.tickets[token] = (session, time.monotonic() + TICKET_SECONDS)
        try:
            # textual-serve copies os.environ when it starts the process: the ticket is
            # in it for exactly that moment, one start at a time.
            async with self._spawn_lock:
                os.environ[TICKET_ENV], os.environ[SOCKET_ENV] = token, self.socket_path
                try:
                    await service.start(width, height)
                finally:
                    os.environ.pop(TICKET_ENV, None)
                    os.environ.pop(SOCKET_ENV, None)
            try:
                await self._relay(ws, service, session)
            finally:
                await service.stop()
        finally:
            self.tickets.pop(token, None)
            session.sockets.discard(ws)
            await ws.close()

    async def _relay(self, ws: web.WebSocketResponse, service: AppService,
                     session: WebSession) -> None:
        """The browser's keys and sizes to the app (as textual-serve's own server does);
        only keys and the mouse count as activity."""
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                kind, *rest = json.loads(message.data)
            except (ValueError, TypeError):
                continue
            if kind == "stdin" and rest and isinstance(rest[0], str):
                session.last_seen = time.monotonic()
                await service.send_bytes(rest[0].encode("utf-8"))
            elif kind == "resize" and rest and isinstance(rest[0], dict):
                await service.set_terminal_size(_int(rest[0].get("width"), 80),
                                                _int(rest[0].get("height"), 24))
            elif kind == "ping" and rest:
                await ws.send_json(["pong", rest[0]])
            elif kind == "blur":
                await service.blur()
            elif kind == "focus":
                await service.focus()

    async def _redeem(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """An app process trades its ticket for its user's name and signing key, once."""
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            entry = self.tickets.pop(line.decode("ascii", "replace").strip(), None)
            ok = entry is not None and time.monotonic() <= entry[1]
            reply: dict[str, str | None] = {"error": "unknown ticket"}
            if ok and entry:
                key = entry[0].signing_key
                reply = {"user": entry[0].user,
                         "signing_key": base64.b64encode(key).decode() if key else None}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()

    async def download(self, request: web.Request) -> web.StreamResponse:
        """A file the app delivered (an export, labels) to this signed-in browser."""
        if self.session_of(request) is None:
            return _refusal(401, "Sign in first.")
        key = request.match_info["key"]
        try:
            meta = await self.downloads.get_download_metadata(key)
        except KeyError:
            return _refusal(404, "No such download (each is fetched once).")
        kind = meta.mime_type + (f"; charset={meta.encoding}" if meta.encoding else "")
        disposition = "inline" if meta.open_method == "browser" else "attachment"
        response = web.StreamResponse(headers={
            "Content-Type": kind, "Cache-Control": "no-store",
            "Content-Disposition": f"{disposition}; filename*=UTF-8''"
                                   f"{quote(meta.file_name)}"})
        await response.prepare(request)
        async for chunk in self.downloads.download(key):
            await response.write(chunk)
        await response.write_eof()
        return response


def _int(value: Any, default: int) -> int:
    try:
        return max(1, min(1000, int(value)))
    except (TypeError, ValueError):
        return default


def _see_other(url: str) -> web.Response:
    return web.Response(status=303, headers={"Location": url})


def _refusal(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain")


def serve(gate: Gate) -> None:
    """Run until interrupted. A port already taken is one line (exit 1)."""
    asyncio.run(_serve(gate))


async def _serve(gate: Gate) -> None:
    from trialkit.domain.errors import Refused

    s = gate.settings
    runner = web.AppRunner(gate.application(), access_log=None, handle_signals=True)
    await runner.setup()
    try:
        await web.TCPSite(runner, s.host, s.port).start()
    except OSError as exc:
        await runner.cleanup()
        why = "it is taken" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise Refused(f"cannot listen on {s.host}:{s.port}: {why} (choose another --port)"
                      ) from None
    print(f"trialkit serve: {s.public_url}/ (listening on {s.host}:{s.port}; Ctrl+C stops)",
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


PAGE_STYLE = """<style>
@font-face {{ font-family: "Roboto Mono"; src: url("{font}"); }}
body {{ background: #0c181f; color: #e8eef2; font-family: "Roboto Mono", monospace;
       display: flex; align-items: center; justify-content: center; min-height: 100vh;
       margin: 0; }}
main {{ background: #12232d; padding: 2rem 2.5rem; width: 26rem; }}
h1 {{ font-size: 1.1rem; font-weight: normal; margin: 0 0 1.5rem; }}
label {{ display: block; margin: 1rem 0 .3rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .5rem; font: inherit;
        background: #0c181f; color: inherit; border: 1px solid #3b5566; }}
button {{ margin-top: 1.5rem; padding: .6rem 1.6rem; font: inherit; border: none;
         background: #5e0ba7; color: #fff; cursor: pointer; }}
.error {{ color: #ffb4a9; }}
.notice {{ color: #b8f5c8; }}
.first {{ margin-top: 2rem; font-size: .9rem; }}
a {{ color: #c9a8f0; }}
.training {{ background: #8a5a00; color: #fff; padding: .3rem .6rem; }}
</style>"""

SIGN_IN_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · {title}</title>
{style}</head>
<body><main>
{training}
<h1>{title}</h1>
<form method="post" action="{signin}">
{error}
<label for="name">User name</label>
<input id="name" name="name" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
{code}
<button type="submit">Sign in</button>
</form>
{first}
</main></body></html>
"""

FIRST_SIGN_IN = """<p class="first"><a href="{activate}">First sign-in? Activate your account
with the enrolment code your trial admin gave you.</a></p>"""

ACTIVATE_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Activate your account · {title}</title>
{style}</head>
<body><main>
{training}
<h1>{title}</h1>
<form method="post" action="{activate}">
<p>First sign-in: the enrolment code your trial admin gave you in person or by phone, and
the password you choose (nobody else ever knows it).</p>
{error}
<label for="name">User name</label>
<input id="name" name="name" autocomplete="username" autofocus required>
<label for="code">Enrolment code</label>
<input id="code" name="code" autocomplete="off" required>
<label for="password">Choose your password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required>
<label for="again">The same password again</label>
<input id="again" name="again" type="password" autocomplete="new-password" required>
<button type="submit">Activate</button>
</form>
<p class="first"><a href="{signin}">Back to sign-in</a></p>
</main></body></html>
"""

# Shown to everyone where custodians have a second factor, so it tells nobody who has one.
CODE_FIELD = """<label for="code">Code from your authenticator app (custodians)</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="8">"""

# textual-serve's page (MIT), with the font served from here and every URL the public one.
# Its script opens deliveries at the site's root: the shim below keeps the path prefix.
APP_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title} · {user}</title>
<link rel="stylesheet" href="{static}css/xterm.css">
<style>
@font-face {{ font-family: "Roboto Mono";
  src: url("{static}fonts/RobotoMono-VariableFont_wght.ttf"); }}
body {{ background: #0c181f; margin: 0; }}
.dialog-container {{ position: absolute; width: 100vw; height: 100vh; display: flex;
  align-items: center; justify-content: center; z-index: 10; }}
.intro {{ width: 640px; padding: 48px; font: 16px "Roboto Mono", monospace;
  text-align: center; color: rgba(255,255,255,.95); background: #12232d; }}
body.-first-byte .intro-dialog {{ display: none; }}
body .textual-terminal {{ opacity: 0; }}
body.-first-byte .textual-terminal {{ opacity: 1; transition: opacity .3s ease-out; }}
.closed-dialog {{ display: none; }}
body.-closed .closed-dialog {{ display: flex; }}
.intro button {{ padding: 12px 28px; margin: 16px; background: #5e0ba7; color: #fff;
  border: none; font: inherit; cursor: pointer; }}
</style>
<script>
(function () {{
  const prefix = {prefix};
  const open = window.open.bind(window);
  window.open = function (url, target) {{
    const root = window.location.origin + "/download/";
    if (typeof url === "string" && url.startsWith(root)) {{
      url = window.location.origin + prefix + "/download/" + url.slice(root.length);
    }}
    return open(url, target);
  }};
}})();
</script>
<script src="{static}js/textual.js"></script>
</head>
<body>
<div class="dialog-container intro-dialog"><div class="intro">{title}<br>Opening…</div></div>
<div class="dialog-container closed-dialog"><div class="intro">
  <div class="message">Session ended.</div>
  <form method="post" action="{signout}"><button type="submit">Sign in again</button></form>
</div></div>
<div id="terminal" class="textual-terminal" data-session-websocket-url="{websocket}"
     data-font-size="16"></div>
</body></html>
"""
