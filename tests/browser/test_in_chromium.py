"""The served demo trial used from Debian's Chromium (Playwright, never a downloaded
browser) through a local nginx on a path prefix, as a second site would: sign in on the
sign-in page, the app opens signed in; a coordinator screens and consents a participant and
randomizes one, a pharmacist dispenses that participant and downloads the label PDF, an
investigator downloads the blinded export; a page of another site is refused. Every step
waits for words on the browser's screen (tests/browser/terminal.py), never for a fixed
time. Screenshots are kept in .browser-screenshots (and looked at)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Download, Page
from pypdf import PdfReader

from tests.browser.proxy import served_behind_nginx
from tests.browser.terminal import Terminal
from tests.db.tampering import audit_actions
from tests.web.served import PASSWORD, Served, app_processes, free_port, wait_for
from trialkit.demo import build_demo
from trialkit.store.db import make_engine

TITLE = ("A multi-centre randomized controlled trial of the efficacy and safety of "
         "intravenous ketamine for chronic daily headaches: the KetHead study")
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
    port, app_port = free_port(), free_port()
    public = f"http://127.0.0.1:{port}{PREFIX}"
    folder = tmp_path_factory.mktemp("nginx")
    conf = NGINX_CONF.format(dir=folder, port=port, location=documented_location(app_port))
    with served_behind_nginx(demo_db, folder, conf, public, app_port) as served:
        yield served


def sessions_opened(db: Path, name: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM audit_event WHERE action = "
                                "'session.open' AND entity_id = ?", (name,)).fetchone()[0])


def signed_in(browser: Browser, served: Served, name: str, db: Path,
              *shows: str) -> tuple[Page, Terminal]:
    """A browser signed in as ``name`` on the sign-in page, its app open and showing
    ``shows`` (the user's name on the home screen by default)."""
    opened = sessions_opened(db, name)
    page = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 760}
                               ).new_page()
    screen = Terminal(page)
    page.goto(f"{served.url}/")
    assert page.url == f"{served.url}/signin"
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{served.url}/")
    wait_for(lambda: sessions_opened(db, name) > opened, timeout=90)
    screen.wait_for(*(shows or (f"│ {name} ", "Role: ")))
    return page, screen


def downloads_of(page: Page) -> list[Download]:
    """Every download any page of this browser context starts (deliveries open a tab)."""
    got: list[Download] = []
    page.on("download", lambda d: got.append(d))
    page.context.on("page", lambda tab: tab.on("download", lambda d: got.append(d)))
    return got


def wait_for_downloads(page: Page, got: list[Download], count: int) -> None:
    end = time.monotonic() + 90
    while len(got) < count:
        assert time.monotonic() < end, [d.suggested_filename for d in got]
        page.wait_for_timeout(100)


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
    assert "wrong user name or password" in page.inner_text(".error", timeout=30_000)
    page.close()
    engine = make_engine(str(demo_db))
    before = audit_actions(engine)
    page, screen = signed_in(browser, proxied, "mona", demo_db, "mona", "Role: monitor",
                             "Press p for participants.")
    wait_for(lambda: audit_actions(engine)[len(before):] == ["login", "session.open"])
    engine.dispose()
    page.screenshot(path=str(SHOTS / "app.png"))
    # everything the pages loaded came through the proxy: nothing from the internet
    assert fetched and all(u.startswith(proxied.url) for u in fetched), fetched
    page.context.close()


# The baseline diary of KetHead is the 28 days before randomization (protocol), kept in
# Toronto Western Hospital's time: a participant screened today cannot be randomized
# today. So the coordinator screens and consents a new participant in the browser, and
# randomizes the demo's consented TWH-004 once the rest of their paper diary is imported
# (`trialkit diary import`, as a site does).
TORONTO = ZoneInfo("America/Toronto")


