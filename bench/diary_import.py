"""Diary rows per second imported by ``trialkit diary import``, against sqlite3 executemany
of the same rows.

Run with the project's interpreter:  .venv/bin/python bench/diary_import.py [--rows N]

Set-up (not timed): a KetHead trial in a temporary SQLite file, with enough participants
screened and consented (through the real services) for N rows of 80 diary days each, and a
CSV file of those N rows (headache days, severities, durations, acute medication: varied, valid).

Each round starts from two fresh copies of that database and times, alternately:

- the service: ``import_diary`` in ``transaction(engine)`` on the CSV bytes, as the CLI
  calls it: decoding, parsing and checking every row (participant, site, dates, values,
  duplicates, days already recorded), inserting the rows, one hash-chained audit event per
  diary day plus one for the file, and the commit;
- the raw baseline: Python's sqlite3 ``executemany`` of the same rows, already parsed, into
  the same ``diary_entry`` table (same indexes, foreign keys on, WAL, synchronous=FULL, as
  trialkit opens SQLite), in one transaction.

Goal: the service at least 0.3x the raw rate (ratio of the medians). With ``--pg`` the
script also imports the same file once into PostgreSQL (URL from TRIALKIT_TEST_PG_URL or
the local default, in a fresh schema dropped at the end), for information. After the rounds the
script checks the last import: N rows stored, N + 1 audit events added, ``audit verify``
passing (timed too, for information). Exit status 1 only if that check fails; the ratio is
reported, never enforced."""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, func, text
from sqlmodel import select

from trialkit.demo import add_activated_user
from trialkit.domain.clock import FixedClock
from trialkit.domain.eligibility import answered_criteria
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.sign_in import login
from trialkit.services.diary.file_import import import_diary
from trialkit.services.enrolment.participants import consent, screen
from trialkit.services.integrity import verification
from trialkit.store.db import make_engine, normalize_url, read_only, transaction
from trialkit.store.models import AuditEvent, DiaryEntry

ROOT = Path(__file__).resolve().parents[1]
KETHEAD = ROOT / "protocols" / "kethead.toml"
GOAL = 0.3
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "correct-horse-battery"
DAYS_EACH = 80
SCREENED_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
IMPORT_AT = SCREENED_AT + timedelta(days=DAYS_EACH + 5)
COLUMNS = ("participant_id", "date", "headache", "severity", "duration_hours",
           "acute_medication")
RAW_INSERT = (
    "INSERT INTO diary_entry (participant_id, day, version, headache, severity, "
    "duration_hours, acute_medication, recorded_by, recorded_at, reason, current) "
    "VALUES (?, ?, 1, ?, ?, ?, ?, 'cora', ?, NULL, 1)"
)

Row = tuple[str, str, bool, str, float, bool]


def build_template(url: str, participants: int) -> list[str]:
    """The trial with ``participants`` screened and consented at two sites; their ids."""
    protocol = load_protocol(KETHEAD)
    clock = FixedClock(SCREENED_AT)
    engine = make_engine(url, must_exist=False)
    try:
        initialize(engine, protocol, admin="alice", admin_password=PASSWORD, training=False,
                   clock=clock)
        with transaction(engine) as s:
            admin = login(s, "alice", PASSWORD, clock=clock)
            add_activated_user(s, admin, name="cora", role=Role.COORDINATOR, password=PASSWORD,
                        sites=["TWH", "SHS"], custodian=False, clock=clock)
        with transaction(engine) as s:
            cora = login(s, "cora", PASSWORD, clock=clock)
        answers = {c.id: "yes" if c.kind == "inclusion" else "no"
                   for c in answered_criteria(protocol.protocol)}
        pids: list[str] = []
        for start in range(0, participants, 200):
            with transaction(engine) as s:
                for i in range(start, min(start + 200, participants)):
                    v = screen(s, cora, site=("TWH", "SHS")[i % 2], age=40, sex="F",
                               weight_kg=70.0, factors={"headache_type": ("CM", "CDH")[i % 2]},
                               answers=answers, clock=clock)
                    # the diary starts at consent
                    consent(s, cora, v.id, on=SCREENED_AT.date(),
                            form_version=protocol.protocol.consent.form_versions[-1], clock=clock)
                    pids.append(v.id)
        return pids
    finally:
        engine.dispose()


def diary_rows(pids: list[str], n: int) -> list[Row]:
    """``n`` valid diary days: DAYS_EACH consecutive days per participant."""
    rng = random.Random(20260105)
    first = SCREENED_AT.date()
    rows: list[Row] = []
    for pid in pids:
        for k in range(DAYS_EACH):
            if len(rows) == n:
                return rows
            day = (first + timedelta(days=k)).isoformat()
            if rng.random() < 0.6:
                rows.append((pid, day, True, rng.choice(("mild", "moderate", "severe")),
                             float(rng.randint(1, 48)) / 2, rng.random() < 0.3))
            else:
                rows.append((pid, day, False, "none", 0.0, rng.random() < 0.05))
    return rows


