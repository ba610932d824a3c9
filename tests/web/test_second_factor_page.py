"""The browser sign-in page where the protocol gives custodians a second factor: a code
box for everyone (it tells nobody who has one), the code handed to the audited sign-in,
and its refusal shown in the sign-in service's words. (The gate in-process; the sign-in
check records what it was given and refuses as the service does.)"""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestServer

from tests.web.served import free_port
from trialkit.domain.errors import AuthenticationFailed
from trialkit.services.administration.sign_in import WRONG_WITH_CODE
from trialkit.web.gate import Gate, GateSettings, SignedIn


async def _page(second_factor: bool, given: list[tuple[str, str, str | None]]) -> list[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = GateSettings(host="127.0.0.1", port=port, public_url=url, title="T",
                            training=False, idle_seconds=60, second_factor=second_factor)

    def check(name: str, password: str, code: str | None) -> SignedIn:
        given.append((name, password, code))
        if code != "287082":
            raise AuthenticationFailed(WRONG_WITH_CODE)
        return SignedIn(name)

    gate = Gate("head -c 1 > /dev/null", settings, check)
    server = TestServer(gate.application(), host="127.0.0.1", port=port)
    await server.start_server()
    pages = []
    try:
        async with aiohttp.ClientSession() as http:
            pages.append(await (await http.get(f"{url}/signin")).text())
            for code in ("", "123456", "287082"):
                r = await http.post(f"{url}/signin",
                                    data={"name": "pia", "password": "pw", "code": code},
                                    headers={"Origin": url}, allow_redirects=False)
                pages.append(f"{r.status} {await r.text()}")
    finally:
        await server.close()
    return pages


async def test_the_sign_in_page_asks_everyone_for_a_code_and_passes_it_on() -> None:
    given: list[tuple[str, str, str | None]] = []
    page, empty, wrong, right = await _page(True, given)
    assert 'name="code"' in page and 'autocomplete="one-time-code"' in page
    assert given == [("pia", "pw", None), ("pia", "pw", "123456"), ("pia", "pw", "287082")]
    assert empty.startswith("401") and WRONG_WITH_CODE in empty
    assert wrong.startswith("401") and WRONG_WITH_CODE in wrong
    assert right.startswith("303")


async def test_without_a_second_factor_the_page_has_no_code_box() -> None:
    page, *_ = await _page(False, [])
    assert 'name="code"' not in page
