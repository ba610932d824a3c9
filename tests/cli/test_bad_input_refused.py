"""Inputs that used to end in a traceback (issue 12, finding 10): each now gets one clear
message and exit status 2 and writes nothing; a full disk is exit 1 "disk full".

The protocol bounds are what a clinical trial can plausibly hold (a site's target of
10^23 participants, a block of 4e18, a screen locking after 190 years are typos)."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN, KETHEAD, PASSWORD
from tests.unit.test_protocol import refusal, variant
from trialkit.domain.errors import DiskFull, InvalidInput, write_failed

TIMEOUT_S = 120


def trialkit(folder: Path, *args: str, user: str | None = None, code: str | None = None,
             ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    env |= {"TRIALKIT_PASSWORD": PASSWORD, "TRIALKIT_NEW_PASSWORD": PASSWORD}
    if code:
        env["TRIALKIT_ENROLMENT_CODE"] = code
    if user:
        env["TRIALKIT_USER"] = user
    return subprocess.run([sys.executable, "-m", "trialkit", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S,
                          stdin=subprocess.DEVNULL)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def actions(db: Path) -> list[str]:
    """The audit trail's actions, in order: a refused step may add its sign-in, no more."""
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT action FROM audit_event ORDER BY seq")]


def one_line(shown: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert shown.returncode == code, shown.stderr
    lines = shown.stderr.strip().splitlines()
    assert len(lines) == 1, shown.stderr
    assert "Traceback" not in shown.stderr
    return lines[0]


# --- protocol values ------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new", "field"), [
    ("target = 60", "target = 100000000000000000000000", "sites[0].target"),
    ("block_sizes = [4, 6]", "block_sizes = [4, 4000000000000000000]",
     "allocation.block_sizes"),
    ("idle_lock_minutes = 5", "idle_lock_minutes = 100000000", "ui.idle_lock_minutes"),
    ("idle_lock_minutes = 5", "idle_lock_minutes = 0", "ui.idle_lock_minutes"),
    ("window_days = 28", "window_days = 1000000", "diary.window_days"),
    ("expiry_hours = 24", "expiry_hours = 100000", "dosing.expiry_hours"),
    ('product = "Ketamine or placebo"', 'product = "Ketamine 10 mg/mL"', "labels.product"),
    ('product = "Ketamine or placebo"', 'product = "Saline"', "labels.product"),
    ('caution = "For clinical trial use only"', 'caution = "Contains ketamine"',
     "labels.caution"),
])
def test_an_implausible_protocol_value_is_refused_naming_its_field(
    tmp_path: Path, old: str, new: str, field: str
) -> None:
    if old.startswith("target"):
        old = next(line for line in KETHEAD.read_text().splitlines()
                   if line.startswith("target = "))
    assert field in refusal(variant(tmp_path, (old, new)))


def test_a_label_naming_every_arm_alike_is_accepted(tmp_path: Path) -> None:
    from trialkit.domain.protocol import load_protocol

    for product in ("Ketamine or placebo", "Placebo or ketamine (saline)", "Study drug"):
        load_protocol(variant(tmp_path, ('product = "Ketamine or placebo"',
                                         f'product = "{product}"')))


def test_init_with_an_implausible_protocol_writes_no_database(tmp_path: Path) -> None:
    target = next(line for line in KETHEAD.read_text().splitlines()
                  if line.startswith("target = "))
    bad = variant(tmp_path, (target, "target = 100000000000000000000000"))
    shown = trialkit(tmp_path, "--db", "t.db", "init", str(bad), "--admin", ADMIN)
    assert "sites[0].target" in one_line(shown)
    assert not (tmp_path / "t.db").exists()


# --- the database ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-input")
    shown = trialkit(folder, "--db", "t.db", "init", str(KETHEAD), "--admin", ADMIN)
    assert shown.returncode == 0, shown.stderr
    return folder


def test_seal_with_a_huge_block_size_is_refused_at_once(trial: Path) -> None:
    before = actions(trial / "t.db")
    started = time.monotonic()
    shown = trialkit(trial, "--db", "t.db", "seal", "--per-stratum", "4", "--block-sizes",
                     "2000000000", user=ADMIN)
    assert "block size 2000000000 is larger than 100" in one_line(shown)
    assert time.monotonic() - started < 30
    assert actions(trial / "t.db") == [*before, "login"]


@pytest.mark.parametrize("content", [b"not a database at all\n" * 40,
                                     bytes(range(256)) * 32], ids=["text", "binary"])
def test_a_db_file_that_is_not_sqlite_is_one_line(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "x.db").write_bytes(content)
    for args in (["audit", "verify"], ["init", str(KETHEAD), "--admin", ADMIN]):
        shown = trialkit(tmp_path, "--db", "x.db", *args, user=ADMIN)
        assert "not a database" in one_line(shown)
        assert (tmp_path / "x.db").read_bytes() == content