def as_csv(rows: list[Row]) -> bytes:
    def yn(value: bool) -> str:
        return "yes" if value else "no"

    lines = [",".join(COLUMNS)]
    for pid, day, headache, severity, hours, acute in rows:
        if headache:
            lines.append(f"{pid},{day},yes,{severity},{hours:g},{yn(acute)}")
        else:
            lines.append(f"{pid},{day},no,,,{yn(acute)}")
    return ("\n".join(lines) + "\n").encode()


def copy_db(template: Path, target: Path) -> None:
    with sqlite3.connect(template) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    sqlite3.connect(target).close()


def raw_insert(path: Path, rows: list[Row]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    at = IMPORT_AT.replace(tzinfo=None).isoformat(sep=" ")
    params = [(pid, day, headache, severity, hours, acute, at)
              for pid, day, headache, severity, hours, acute in rows]
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(RAW_INSERT, params)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


@dataclass
class ServiceRun:
    seconds: float
    url: str


def service_import(url: str, data: bytes, profile: cProfile.Profile | None) -> ServiceRun:
    engine = make_engine(url)
    clock = FixedClock(IMPORT_AT)
    try:
        with transaction(engine) as s:
            cora = login(s, "cora", PASSWORD, clock=clock)
        with read_only(engine) as s:  # warm the connection and the stored protocol
            s.exec(select(func.count()).select_from(DiaryEntry)).one()
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        with transaction(engine) as s:
            import_diary(s, cora, data, source="bench.csv", clock=clock)
        elapsed = time.perf_counter() - started
        if profile is not None:
            profile.disable()
    finally:
        engine.dispose()
    return ServiceRun(elapsed, url)


def check(url: str, rows: int) -> tuple[bool, str]:
    engine = make_engine(url)
    try:
        with read_only(engine) as s:
            stored = s.exec(select(func.count()).select_from(DiaryEntry)).one()
            events = s.exec(select(func.count()).select_from(AuditEvent)
                            .where(AuditEvent.entity == "diary")).one()
            started = time.perf_counter()
            report = verification.verify(s)
            took = time.perf_counter() - started
    finally:
        engine.dispose()
    # One import is one audited batch (diary.import, with the file's checksum and every
    # row it stored), not one event per row.
    ok = stored == rows and events == 1 and report.ok
    return ok, (f"stored {stored} rows, {events} diary audit event(s), audit verify "
                f"{'OK' if report.ok else 'FAILED: ' + str(report.problem)} in {took:.2f} s")


def on_postgresql(participants: int, data: bytes, rows: int) -> tuple[bool, str]:
    """One import of the same file into a fresh PostgreSQL schema: rows/s and the check."""
    base = normalize_url(os.environ.get("TRIALKIT_TEST_PG_URL") or DEFAULT_PG)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    owner = create_engine(base, isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={schema}')}"
    try:
        build_template(url, participants)
        run = service_import(url, data, None)
        ok, said = check(url, rows)
        return ok, f"{rows / run.seconds:,.0f} rows/s ({run.seconds:.2f} s); {said}"
    finally:
        with owner.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        owner.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="profile the last import")
    parser.add_argument("--pg", action="store_true", help="also import once into PostgreSQL")
    args = parser.parse_args(argv)
    participants = -(-args.rows // DAYS_EACH)
    folder = Path(tempfile.mkdtemp(prefix="trialkit-bench-diary-"))
    try:
        started = time.perf_counter()
        template = folder / "template.db"
        pids = build_template(f"sqlite:///{template}", participants)
        rows = diary_rows(pids, args.rows)
        data = as_csv(rows)
        print(f"set-up: {participants} participants screened, {len(rows)} rows "
              f"({len(data) / 1e6:.1f} MB of CSV) in {time.perf_counter() - started:.1f} s")
        raw_s: list[float] = []
        service_s: list[float] = []
        last: ServiceRun | None = None
        profile = cProfile.Profile() if args.profile else None
        for r in range(args.rounds):
            a, b = folder / f"raw{r}.db", folder / f"service{r}.db"
            copy_db(template, a)
            copy_db(template, b)
            raw_s.append(raw_insert(a, rows))
            last = service_import(f"sqlite:///{b}", data,
                                  profile if r == args.rounds - 1 else None)
            service_s.append(last.seconds)
            print(f"round {r + 1}: raw {raw_s[-1]:.2f} s, service {service_s[-1]:.2f} s")
        raw_rate = len(rows) / statistics.median(raw_s)
        service_rate = len(rows) / statistics.median(service_s)
        ratio = service_rate / raw_rate
        print(f"raw sqlite3 executemany: {raw_rate:,.0f} rows/s (median of {args.rounds})")
        print(f"trialkit diary import:   {service_rate:,.0f} rows/s (median of {args.rounds})")
        verdict = "meets" if ratio >= GOAL else "BELOW"
        print(f"ratio: {ratio:.2f}x ({verdict} the goal of {GOAL}x)")
        assert last is not None
        ok, said = check(last.url, len(rows))
        print(f"check: {said}")
        if args.pg:
            pg_ok, said = on_postgresql(participants, data, len(rows))
            print(f"PostgreSQL: {said}")
            ok = ok and pg_ok
        if profile is not None:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
        return 0 if ok else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
