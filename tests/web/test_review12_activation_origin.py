"""The browser's activation form posted by a page that is not serve's own: no Origin, the
opaque "null" Origin (a sandboxed frame, a data: URL), another site, the plain-http twin of
an https site. Each is refused before the activation service is called. (The gate
in-process; the activation check records what reached it.)"""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestServer

from tests.web.served import free_port
from trialkit.web.gate import Gate, GateSettings, SignedIn


async def test_activation_from_anything_but_the_sites_own_page_reaches_no_account() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = GateSettings(host="127.0.0.1", port=port, public_url=url, title="T",
                            training=False, idle_seconds=60)
    reached: list[str] = []

    def sign_in(name: str, password: str, code: str | None) -> SignedIn:
        raise AssertionError("no sign-in here")

    def activate(name: str, code: str, password: str) -> str:
        reached.append(name)
        return f"Activated {name}"

    gate = Gate("head -c 1 > /dev/null", settings, sign_in, activate)
    server = TestServer(gate.application(), host="127.0.0.1", port=port)
    await server.start_server()
    form = {"name": "nora", "code": "AAAA-BBBB", "password": "p" * 16, "again": "p" * 16}
    statuses = []
    try:
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Origin": "null"}, {"Origin": "https://evil.example"},
                            {"Origin": f"http://localhost:{port}"},
                            {"Origin": url, "Host": f"evil.example:{port}"}):
                # aiohttp adds no Origin of its own: {} is a post with none at all
                r = await http.post(f"{url}/activate", data=form, headers=headers,
                                    allow_redirects=False)
                statuses.append(r.status)
            r = await http.post(f"{url}/activate", data=form, headers={"Origin": url},
                                allow_redirects=False)
            statuses.append(r.status)
    finally:
        await server.close()
    assert statuses == [403, 403, 403, 403, 421, 200]
    assert reached == ["nora"]  # only the last, from the site's own page