def test_init_refuses_a_database_holding_another_applications_tables(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
    before = digest(tmp_path / "shop.db")
    shown = trialkit(tmp_path, "--db", "shop.db", "init", str(KETHEAD), "--admin", ADMIN)
    assert "tables trialkit does not know (customers)" in one_line(shown)
    assert digest(tmp_path / "shop.db") == before


# --- diary files ----------------------------------------------------------------------------

HEADER = "participant_id,date,headache,severity,duration_hours,acute_medication\n"


def test_a_csv_value_over_128_kib_is_one_problem(trial: Path) -> None:
    (trial / "huge.csv").write_text(HEADER + "TWH-001,2026-03-01,yes,\"" + "x" * 200_000
                                    + "\",4,no\n", encoding="utf-8")
    _ensure_cora(trial)
    before = actions(trial / "t.db")
    shown = _as_coordinator(trial, "huge.csv")
    assert shown.returncode == 2, shown.stderr
    assert "Traceback" not in shown.stderr
    assert "field larger than field limit" in shown.stderr
    assert "1 problem" in shown.stderr
    assert actions(trial / "t.db") == [*before, "login"]


def enrol(folder: Path, name: str, *options: str) -> str:
    """Add a user as the admin and activate the account as its owner would; what the
    activation printed."""
    import json
    added = trialkit(folder, "--db", "t.db", "--json", "user", "add", name, *options, user=ADMIN)
    assert added.returncode == 0, added.stderr
    code = json.loads(added.stdout)["enrolment_code"]
    done = trialkit(folder, "--db", "t.db", "user", "activate", name, code=code)
    assert done.returncode == 0, done.stderr
    return done.stdout


def approved_pharmacist(folder: Path, name: str) -> None:
    """Add a pharmacist whom an investigator (iris) approves with the fingerprint read out."""
    enrol(folder, "iris", "--role", "investigator")
    shown = enrol(folder, name, "--role", "pharmacist")
    read_out = re.search(r"Your custodian key: ([0-9a-f]{4}(?: [0-9a-f]{4}){3})", shown)
    assert read_out is not None, shown
    done = trialkit(folder, "--db", "t.db", "custodian", "approve", name, "--fingerprint",
                    read_out[1], user="iris")
    assert done.returncode == 0, done.stderr


def _ensure_cora(trial: Path) -> None:
    if not (trial / ".cora").exists():
        enrol(trial, "cora", "--role", "coordinator", "--site", "TWH")
        (trial / ".cora").touch()


def _as_coordinator(trial: Path, csv: str) -> subprocess.CompletedProcess[str]:
    return trialkit(trial, "--db", "t.db", "diary", "import", csv, user="cora")


def test_a_million_bad_rows_list_the_first_hundred_problems_and_the_total(trial: Path) -> None:
    rows = 1_000_000
    with (trial / "bad.csv").open("w", encoding="utf-8") as out:
        out.write(HEADER)
        # one fault a row, which needs no participant to exist: a value missing
        out.writelines("TWH-001,2026-03-01,yes,moderate,4\n" for _ in range(rows))
    _ensure_cora(trial)
    before = actions(trial / "t.db")
    shown = _as_coordinator(trial, "bad.csv")
    assert shown.returncode == 2, shown.stderr[-2000:]
    lines = shown.stderr.strip().splitlines()
    assert f"{rows} problems" in lines[0]
    listed = [line for line in lines if line.strip().startswith("line ")]
    assert len(listed) == 100
    assert listed[0].strip().startswith("line 2:") and listed[-1].strip().startswith("line 101:")
    assert f"and {rows - 100} more" in lines[-1]
    assert actions(trial / "t.db") == [*before, "login"]


# --- a full disk ----------------------------------------------------------------------------


def test_a_full_database_disk_is_refused_as_disk_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The database's disk fills while sealing: SQLite's own SQLITE_FULL (its page limit
    set to the file's size, as a full disk would stop it growing)."""
    shown = trialkit(tmp_path, "--db", "t.db", "init", str(KETHEAD), "--admin", ADMIN)
    assert shown.returncode == 0, shown.stderr
    approved_pharmacist(tmp_path, "phil")
    before = digest(tmp_path / "t.db")
    from trialkit import __main__ as entry
    from trialkit.store import db

    real = db._sqlite_on_connect

    def full_disk(dbapi_conn: Any, record: Any) -> None:
        real(dbapi_conn, record)
        pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    monkeypatch.setattr(db, "_sqlite_on_connect", full_disk)
    monkeypatch.setattr(sys, "argv", ["trialkit", "--db", str(tmp_path / "t.db"), "--user",
                                      ADMIN, "seal", "--per-stratum", "2000"])
    monkeypatch.setenv("TRIALKIT_PASSWORD", PASSWORD)
    with pytest.raises(SystemExit) as exit_:
        entry.main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Refused: disk full"), err
    monkeypatch.undo()
    assert digest(tmp_path / "t.db") == before or _same_trail(tmp_path / "t.db")


def _same_trail(path: Path) -> bool:
    # The WAL may have been checkpointed into the file: compare what it holds instead.
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM allocation_list").fetchone()[0] == 0


def test_a_full_disk_for_a_file_is_disk_full_and_other_failures_name_the_file() -> None:
    full = write_failed(OSError(28, "No space left on device"), "labels.pdf")
    assert isinstance(full, DiskFull) and full.exit_code == 1
    assert full.message.startswith("disk full: cannot write labels.pdf")
    other = write_failed(PermissionError(13, "Permission denied"), "labels.pdf")
    assert isinstance(other, InvalidInput) and "Permission denied" in other.message