def import_the_rest_of_the_diary(db: Path, pid: str, folder: Path) -> None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        [consent] = conn.execute("SELECT consent_date FROM participant WHERE id = ?",
                                 (pid,)).fetchone()
        recorded = {d for (d,) in conn.execute(
            "SELECT day FROM diary_entry WHERE participant_id = ?", (pid,))}
    day, today = date.fromisoformat(consent), datetime.now(TORONTO).date()
    rows = ["participant_id,date,headache,severity,duration_hours,acute_medication"]
    while day < today:
        if day.isoformat() not in recorded:
            rows.append(f"{pid},{day.isoformat()},yes,moderate,6,no")
        day += timedelta(days=1)
    diary = folder / "diary.csv"
    diary.write_text("\n".join(rows) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    done = subprocess.run([sys.executable, "-m", "trialkit", "--db", str(db), "--user", "cora",
                           "diary", "import", str(diary)], env={**env, "TRIALKIT_PASSWORD":
                           PASSWORD}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


ARM_WORDS = re.compile(r"\b(?:KET|PLA|ketamine|placebo|saline|chloride)\b", re.IGNORECASE)
BLINDED_PRODUCT = re.compile(r"ketamine or placebo", re.IGNORECASE)


def arm_words(text: str) -> list[str]:
    """Words that would name one arm of KetHead (protocol: IV ketamine vs 0.9 % saline
    placebo, codes KET and PLA); the label's product name that names both, and the public
    trial title, set aside."""
    return ARM_WORDS.findall(BLINDED_PRODUCT.sub("<product>", text.replace(TITLE, "<title>")))


def test_screen_randomize_dispense_and_export_in_the_browser(
        browser: Browser, proxied: Served, demo_db: Path,
        tmp_path: Path) -> None:
    # the coordinator screens a participant: every field by the keyboard, as a person does
    page, screen = signed_in(browser, proxied, "cora", demo_db, "Press p")
    screen.press("p")
    screen.wait_for("TWH-004      TWH-CM   consented")
    screen.press("n")
    screen.wait_for("Screen a participant", "Age      years")
    screen.press("52", "Enter")
    screen.wait_for("Age      52")
    screen.press("Enter")  # sex: open the list, the first choice, take it
    screen.wait_for("Dismiss menu")
    screen.press("ArrowDown", "Enter")
    screen.wait_until_gone("Dismiss menu")
    screen.wait_for("Sex            F (female)")
    screen.press("64.5", "Enter")
    screen.wait_for("Weight   64.5")
    screen.press("Enter")  # headache type
    screen.wait_for("Dismiss menu")
    screen.press("ArrowDown", "Enter")
    screen.wait_until_gone("Dismiss menu")
    screen.wait_for("Headache type  Chronic migraine (CM)", "y Yes")
    # the protocol's criteria: inclusion I2, I3 met (yes), exclusion E01 to E16 absent (no)
    screen.press("y", "y", *"n" * 16)
    screen.wait_for("ELIGIBLE — every criterion is met")
    screen.press("Control+s")
    screen.wait_for("Screened TWH-005 (TWH-CM): eligible", " TWH-005 · eligible · 52 y, F, 64.5")
    screen.press("c")
    screen.wait_for("Consent")
    page.screenshot(path=str(SHOTS / "consent.png"))
    screen.press("Enter")
    screen.wait_for("TWH-005 consented.", "TWH-005      TWH-CM   consented")
    # TWH-004's diary is complete now: randomize
    import_the_rest_of_the_diary(demo_db, "TWH-004", tmp_path)
    screen.press("ArrowUp")
    screen.wait_for(" TWH-004 · consented")
    screen.press("r")
    screen.wait_for("Randomize TWH-004 (stratum TWH-CM)?")
    screen.press("Enter")
    shown = screen.wait_for("TWH-004 is randomized.", "TWH-004      TWH-CM   randomized")
    page.screenshot(path=str(SHOTS / "randomized.png"))
    [row] = [line for line in shown.splitlines() if "TWH-004      TWH-CM   randomized" in line]
    number, label_code = row.split()[3:5]
    assert f"Randomization number  {number}" in shown and f"Label code            {label_code}" \
        in shown, shown
    assert not arm_words(shown), shown
    page.context.close()

    # the pharmacist opens TWH-004's envelope, prepares, and gets the label PDF
    page, screen = signed_in(browser, proxied, "phil", demo_db, "TWH-004", "awaiting preparation")
    got = downloads_of(page)
    for _ in range(5):
        screen.press("o")
        opening = screen.wait_for("Open envelope of")
        if "Open envelope of TWH-004" in opening:
            break
        screen.press("Escape")
        screen.wait_until_gone("Open envelope of")
        screen.press("ArrowDown")
    screen.wait_for("Open envelope of TWH-004")
    screen.press(PASSWORD, "Enter")
    screen.wait_for("UNBLINDED — pharmacy only")
    screen.press("KT2403-17", "Enter", "KT2403-17", "Enter", "pia", "Enter", PASSWORD, "Enter")
    screen.wait_for("Lot infusion     KT2403-17\n", "Checked by       pia\n", "labels-TWH-004.pdf")
    page.screenshot(path=str(SHOTS / "preparation.png"))
    screen.press("Control+s")
    preview = screen.wait_for("Labels of TWH-004", "Sent to your browser as labels-TWH-004.pdf")
    page.screenshot(path=str(SHOTS / "labels.png"))
    assert not arm_words(preview.split("Labels of TWH-004")[1]), preview
    wait_for_downloads(page, got, 1)
    [labels] = got
    assert labels.suggested_filename == "labels-TWH-004.pdf"
    text = "".join(p.extract_text() for p in PdfReader(labels.path()).pages)
    assert "TWH-004" in text and number in text and "TRAINING" in text.upper()
    assert not arm_words(text) and "KT2403" not in text, text
    page.context.close()

    # the investigator downloads the blinded export: TWH-004 is in it, no arm anywhere
    page, screen = signed_in(browser, proxied, "ivan", demo_db, "ivan", "Press i")
    got = downloads_of(page)
    screen.press("i")
    screen.wait_for("x Export")
    screen.press("x")
    screen.wait_for("outcomes.csv")
    screen.press("Enter")
    screen.wait_for("Wrote", "and sent them to your browser")
    wait_for_downloads(page, got, 4)
    page.screenshot(path=str(SHOTS / "export.png"))
    files = {d.suggested_filename: Path(d.path()) for d in got}
    assert set(files) == {"outcomes.csv", "outcomes.dictionary.csv", "outcomes.manifest.json",
                          "outcomes.checkpoint.json"}
    checkpoint = json.loads(files["outcomes.checkpoint.json"].read_text())
    assert checkpoint["signer"] == "ivan" and not arm_words(json.dumps(checkpoint))
    rows = list(csv.DictReader(io.StringIO(files["outcomes.csv"].read_text())))
    assert not any("arm" in column.lower().split("_") for column in rows[0])
    assert {r["randomization_number"] for r in rows if r["participant_id"] == "TWH-004"} == {
        number}
    assert not arm_words(files["outcomes.csv"].read_text())
    page.context.close()


def test_a_page_of_another_site_cannot_open_the_app(browser: Browser, proxied: Served,
                                                    demo_db: Path) -> None:
    page, _ = signed_in(browser, proxied, "iris", demo_db)  # the victim is signed in
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
