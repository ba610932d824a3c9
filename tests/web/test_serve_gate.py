"""`trialkit serve` attacked from outside, as a browser or a hostile page would: nothing
starts before sign-in, another site's page gets nothing, a forged cookie gets nothing, the
caps hold. App processes are counted in /proc, not asked of the server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pyte
import pytest

from tests.db.tampering import audit_actions, events, reader, verify
from tests.web.served import PASSWORD, Served, app_processes, free_port, serving, wait_for
from trialkit.demo import build_demo
from trialkit.store.db import make_engine

EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "demo.db"
    build_demo(str(path))
    return path


@pytest.fixture(scope="module")
def served(demo_db: Path) -> Iterator[Served]:
    with serving(demo_db, "--max-sessions", "3", "--max-per-user", "2") as s:
        yield s


def client() -> aiohttp.ClientSession:
    # an IP address is the site here: aiohttp's jar keeps cookies for it only when unsafe
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(http: aiohttp.ClientSession, s: Served, name: str, password: str = PASSWORD,
                  origin: str | None = None) -> aiohttp.ClientResponse:
    return await http.post(f"{s.url}/signin", data={"name": name, "password": password},
                           headers={"Origin": origin or s.origin}, allow_redirects=False)


def cookie_header(http: aiohttp.ClientSession) -> str:
    return "; ".join(f"{c.key}={c.value}" for c in http.cookie_jar)


async def open_app(http: aiohttp.ClientSession, s: Served, origin: str | None = None,
                   cookie: str | None = None) -> aiohttp.ClientWebSocketResponse:
    return await http.ws_connect(f"{s.url}/ws?width=100&height=30", headers={
        "Origin": origin or s.origin, "Cookie": cookie_header(http) if cookie is None
        else cookie})


async def handshake_status(http: aiohttp.ClientSession, s: Served, **kw: str) -> int:
    try:
        ws = await open_app(http, s, **kw)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


def test_nothing_starts_before_sign_in(served: Served) -> None:
    async def attempt() -> tuple[int, int, int]:
        async with client() as http:
            page = await http.get(f"{served.url}/", allow_redirects=False)
            ws = await handshake_status(http, served)
            forged = await handshake_status(http, served, cookie="trialkit_session=abc.def")
            return page.status, ws, forged

    page, ws, forged = asyncio.run(attempt())
    assert (page, ws, forged) == (303, 401, 401)
    assert app_processes(served.process.pid) == []


def test_another_sites_page_gets_nothing(served: Served, demo_db: Path) -> None:
    async def attempt() -> tuple[int, int, int]:
        async with client() as http:
            posted = await sign_in(http, served, "ada", origin=EVIL)
            signed = await sign_in(http, served, "ada")
            assert signed.status == 303
            ws = await handshake_status(http, served, origin=EVIL)
            rebound = await http.get(f"{served.url}/signin",
                                     headers={"Host": "evil.example"})
            return posted.status, ws, rebound.status

    engine = make_engine(str(demo_db))
    before = audit_actions(engine)
    posted, ws, rebound = asyncio.run(attempt())
    assert (posted, ws, rebound) == (403, 403, 421)
    # the cross-site sign-in reached no account: only the genuine sign-in is recorded
    assert audit_actions(engine)[len(before):] == ["login"]
    engine.dispose()
    assert app_processes(served.process.pid) == []


def test_a_wrong_password_is_refused_and_recorded_like_the_tuis(
    served: Served, demo_db: Path
) -> None:
    async def attempt() -> tuple[int, str, str]:
        async with client() as http:
            r = await sign_in(http, served, "mona", password="not-her-password")
            return r.status, await r.text(), cookie_header(http)

    engine = make_engine(str(demo_db))
    before = audit_actions(engine)
    status, page, cookie = asyncio.run(attempt())
    assert status == 401 and "wrong user name or password" in page and cookie == ""
    assert audit_actions(engine)[len(before):] == ["login.fail"]
    engine.dispose()


def test_the_session_cookie_is_httponly_and_strict(served: Served) -> None:
    async def attempt() -> str:
        async with client() as http:
            r = await sign_in(http, served, "mona")
            return r.headers["Set-Cookie"]

    cookie = asyncio.run(attempt())
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "max-age", "path"} <= attributes
    assert "SameSite=Strict" in cookie
    assert "secure" not in attributes  # plain http on loopback: a Secure cookie is never sent


def test_the_caps_hold_however_many_sockets_are_opened(served: Served) -> None:
    async def hold() -> tuple[list[int], int]:
        async with client() as ada, client() as ivan:
            await sign_in(ada, served, "ada")
            await sign_in(ivan, served, "ivan")
            sockets, statuses = [], []
            for http in (ada, ada, ada, ada, ivan, ivan):
                try:
                    sockets.append(await open_app(http, served))
                    statuses.append(101)
                except aiohttp.WSServerHandshakeError as exc:
                    statuses.append(exc.status)
            counted = len(app_processes(served.process.pid))
            for ws in sockets:
                await ws.close()
            return statuses, counted

    statuses, counted = asyncio.run(hold())
    # ada: 2 of 4 (per user); ivan: 1 of 2 (3 in all)
    assert statuses == [101, 101, 429, 429, 101, 503]
    assert counted <= 3
    wait_for(lambda: app_processes(served.process.pid) == [])


def test_a_browser_session_opens_signed_in_and_is_audited(served: Served, demo_db: Path) -> None:
    async def attempt() -> bytes:
        async with client() as http:
            await sign_in(http, served, "iris")
            ws = await open_app(http, served)
            seen = b""
            while b"iris" not in seen:
                message = await asyncio.wait_for(ws.receive(), timeout=30)
                if message.type == aiohttp.WSMsgType.BINARY:
                    seen += message.data
                elif message.type != aiohttp.WSMsgType.TEXT:
                    break
            await ws.close()
            return seen

    engine = make_engine(str(demo_db))
    before = audit_actions(engine)
    screen = asyncio.run(attempt())
    assert b"iris" in screen
    wait_for(lambda: audit_actions(engine)[len(before):] == ["login", "session.open"])
    # The app process signs as iris with the key her sign-in at the page unlocked.
    with reader(engine).connect() as conn:
        opened = events(conn)[-1]
    assert (opened["user_name"], opened["signature"] is not None) == ("iris", True)
    assert verify(engine).ok
    engine.dispose()


async def screen_of(http: aiohttp.ClientSession, s: Served, *words: str) -> str:
    """The app's screen (100x30, read by a terminal emulator) once it shows ``words``."""
    screen = pyte.Screen(100, 30)
    stream = pyte.ByteStream(screen)
    ws = await open_app(http, s)
    try:
        while not all(w in (shown := "\n".join(screen.display)) for w in words):
            message = await asyncio.wait_for(ws.receive(), timeout=60)
            assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), shown
            if message.type == aiohttp.WSMsgType.BINARY:
                stream.feed(message.data)
        return shown
    finally:
        await ws.close()


