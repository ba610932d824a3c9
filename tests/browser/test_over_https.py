"""The deployment of docs/deploy.md with its TLS: nginx runs the guide's own `server`
block (its `listen 443 ssl` on a free port of 127.0.0.1, a self-signed certificate made
here with cryptography's x509 builder instead of the site's), `trialkit serve --public-url
https://127.0.0.1:PORT/kethead` behind it, and Debian's Chromium (certificate errors
ignored: the certificate is this test's own) signs in and uses the app over https and
wss://. A page on the same host over plain http is another origin: the server refuses it
even with the user's cookie. The header shows the trial and the user's sites, never the
server's database file. Screenshots go to .browser-screenshots/https-*.png."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import Browser

from tests.browser.proxy import served_behind_nginx
from tests.browser.terminal import Terminal
from tests.db.tampering import audit_actions
from tests.web.served import PASSWORD, Served, app_processes, free_port, wait_for
from trialkit.demo import build_demo
from trialkit.store.db import make_engine

PREFIX = "/kethead"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".browser-screenshots"
DEPLOY = ROOT / "docs" / "deploy.md"

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
{site}
}}
"""


def documented_site(port: int, app_port: int, cert: Path, key: Path) -> str:
    """docs/deploy.md's nginx site, whole, as a site would copy it: only the address nginx
    listens on, the certificate's files and the port of `serve` are this test's."""
    [site] = re.findall(r"```nginx\n(.*?)```", DEPLOY.read_text(), flags=re.DOTALL)
    for documented, ours in [
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("/etc/ssl/trials.example.org.crt", str(cert)),
        ("/etc/ssl/private/trials.example.org.key", str(key)),
        ("127.0.0.1:8000", f"127.0.0.1:{app_port}"),
    ]:
        assert site.count(documented) == 1, documented
        site = site.replace(documented, ours)
    return site


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (a day long)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "site.crt", folder / "site.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("https") / "demo.db"
    build_demo(str(path))
    return path


@pytest.fixture(scope="module")
def over_https(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`trialkit serve` behind the guide's nginx site at https://127.0.0.1:PORT/kethead."""
    port, app_port = free_port(), free_port()
    public = f"https://127.0.0.1:{port}{PREFIX}"
    folder = tmp_path_factory.mktemp("nginx-tls")
    cert, key = self_signed(folder)
    conf = NGINX_CONF.format(dir=folder, site=documented_site(port, app_port, cert, key))
    with served_behind_nginx(demo_db, folder, conf, public, app_port) as served:
        yield served


def test_signed_in_over_https_and_wss(browser: Browser, over_https: Served,
                                      demo_db: Path) -> None:
    SHOTS.mkdir(exist_ok=True)
    engine = make_engine(str(demo_db))
    before = audit_actions(engine)
    context = browser.new_context(ignore_https_errors=True,
                                  viewport={"width": 1200, "height": 760})
    page = context.new_page()
    fetched: list[str] = []
    sockets: list[str] = []
    page.on("request", lambda r: fetched.append(r.url))
    page.on("websocket", lambda ws: sockets.append(ws.url))
    screen = Terminal(page)
    page.goto(f"{over_https.url}/")
    assert page.url == f"{over_https.url}/signin"
    shown = page.inner_text("body")
    assert "TRAINING" in shown and "KetHead" in shown
    page.screenshot(path=str(SHOTS / "https-sign-in.png"))
    page.click("text=First sign-in?")
    page.wait_for_url(f"{over_https.url}/activate")
    assert "Enrolment code" in page.inner_text("body")
    page.screenshot(path=str(SHOTS / "https-activate.png"))
    page.goto(f"{over_https.url}/signin")
    page.fill("#name", "cora")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{over_https.url}/")
    # the cookie came back over TLS only (Secure), for the prefix only
    [cookie] = context.cookies()
    assert (cookie["secure"], cookie["httpOnly"], cookie["path"]) == (True, True, f"{PREFIX}/")
    shown = screen.wait_for("cora", "Role: coordinator",
                            "KETHEAD · Toronto Western Hospital (TWH)")
    assert str(demo_db.parent) not in shown and demo_db.name not in shown, shown
    wait_for(lambda: audit_actions(engine)[len(before):] == ["login", "session.open"],
             timeout=60)
    page.screenshot(path=str(SHOTS / "https-home.png"))
    # the app works: the coordinator opens the participants of her site
    screen.press("p")
    screen.wait_for("TWH-001", "Participants")
    page.screenshot(path=str(SHOTS / "https-app.png"))
    wss = over_https.url.replace("https://", "wss://")
    assert len(sockets) == 1 and sockets[0].startswith(f"{wss}/ws?"), sockets
    assert fetched and all(u.startswith(over_https.url) for u in fetched), fetched
    engine.dispose()
    context.close()


def test_a_plain_http_page_of_the_same_host_is_refused(browser: Browser,
                                                       over_https: Served) -> None:
    origin = over_https.url.removesuffix(PREFIX)
    plain = origin.replace("https://", "http://")
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE

    async def attempt() -> tuple[int, int, int, int]:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar,
                                         connector=aiohttp.TCPConnector(ssl=tls)) as http:
            posted = await http.post(f"{over_https.url}/signin", allow_redirects=False,
                                     data={"name": "mona", "password": PASSWORD},
                                     headers={"Origin": plain})
            signed = await http.post(f"{over_https.url}/signin", allow_redirects=False,
                                     data={"name": "mona", "password": PASSWORD},
                                     headers={"Origin": origin})
            cookie = "; ".join(f"{c.key}={c.value}" for c in jar)
            assert cookie, "the https sign-in gave no cookie"

            async def handshake(from_origin: str) -> int:
                try:
                    ws = await http.ws_connect(f"{over_https.url}/ws?width=80&height=24",
                                               headers={"Origin": from_origin,
                                                        "Cookie": cookie})
                except aiohttp.WSServerHandshakeError as exc:
                    return exc.status
                await ws.close()
                return 101

            return posted.status, signed.status, await handshake(plain), \
                await handshake(origin)

    running = len(app_processes(over_https.process.pid))
    # in a thread of its own: Playwright's loop runs in this one
    with ThreadPoolExecutor(1) as pool:
        posted, signed, from_plain, from_tls = pool.submit(asyncio.run, attempt()).result()
    # with the same cookie, only the https origin opens the app
    assert (posted, signed, from_plain, from_tls) == (403, 303, 403, 101)
    wait_for(lambda: len(app_processes(over_https.process.pid)) <= running, timeout=60)

    # and in the browser: a page at http://127.0.0.1:PORT (answered by the test, not by
    # the server) opens the wss:// app: refused, nothing starts
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.route(f"{plain}/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<html><body>plain</body></html>"))
    page.goto(f"{plain}/")
    outcome = page.evaluate("""url => new Promise(done => {
        const ws = new WebSocket(url);
        ws.onopen = () => done("open");
        ws.onerror = () => done("refused");
    })""", over_https.url.replace("https://", "wss://") + "/ws")
    assert outcome == "refused"
    assert len(app_processes(over_https.process.pid)) <= running
    context.close()
