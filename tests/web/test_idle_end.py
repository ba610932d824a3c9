"""A browser session idle for the protocol's idle time ends: its app process stops and its
cookie opens nothing more. (The gate in-process, with an idle time of a fraction of a
second and a stand-in app that waits for its quit message.)"""

from __future__ import annotations

import asyncio
import os

import aiohttp
from aiohttp.test_utils import TestServer

from tests.web.served import descendants, free_port
from trialkit.web.gate import Gate, GateSettings, SignedIn

IDLE = 0.6


async def test_an_idle_browser_session_ends() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = GateSettings(host="127.0.0.1", port=port, public_url=url, title="T",
                            training=False, idle_seconds=IDLE)
    gate = Gate("head -c 1 > /dev/null", settings, lambda name, _password, _code: SignedIn(name))
    server = TestServer(gate.application(), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            r = await http.post(f"{url}/signin", data={"name": "ada", "password": "x"},
                                headers={"Origin": url}, allow_redirects=False)
            assert r.status == 303
            cookie = "; ".join(f"{c.key}={c.value}" for c in jar)
            ws = await http.ws_connect(f"{url}/ws", headers={"Origin": url, "Cookie": cookie})
            message = await ws.receive(timeout=IDLE * 20)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            page = await http.get(f"{url}/", allow_redirects=False,
                                  headers={"Cookie": cookie})
            assert page.status == 303 and page.headers["Location"] == f"{url}/signin"
        for _ in range(200):  # the stand-in app got its quit message and ended
            if not [p for p in descendants(os.getpid()) if "head" in _cmd(p)]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the idle session's app process is still running")
    finally:
        await server.close()


def _cmd(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""