@pytest.mark.parametrize(("name", "heading"), [
    ("cora", "KETHEAD · Toronto Western Hospital (TWH)"),  # a coordinator at one site
    ("mona", "KETHEAD · all sites"),  # a monitor sees every site
])
def test_a_browser_user_sees_the_trial_and_their_site_not_the_servers_database(
        served: Served, demo_db: Path, name: str, heading: str) -> None:
    async def attempt() -> str:
        async with client() as http:
            page = await sign_in(http, served, name, password="wrong-password")
            assert page.status == 401
            shown = await page.text()
            await sign_in(http, served, name)
            app_page = await (await http.get(f"{served.url}/")).text()
            return shown + app_page + await screen_of(http, served, heading, name)

    shown = asyncio.run(attempt())
    # the sign-in page, the app's page and its header: not the file, not its folder
    assert str(demo_db) not in shown and demo_db.name not in shown
    assert demo_db.parent.name not in shown, shown


def test_a_new_account_is_activated_in_the_browser_then_signs_in(
        served: Served, demo_db: Path) -> None:
    """A coordinator at the second site has only a browser: the admin adds her and gives
    her the enrolment code by phone; she activates on serve's page and signs in."""
    import json
    import os

    engine = make_engine(str(demo_db))
    before = audit_actions(engine)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")},
           "TRIALKIT_PASSWORD": PASSWORD}
    added = subprocess.run([sys.executable, "-m", "trialkit", "--db", str(demo_db), "--json",
                            "--user", "ada", "user", "add", "nora", "--role", "coordinator",
                            "--site", "SHS"], env=env, capture_output=True, text=True,
                           timeout=120, check=True, stdin=subprocess.DEVNULL)
    code = json.loads(added.stdout)["enrolment_code"]
    chosen = "quartz-meadow-lantern-81"
    form = {"name": "nora", "code": code, "password": chosen, "again": chosen}

    async def attempt() -> list[tuple[int, str]]:
        async with client() as http:
            seen = []
            page = await http.get(f"{served.url}/signin")
            seen.append((page.status, await page.text()))
            for data, origin in [
                ({**form, "code": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"}, served.origin),
                ({**form, "again": chosen + "x"}, served.origin),
                (form, EVIL),  # another site's page posting her code
                (form, served.origin),
                (form, served.origin),  # the code is spent
            ]:
                r = await http.post(f"{served.url}/activate", data=data,
                                    headers={"Origin": origin}, allow_redirects=False)
                seen.append((r.status, await r.text()))
            signed = await sign_in(http, served, "nora", password=chosen)
            seen.append((signed.status, ""))
            shown = await screen_of(http, served, "nora", "KETHEAD · Sinai Health System (SHS)")
            seen.append((101, shown))
            return seen

    seen = asyncio.run(attempt())
    statuses = [status for status, _ in seen]
    assert statuses == [200, 401, 400, 403, 200, 401, 303, 101], statuses
    assert f'href="{served.url}/activate"' in seen[0][1]
    assert "not valid for nora" in seen[1][1]
    assert "The two passwords differ; nothing was changed." in seen[2][1]
    assert "Activated nora: sign in below with your new password." in seen[4][1]
    assert "not valid for nora" in seen[5][1]
    # the wrong code and the spent one are refused on the record; the other site's post and
    # the mismatched passwords reach no account
    wait_for(lambda: audit_actions(engine)[len(before):] == [
        "login", "user.add", "user.activate_refused", "user.activate",
        "user.activate_refused", "login", "session.open"], timeout=60)
    engine.dispose()
    wait_for(lambda: app_processes(served.process.pid) == [], timeout=60)


def trialkit_serve(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trialkit", "--db", str(db), "serve", *args],
                          capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)


def test_a_taken_port_is_one_line(served: Served, demo_db: Path) -> None:
    run = trialkit_serve(demo_db, "--port", str(served.port))
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"Refused: cannot listen on 127.0.0.1:{served.port}: it is taken "
        "(choose another --port)"]


@pytest.mark.parametrize("args", [
    ["--host", "0.0.0.0"],
    ["--host", "0.0.0.0", "--public-url", "http://trials.example.org/kethead"],
    ["--public-url", "ftp://trials.example.org"],
])
def test_serving_other_machines_needs_an_https_public_url(demo_db: Path,
                                                          args: list[str]) -> None:
    run = trialkit_serve(demo_db, "--port", str(free_port()), *args)
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith("Error: ")


def test_behind_an_https_proxy_the_cookie_is_secure_and_urls_are_public(demo_db: Path) -> None:
    public = "https://trials.example.org/kethead"
    with serving(demo_db, "--public-url", public) as s:
        async def attempt() -> tuple[str, str]:
            async with client() as http:
                headers = {"Host": "trials.example.org", "Origin": "https://trials.example.org"}
                r = await http.post(f"http://127.0.0.1:{s.port}/signin", headers=headers,
                                    data={"name": "mona", "password": PASSWORD},
                                    allow_redirects=False)
                return r.headers["Set-Cookie"], r.headers["Location"]

        cookie, location = asyncio.run(attempt())
    assert "Secure" in cookie and "Path=/kethead/" in cookie
    assert location == f"{public}/"
