"""The served demo trial used from Debian's Chromium (Playwright, never a downloaded
browser) through a local nginx on a path prefix, as a second site would: sign in on the
sign-in page, the app opens signed in, an investigator downloads a blinded export and a
pharmacist a label PDF, and a page of another site is refused. Screenshots of the
sign-in page and of the app are kept in the test's folder (and looked at)."""

from __future__ import annotations

import csv
import io
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Download, Page, sync_playwright
from pypdf import PdfReader

from tests.db.tampering import audit_actions
from tests.web.served import PASSWORD, Served, app_processes, free_port, serving, wait_for
from trialkit.demo import build_demo
from trialkit.store.db import make_engine

CHROMIUM = "/usr/bin/chromium"
PREFIX = "/kethead"
SHOTS = Path(__file__).resolve().parents[2] / ".browser-screenshots"

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
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{
    listen 127.0.0.1:{port};
{location}
  }}
}}
"""
DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def documented_location(app_port: int) -> str:
    """The nginx `location` block of docs/deploy.md, as a site would copy it (only the
    port of `serve` is this test's)."""
    text = DEPLOY.read_text()
    block = text.split("# --- tested: trialkit location ---")[1].split("# --- end tested ---")[0]
    assert f"location {PREFIX}/ " in block and "proxy_pass http://127.0.0.1:8000/;" in block
    return block.replace("127.0.0.1:8000", f"127.0.0.1:{app_port}")


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "demo.db"
    build_demo(str(path))
    return path


@pytest.fixture(scope="module")
def proxied(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`trialkit serve` behind nginx at http://127.0.0.1:PORT/kethead (nginx started here,
    on a free port, with its own configuration: no root needed)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port, app_port = free_port(), free_port()
    public = f"http://127.0.0.1:{port}{PREFIX}"
    folder = tmp_path_factory.mktemp("nginx")
    conf = folder / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=folder, port=port,
                                      location=documented_location(app_port)))
    proxy = subprocess.Popen([nginx, "-e", str(folder / "error.log"), "-p", str(folder),
                              "-c", str(conf)], stdin=subprocess.DEVNULL)
    try:
        with serving(demo_db, "--public-url", public, port=app_port) as served:
            served.url = public
            yield served
    finally:
        proxy.terminate()
        proxy.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def sessions_opened(db: Path, name: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM audit_event WHERE action = "
                                "'session.open' AND entity_id = ?", (name,)).fetchone()[0])


def signed_in(browser: Browser, served: Served, name: str, db: Path) -> Page:
    """A browser signed in as ``name`` on the sign-in page, its app open at home."""
    opened = sessions_opened(db, name)
    page = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 760}
                               ).new_page()
    page.goto(f"{served.url}/")
    assert page.url == f"{served.url}/signin"
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{served.url}/")
    page.wait_for_selector("body.-first-byte", timeout=60_000)
    wait_for(lambda: sessions_opened(db, name) > opened, timeout=60)
    time.sleep(1.5)  # the home screen replaces the sign-in screen
    return page


def downloads_of(page: Page) -> list[Download]:
    """Every download any page of this browser context starts (deliveries open a tab)."""
    got: list[Download] = []
    page.on("download", lambda d: got.append(d))
    page.context.on("page", lambda tab: tab.on("download", lambda d: got.append(d)))
    return got


def keys(page: Page, *presses: str) -> None:
    page.click(".textual-terminal")
    for key in presses:
        if len(key) > 1 and not key[0].isupper() or key in ("Enter", "Escape", "Tab"):
            page.keyboard.press(key)
        else:
            page.keyboard.type(key)
        time.sleep(0.3)  # a keystroke reaches the app process before the next


def test_sign_in_page_and_app_through_nginx(browser: Browser, proxied: Served,
                                            demo_db: Path) -> None:
    SHOTS.mkdir(exist_ok=True)
    page = browser.new_page()
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url))
    page.goto(f"{proxied.url}/")
    assert page.url == f"{proxied.url}/signin"
    assert "TRAINING" in page.inner_text("body")
    page.screenshot(path=str(SHOTS / "sign-in.png"))
    page.fill("#name", "mona")
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    assert "wrong user name or password" in page.inner_text(".error", timeout=5000)
    page.close()
    engine = make_engine(str(demo_db))
    before = audit_actions(engine)
    page = signed_in(browser, proxied, "mona", demo_db)
    wait_for(lambda: audit_actions(engine)[len(before):] == ["login", "session.open"])
    engine.dispose()
    time.sleep(1)
    page.screenshot(path=str(SHOTS / "app.png"))
    # everything the pages loaded came through the proxy: nothing from the internet
    assert fetched and all(u.startswith(proxied.url) for u in fetched), fetched
    page.context.close()


def test_an_investigator_downloads_a_blinded_export(browser: Browser, proxied: Served,
                                                     demo_db: Path) -> None:
    page = signed_in(browser, proxied, "ivan", demo_db)
    got = downloads_of(page)
    keys(page, "i")
    time.sleep(1.5)
    keys(page, "x")
    time.sleep(1)
    keys(page, "Enter")
    time.sleep(3)
    page.screenshot(path=str(SHOTS / "export.png"))
    wait_for(lambda: len(got) >= 3, timeout=60)
    files = {d.suggested_filename: Path(d.path()) for d in got}
    assert set(files) == {"outcomes.csv", "outcomes.dictionary.csv", "outcomes.manifest.json"}
    rows = list(csv.DictReader(io.StringIO(files["outcomes.csv"].read_text())))
    assert rows and {r["participant_id"] for r in rows} >= {"TWH-001", "SHS-001"}
    assert not any("arm" in column.lower() for column in rows[0])
    page.context.close()


def test_a_pharmacist_downloads_a_label_pdf(browser: Browser, proxied: Served,
                                            demo_db: Path) -> None:
    page = signed_in(browser, proxied, "phil", demo_db)
    got = downloads_of(page)
    time.sleep(4)  # the pharmacist's home is the dispense queue: it opens after home
    keys(page, "l")
    time.sleep(1)
    page.screenshot(path=str(SHOTS / "reprint.png"))
    keys(page, "TWH-001", "Enter")
    time.sleep(3)
    page.screenshot(path=str(SHOTS / "labels.png"))
    wait_for(lambda: len(got) >= 1, timeout=60)
    [labels] = got
    assert labels.suggested_filename == "labels-TWH-001.pdf"
    text = "".join(p.extract_text() for p in PdfReader(labels.path()).pages)
    assert "TWH-001" in text and "TRAINING" in text.upper()
    page.context.close()


def test_a_page_of_another_site_cannot_open_the_app(browser: Browser, proxied: Served,
                                                    demo_db: Path) -> None:
    page = signed_in(browser, proxied, "iris", demo_db)  # the victim is signed in
    wait_for(lambda: len(app_processes(proxied.process.pid)) >= 1, timeout=60)
    running = len(app_processes(proxied.process.pid))
    evil = page.context.new_page()
    other = f"http://localhost:{free_port()}"  # another origin (no server needed)
    evil.route(f"{other}/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<html><body>evil</body></html>"))
    evil.goto(f"{other}/")
    ws_url = proxied.url.replace("http://", "ws://") + "/ws"
    outcome = evil.evaluate("""url => new Promise(done => {
        const ws = new WebSocket(url);
        ws.onopen = () => done("open");
        ws.onerror = () => done("refused");
    })""", ws_url)
    assert outcome == "refused"
    assert len(app_processes(proxied.process.pid)) <= running
    page.context.close()
