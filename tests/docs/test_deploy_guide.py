"""docs/deploy.md followed step by step, from a new database on the test's PostgreSQL
server: every command of its `sh` blocks runs as written, in order, read from the page
itself (so the guide cannot drift from what works). Only these are the test's own: the
server's address for `HOST`, unique names for the database and the two roles (the server is
shared), a folder of its own for `/backup`, a free port for `serve`, and the secrets a
person would type at the prompts (given in the environment). The SQL comes from
docs/security.md, split into `roles.sql` and `grants.sql` as the guide says. A line the test
cannot run (systemd, pip) must be in NOT_RUN with the reason, so a new line is run or
named. Everything it creates is dropped at the end (autovacuum is off)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from tests.cli.test_backup import at_revision, sample
from tests.conftest import PASSWORD as CONFTEST_PASSWORD
from tests.conftest import PG_URL
from tests.web.served import free_port, wait_for
from trialkit.store import schema
from trialkit.store.db import normalize_url

__all__ = ["sample"]  # the fixture (tests/cli/test_backup.py): a trial at today's schema

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "deploy.md"
SECURITY = ROOT / "docs" / "security.md"
PASSWORD = "lantern-quarry-mosaic-47"  # what alice, cora and sam choose
BIN = Path(sys.executable).parent

# Lines of the guide a test cannot run, and why; every other line runs.
NOT_RUN = {
    "systemctl stop trialkit-serve": "the test starts and stops serve itself",
    "systemctl start trialkit-serve": "the test starts and stops serve itself",
    "pip install --upgrade trialkit": "the installed trialkit is the release under test",
}


def sh_blocks(markdown: str) -> list[tuple[str, list[str]]]:
    """Every ```sh block of the page as (its section's heading, its command lines): a
    continued line (a trailing backslash) joined, comments and blank lines left out."""
    found = []
    heading = ""
    for part in re.split(r"(^## .*$)", markdown, flags=re.MULTILINE):
        if part.startswith("## "):
            heading = part[3:]
            continue
        for body in re.findall(r"^ *```sh\n(.*?)^ *```", part, flags=re.DOTALL | re.MULTILINE):
            joined = re.sub(r"\\\n\s*", "", body)
            # a trailing comment is a note to the reader
            lines = [re.sub(r"\s+#.*$", "", line.strip()) for line in joined.splitlines()]
            found.append((heading, [x for x in lines if x and not x.startswith("#")]))
    return found


def security_sql() -> tuple[str, str]:
    """docs/security.md's SQL: the superuser's part (roles, schema) and the grants."""
    [sql] = re.findall(r"```sql\n(.*?)```", SECURITY.read_text(), flags=re.DOTALL)
    roles, grants = sql.split("-- as trialkit_owner", 1)
    return roles, "-- as trialkit_owner" + grants


@dataclass
class Walk:
    """One site's walk through the guide: names, folder, environment."""

    folder: Path
    host: str
    port: int
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    env: dict[str, str] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    outputs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def db(self) -> str:
        return f"kethead_{self.tag}"

    @property
    def owner(self) -> str:
        return f"trialkit_owner_{self.tag}"

    @property
    def runtime(self) -> str:
        return f"trialkit_app_{self.tag}"

    def ours(self, line: str) -> str:
        """The guide's line with this walk's names."""
        line = line.replace("trialkit_owner", self.owner).replace("trialkit_app", self.runtime)
        line = line.replace("kethead_drill", f"{self.db}_drill")
        line = re.sub(r"\bkethead\b(?![-./])", self.db, line)
        line = line.replace("@HOST/", f"@{self.host}:{self.port}/").replace("-h HOST",
                                                                         f"-h {self.host}")
        return re.sub(r"(?<=\s)/backup\b", f"{self.folder}/backup", line)

    def run(self, line: str, *, stdin: str = "", terminal: bool = False,
            extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **(extra or {})}
        if terminal:  # a person at a terminal: stdin is one, answers typed into it
            primary, secondary = os.openpty()
            try:
                proc = subprocess.Popen(["sh", "-c", line], stdin=secondary, cwd=self.folder,
                                        env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                os.write(primary, stdin.encode())
                out, err = proc.communicate(timeout=300)
            finally:
                os.close(secondary)
                os.close(primary)
            done = subprocess.CompletedProcess(line, proc.returncode, out, err)
        else:
            done = subprocess.run(["sh", "-c", line], cwd=self.folder, env=env, input=stdin,
                                  capture_output=True, text=True, timeout=300, check=False)
        self.outputs.append((line, done.stdout + done.stderr))
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
        return done


@pytest.fixture
def walk(tmp_path: Path) -> Iterator[Walk]:
    if PG_URL is None:
        pytest.skip("the guide is for PostgreSQL: set TRIALKIT_TEST_PG_URL")
    url = make_url(normalize_url(PG_URL))
    w = Walk(tmp_path, url.host or "127.0.0.1", url.port or 5432)
    (tmp_path / "backup").mkdir()
    shutil.copytree(ROOT / "protocols", tmp_path / "protocols")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("TRIALKIT_", "PG"))}
    w.env = {**keep, "PATH": f"{BIN}{os.pathsep}{keep.get('PATH', '')}",
             "PGPORT": str(w.port), "PGCONNECT_TIMEOUT": "10"}
    roles, grants = security_sql()
    (tmp_path / "roles.sql").write_text(w.ours(roles))
    (tmp_path / "grants.sql").write_text(w.ours(grants))
    superuser = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        yield w
    finally:
        with superuser.connect() as conn:
            for db in (f"{w.db}_drill", w.db):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            for role in (w.runtime, w.owner):
                conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        superuser.dispose()


def started(walk: Walk, line: str) -> tuple[subprocess.Popen[str], int]:
    """`serve` as the guide starts it, on a free port instead of 8000."""
    port = free_port()
    assert "--port 8000" in line
    proc = subprocess.Popen(shlex.split(line.replace("--port 8000", f"--port {port}")),
                            cwd=walk.folder, env=walk.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("trialkit serve: https://trials.example.org/"), (
        first, proc.stderr.read() if proc.stderr else "")
    return proc, port


def signs_in_through_serve(port: int, public: str, name: str) -> None:
    """A browser at the site signs ``name`` in through `serve` (as nginx forwards it: the
    public Host, the public Origin) and opens the app, which records session.open."""
    import asyncio

    import aiohttp
    import pyte

    async def attempt() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            host = public.split("/")[2]
            origin = "https://" + host
            page = await http.get(f"http://127.0.0.1:{port}/signin", headers={"Host": host})
            assert page.status == 200  # section 8: the sign-in page answers 200
            r = await http.post(f"http://127.0.0.1:{port}/signin", allow_redirects=False,
                                data={"name": name, "password": PASSWORD},
                                headers={"Host": host, "Origin": origin})
            assert r.status == 303, await r.text()
            cookie = r.headers["Set-Cookie"].split(";")[0]
            ws = await http.ws_connect(f"http://127.0.0.1:{port}/ws?width=100&height=30",
                                       headers={"Host": host, "Origin": origin,
                                                "Cookie": cookie})
            screen = pyte.Screen(100, 30)
            stream = pyte.ByteStream(screen)
            while not all(w in "\n".join(screen.display) for w in (name, "Role: coordinator")):
                message = await asyncio.wait_for(ws.receive(), timeout=90)
                assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), \
                    "\n".join(screen.display)
                if message.type == aiohttp.WSMsgType.BINARY:
                    stream.feed(message.data)
            await ws.close()

    asyncio.run(attempt())


def activates_in_the_browser(port: int, public: str, name: str, code: str) -> None:
    """The sign-in page's "First sign-in?" link, then the form, as nginx forwards them."""
    import asyncio

    import aiohttp

    async def attempt() -> None:
        host = public.split("/")[2]
        headers = {"Host": host, "Origin": "https://" + host}
        async with aiohttp.ClientSession() as http:
            page = await (await http.get(f"http://127.0.0.1:{port}/signin",
                                         headers={"Host": host})).text()
            assert f'href="{public}/activate"' in page, page
            r = await http.post(f"http://127.0.0.1:{port}/activate", headers=headers,
                                data={"name": name, "code": code, "password": PASSWORD,
                                      "again": PASSWORD})
            assert r.status == 200 and f"Activated {name}" in await r.text()

    asyncio.run(attempt())


def audit_actions(walk: Walk) -> list[tuple[str, str | None]]:
    """The trail's (action, user) in order, read by SQL as the superuser."""
    assert PG_URL is not None
    url = make_url(normalize_url(PG_URL)).set(database=walk.db)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [(a, u) for a, u in conn.execute(text(
                "SELECT action, user_name FROM trialkit.audit_event ORDER BY seq"))]
    finally:
        engine.dispose()


def test_the_deployment_guide_step_by_step(walk: Walk) -> None:
    blocks = sh_blocks(GUIDE.read_text())
    sections = [heading for heading, _ in blocks]
    assert sections == [
        "2. PostgreSQL roles", "2. PostgreSQL roles", "3. TLS to PostgreSQL",
        "4. Where `serve` runs, and nginx in front", "5. Backups", "5. Backups", "6. Restore",
        "7. Upgrades", "8. What to monitor"], sections
    # before anything runs: the lines not run are exactly those named, each once
    assert sorted(x for _, lines in blocks for x in lines if x in NOT_RUN) == sorted(NOT_RUN)
    heads: list[str] = []
    for _heading, lines in blocks:
        for line in lines:
            if line in NOT_RUN:
                continue
            ours = walk.ours(line)
            if line.startswith("export "):
                name, _, value = shlex.split(ours[len("export "):])[0].partition("=")
                walk.env[name] = value
                if "sslmode=verify-full" in value:
                    # trialkit hands the TLS settings to libpq: the test's server has no
                    # certificate, so libpq refuses rather than connect without checking it
                    done = subprocess.run(["trialkit", "audit", "verify"], cwd=walk.folder,
                                          env=walk.env, capture_output=True, text=True,
                                          timeout=120, check=False)
                    assert done.returncode == 2 and re.search(
                        r"SSL|root certificate", done.stderr), done.stderr
                    walk.env[name] = value.split("?")[0]
                continue
            if line.startswith("trialkit serve"):
                serve_and_sign_in_at_both_sites(walk, ours)
                continue
            if re.match(r"^[0-9*]", line):  # a crontab line: minute hour day month weekday user
                ours = ours.split(None, 6)[6]
                ours = ours.replace("\\%", "%")
                if "-delete" in ours:
                    old_dumps(walk)
            if line.startswith("trialkit restore-check /backup/kethead-2026-03-02.dump"):
                [tonight] = [p for p in (walk.folder / "backup").glob("kethead-*.dump")
                             if re.fullmatch(r"kethead-\d{4}-\d\d-\d\d\.dump", p.name)
                             and p.name.endswith(f"{today().isoformat()}.dump")]
                ours = ours.replace(f"{walk.folder}/backup/kethead-2026-03-02.dump",
                                    str(tonight))
            if "HEAD" in line:
                ours = ours.replace("HEAD", heads[-1])
            done = walk.run(ours, **secrets_for(walk, line))
            if line.startswith("trialkit --user alice user add"):
                name = line.split()[5]
                [code] = re.findall(r"One-time enrolment code for \w+: (\S+)", done.stdout)
                walk.codes[name] = code
            heads += re.findall(r"chain head ([0-9a-f]{16})", done.stdout)
            after_line(walk, line, done.stdout + done.stderr)


def secrets_for(walk: Walk, line: str, password: str = PASSWORD) -> dict[str, object]:
    """What a person would type at the line's prompts, given in the environment (and a
    terminal where the command asks to confirm)."""
    if " init " in line:
        return {"extra": {"TRIALKIT_NEW_PASSWORD": password}}
    if "user activate" in line:
        name = line.split()[-1]
        return {"extra": {"TRIALKIT_ENROLMENT_CODE": walk.codes[name],
                          "TRIALKIT_NEW_PASSWORD": PASSWORD}}
    if "db upgrade" in line:
        return {"extra": {"TRIALKIT_PASSWORD": password}, "terminal": True, "stdin": "y\n"}
    if "--user alice" in line:
        return {"extra": {"TRIALKIT_PASSWORD": password}}
    return {}


# The retention of section 5, seen on files of known ages (days before today): a nightly
# dump is kept 14 days, the first of a month 12 months.
AGES = {"recent": 3, "old": 20, "month": 100, "year_old_month": 400}


def today() -> date:
    """The server's local date, as `date +%F` in the crontab names the dump."""
    return datetime.now().astimezone().date()


def old_dumps(walk: Walk) -> None:
    now = today()
    for what, days in AGES.items():
        day = now - timedelta(days=days)
        if what in ("month", "year_old_month"):
            day = day.replace(day=1)
        elif day.day == 1:
            day -= timedelta(days=1)
        path = walk.folder / "backup" / f"kethead-{day.isoformat()}.dump"
        path.write_bytes(b"PGDMP old")
        stamp = time.time() - (now - day).days * 86400 - 3600
        os.utime(path, (stamp, stamp))
        walk.codes[f"dump:{what}"] = path.name


def after_line(walk: Walk, line: str, said: str) -> None:
    """What each step must have done, checked outside trialkit (SQL as the superuser, the
    files on disk), beyond its exit status 0."""
    if " init " in line:
        assert list(walk.folder.glob("KETHEAD-recovery-sheet-*.pdf")), said
        assert audit_actions(walk)[0] == ("user.add", "alice")
    elif line.startswith("trialkit user activate"):
        name = line.split()[-1]
        assert ("user.activate", name) in audit_actions(walk), said
    elif "-delete" in line:
        left = {p.name for p in (walk.folder / "backup").iterdir()}
        kept = {walk.codes["dump:recent"], walk.codes["dump:month"]}
        gone = {walk.codes["dump:old"], walk.codes["dump:year_old_month"]}
        assert kept <= left and not gone & left, left
    elif "pg_dump -Fc" in line:
        [dump] = (walk.folder / "backup").glob(f"kethead-{today().isoformat()}.dump")
        assert dump.read_bytes().startswith(b"PGDMP")
    elif line.startswith("trialkit --user alice backup"):
        assert audit_actions(walk)[-1] == ("db.backup", "alice")
    elif line.startswith("trialkit restore-check"):
        assert said.startswith("OK: ") and "lists verified" in said, said
    elif "db upgrade" in line:
        assert "Database schema is at" in said or "Upgraded" in said, said
    elif line.startswith("trialkit audit verify"):
        assert said.startswith("OK: "), said


def serve_and_sign_in_at_both_sites(walk: Walk, line: str) -> None:
    """Section 4's `serve`, as the runtime role (DML only): sam, at the second site, activates
    his account on its page (section 2); cora at Toronto Western and sam at Sinai each sign
    in through it and their app opens (login, session.open)."""
    proc, port = started(walk, line)
    try:
        public = line.split("--public-url ")[1].split()[0]
        activates_in_the_browser(port, public, "sam", walk.codes["sam"])
        assert ("user.activate", "sam") in audit_actions(walk)
        for name in ("cora", "sam"):
            signs_in_through_serve(port, public, name)
            wait_for(lambda n=name: ("session.open", n) in audit_actions(walk), timeout=90)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    opened = [u for a, u in audit_actions(walk) if a == "session.open"]
    assert opened == ["cora", "sam"], opened


# The sample's trail (copied into the earlier schema) names each user's signing key, so it
# is faithful only to schemas that keep those keys (0009 on): 0009 is before signed events
# (the upgrade marks where signing began), the previous release is the newest before today.
@pytest.mark.parametrize("revision", ["0009", schema.KNOWN_REVISIONS[-2]])
def test_the_guides_upgrade_from_an_earlier_release_with_its_two_roles(
        walk: Walk, revision: str, sample: Engine) -> None:
    """Section 7 on a database an earlier release made, set up as section 2 says (the
    owner's schema, the runtime role's grants): the owner upgrades it as written, at a
    terminal; the runtime role then works on the new schema and the trail verifies."""
    [roles_block, _, _, _, _, _, _, upgrade_block, _] = [lines for _, lines in
                                                         sh_blocks(GUIDE.read_text())]
    for line in roles_block:
        if " init " in line:  # the earlier release's init: its schema, the sample's rows
            owner = f"postgresql+psycopg://{walk.owner}@{walk.host}:{walk.port}/{walk.db}"
            at_revision(owner, revision, sample)
            # the rows came with their ids: move each id sequence past them, as the
            # earlier release's own inserts would have
            engine = create_engine(owner)
            with engine.begin() as conn:
                for table, column, sequence in conn.execute(text(
                        "SELECT c.table_name, c.column_name, "
                        "pg_get_serial_sequence('trialkit.' || c.table_name, c.column_name) "
                        "FROM information_schema.columns c WHERE c.table_schema = 'trialkit'")):
                    if sequence is not None:
                        conn.execute(text(f"SELECT setval('{sequence}', coalesce((SELECT "
                                          f"max({column}) FROM trialkit.{table}), 0) + 1, "
                                          "false)"))
            engine.dispose()
            continue
        walk.run(walk.ours(line))
    before = audit_actions(walk)
    for line in upgrade_block:
        if line not in NOT_RUN:
            done = walk.run(walk.ours(line), **secrets_for(walk, line, CONFTEST_PASSWORD))
            if "db upgrade" in line:
                assert f"from {revision}" in done.stdout or revision in done.stdout, done.stdout
    after = audit_actions(walk)
    assert after[: len(before)] == before
    # the upgrade across 0011 (signed events) marks where signing began
    marker = [("audit.signing_begins", "system")] if revision < "0011" else []
    assert after[len(before):] == [*marker, ("login", "alice"), ("db.upgrade", "alice")]
    # the runtime role (DML only) on the new schema: the admin signs in and adds someone
    # (a row in the upgraded user table, an audit event), and the trail verifies
    walk.env["TRIALKIT_DB"] = f"postgresql://{walk.runtime}@{walk.host}:{walk.port}/{walk.db}"
    walk.run("trialkit --user alice user add nina --role monitor",
             extra={"TRIALKIT_PASSWORD": CONFTEST_PASSWORD})
    assert audit_actions(walk)[-2:] == [("login", "alice"), ("user.add", "alice")]
    assert walk.run("trialkit audit verify").stdout.startswith("OK: ")
