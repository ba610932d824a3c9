"""outcomes.csv from ``trialkit export outcomes`` (the service) against a floor: one SQL
aggregate query written with csv.

Run with the project's interpreter:  .venv/bin/python bench/export.py [--rounds N]

Set-up (not timed): a KetHead trial with 20,000 randomized participants (both sites, both
headache types, randomized over two years, all infused the next day; 2 % withdrawn after
their follow-up, 0.5 % emergency-unblinded), each with 112 diary days (the 28 baseline days
and days 1-84 after the infusion: 2.24 M rows, varied headache, severity, duration and
acute medication). The schema comes from trialkit's migrations
(``services.administration.setup.initialize``
creates the trial through ``store.schema``); participants and diary days are bulk-inserted
with the bare driver (sqlite3 executemany, psycopg COPY). The clock is after everyone's last
window. On SQLite a file; on PostgreSQL (URL from TRIALKIT_TEST_PG_URL or the local default)
a fresh schema dropped at the end.

Timed, each in a fresh process, alternating (floor, service) for ``--rounds`` rounds:

- the floor: one SQL query over the bare driver (sqlite3, psycopg) that joins participants
  and their current diary days, puts each day in its window and counts recorded days,
  headache days, moderate/severe days and acute-medication days per participant and window
  (the protocol's rules as SQL), written with ``csv.writer``;
- the service: ``export_table(..., "outcomes", ...)`` in ``transaction(engine)`` as the CLI
  runs it: participants read 500 at a time with their current diary days, outcomes derived
  by ``domain.diary.derive_outcomes``, outcomes.csv, its data dictionary and manifest
  written, the audit event recorded, the commit and the files moved into place.

Goal: the service at most 2x the floor (ratio of the medians) and a peak resident memory of
at most 400 MB for the service process (its peak during the export: VmHWM, reset just
before it; the interpreter and its imports included). Afterwards the script checks that the
service's counts per participant and window equal the floor's: exit status 1 if they differ
or the export fails, never for a ratio or the memory figure."""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
KETHEAD = ROOT / "protocols" / "kethead.toml"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "correct-horse-battery"
GOAL_RATIO = 2.0
GOAL_MB = 400
FIRST_RANDOMIZED = date(2026, 1, 5)
SPREAD_DAYS = 730  # randomizations spread over two years
BUILT_AT = datetime(2025, 11, 1, 9, 0, tzinfo=UTC)
AS_OF = datetime(2028, 6, 1, 9, 0, tzinfo=UTC)  # after every participant's last window
PARTICIPANT_COLUMNS = (
    "id", "site_code", "number", "stratum_code", "factors_json", "age", "sex", "weight_kg",
    "answers_json", "eligible", "failed_json", "screened_at", "screened_by", "consent_date",
    "consent_form_version", "withdrawn_at", "withdrawal_reason", "randomization_number",
    "label_code", "randomized_at", "infusion_date", "unblinded_emergency",
)
DIARY_COLUMNS = (
    "participant_id", "day", "version", "headache", "severity", "duration_hours",
    "acute_medication", "recorded_by", "recorded_at", "reason", "current",
)


# --- building the trial -------------------------------------------------------------------


def participants(n: int) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """Each participant's row and diary rows (deterministic)."""
    rng = random.Random(20260105)
    for i in range(n):
        site = ("TWH", "SHS")[i % 2]
        number = i // 2 + 1
        pid = f"{site}-{number:03d}"
        kind = ("CM", "CDH")[(i // 2) % 2]
        randomized = FIRST_RANDOMIZED + timedelta(days=i * SPREAD_DAYS // n)
        randomized_at = datetime.combine(randomized, datetime.min.time(), UTC) + timedelta(
            hours=10)
        infused = randomized + timedelta(days=1)
        withdrawn = (randomized_at + timedelta(days=100)) if rng.random() < 0.02 else None
        row = (pid, site, number, f"{site}-{kind}", json.dumps({"headache_type": kind}), 40,
               "F", 70.0, "{}", True, "[]", randomized_at - timedelta(days=30), "cora",
               (randomized - timedelta(days=29)).isoformat(), "2.0", withdrawn,
               "moved away" if withdrawn else None, f"R{i + 1:05d}", f"BNCH-{i:05d}",
               randomized_at, infused.isoformat(), rng.random() < 0.005)
        days = [randomized + timedelta(days=k) for k in range(-28, 0)]
        days += [infused + timedelta(days=k) for k in range(1, 85)]
        diary = []
        for d in days:
            if rng.random() < 0.55:
                diary.append((pid, d.isoformat(), 1, True,
                              rng.choice(("mild", "moderate", "severe")),
                              rng.randint(1, 48) / 2, rng.random() < 0.3, "cora",
                              randomized_at, None, True))
            else:
                diary.append((pid, d.isoformat(), 1, False, "none", 0.0, rng.random() < 0.05,
                              "cora", randomized_at, None, True))
        yield row, diary


def create_trial(url: str) -> None:
    from trialkit.demo import add_activated_user
    from trialkit.domain.clock import FixedClock
    from trialkit.domain.protocol import load_protocol
    from trialkit.domain.roles import Role
    from trialkit.services.administration.setup import initialize
    from trialkit.services.administration.sign_in import login
    from trialkit.store.db import make_engine, transaction

    clock = FixedClock(BUILT_AT)
    engine = make_engine(url, must_exist=False)
    try:
        initialize(engine, load_protocol(KETHEAD), admin="alice", admin_password=PASSWORD,
                   training=False, clock=clock)
        with transaction(engine) as s:
            admin = login(s, "alice", PASSWORD, clock=clock)
            add_activated_user(s, admin, name="iris", role=Role.INVESTIGATOR, password=PASSWORD,
                        sites=[], custodian=False, clock=clock)
    finally:
        engine.dispose()


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, datetime):  # as trialkit stores it: UTC without the zone
        return v.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return v


def fill_sqlite(path: Path, n: int) -> int:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # set-up only; trialkit opens it with FULL
    conn.execute("BEGIN")
    p_sql = (f"INSERT INTO participant ({', '.join(PARTICIPANT_COLUMNS)}) "
             f"VALUES ({', '.join('?' * len(PARTICIPANT_COLUMNS))})")
    d_sql = (f"INSERT INTO diary_entry ({', '.join(DIARY_COLUMNS)}) "
             f"VALUES ({', '.join('?' * len(DIARY_COLUMNS))})")
    rows = 0
    people: list[tuple[Any, ...]] = []
    days: list[tuple[Any, ...]] = []
    for row, diary in participants(n):
        people.append(tuple(_sqlite_value(v) for v in row))
        at = _sqlite_value(diary[0][8])  # one participant's days share their entry time
        days += [(*d[:8], at, *d[9:]) for d in diary]
        if len(days) >= 100_000:
            conn.executemany(p_sql, people)
            conn.executemany(d_sql, days)
            rows += len(days)
            people, days = [], []
    conn.executemany(p_sql, people)
    conn.executemany(d_sql, days)
    rows += len(days)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return rows


def fill_postgresql(conninfo: str, n: int) -> int:
    import psycopg

    rows = 0
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY participant ({', '.join(PARTICIPANT_COLUMNS)}) FROM STDIN") as cp:
            for row, _diary in participants(n):
                cp.write_row(row)
        with cur.copy(f"COPY diary_entry ({', '.join(DIARY_COLUMNS)}) FROM STDIN") as cp:
            for _row, diary in participants(n):
                for d in diary:
                    cp.write_row(d)
                rows += len(diary)
        conn.commit()
        cur.execute("ANALYZE")
    return rows


@contextmanager
def pg_schema(base: str) -> Iterator[tuple[str, str]]:
    """A fresh schema: (SQLAlchemy URL, psycopg conninfo), both with its search_path."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from trialkit.store.db import normalize_url

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    owner = create_engine(normalize_url(base), isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = normalize_url(base)
        url += ("&" if "?" in url else "?") + "options=" + quote(f"-csearch_path={schema}")
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
        yield url, conninfo
    finally:
        with owner.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        owner.dispose()


# --- the floor ----------------------------------------------------------------------------


def floor_sql(backend: str) -> str:
    """Per participant and window: recorded, headache, moderate/severe and acute-medication
    days, by the protocol's rules, in one query."""
    from trialkit.domain.protocol import load_protocol

    rules = load_protocol(KETHEAD).protocol.diary
    if backend == "sqlite":
        offset = {"randomization": "julianday(e.day) - julianday(date(p.randomized_at))",
                  "infusion": "julianday(e.day) - julianday(p.infusion_date)"}
    else:
        offset = {"randomization": "e.day::date - (p.randomized_at AT TIME ZONE 'UTC')::date",
                  "infusion": "e.day::date - p.infusion_date::date"}
    windows = "\n".join(f"      WHEN {offset[w.relative_to]} BETWEEN {w.start} AND {w.end} "
                        f"THEN '{w.code}'" for w in rules.windows)
    severe = ", ".join(f"'{level}'" for level in rules.moderate_severe_levels)
    treated = " OR e.acute_medication" if rules.headache_day_if_acute_medication else ""
    return f"""
SELECT participant_id, win, count(*),
  sum(headache_day), sum(severe_day), sum(acute_day)
FROM (
  SELECT e.participant_id,
    CASE WHEN e.headache AND (e.duration_hours >= {rules.headache_day_min_hours}{treated})
      THEN 1 ELSE 0 END AS headache_day,
    CASE WHEN e.headache AND e.severity IN ({severe}) THEN 1 ELSE 0 END AS severe_day,
    CASE WHEN e.acute_medication THEN 1 ELSE 0 END AS acute_day,
    CASE
{windows}
    END AS win
  FROM diary_entry e JOIN participant p ON p.id = e.participant_id
  WHERE e.current AND p.randomization_number IS NOT NULL
) AS d
WHERE win IS NOT NULL
GROUP BY participant_id, win
ORDER BY participant_id, win
"""


def run_floor(backend: str, url: str, out: Path) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    sql = floor_sql(backend)
    target = (str(make_url(url).database) if backend == "sqlite"
              else make_url(url).set(drivername="postgresql").render_as_string(False))
    if backend != "sqlite":
        import psycopg
    started = time.perf_counter()
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if backend == "sqlite":
            conn = sqlite3.connect(target)
            writer.writerows(conn.execute(sql))
            conn.close()
        else:
            with psycopg.connect(target) as pg, pg.cursor() as cur:
                cur.execute(sql)
                writer.writerows(cur)
    return {"seconds": time.perf_counter() - started}


# --- the service --------------------------------------------------------------------------


def memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, from /proc."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak() -> bool:
    """Start the peak (VmHWM) afresh, so it is the export's and not the sign-in's (whose
    password hash takes 19 MiB); False where the kernel cannot."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_service(url: str, out: Path, profile: bool) -> dict[str, Any]:
    from trialkit.domain.clock import FixedClock
    from trialkit.services.administration.sign_in import login
    from trialkit.services.administration.trial import stored_protocol
    from trialkit.services.exports.datasets import ExportFiles, export_table
    from trialkit.store.db import make_engine, read_only, transaction

    clock = FixedClock(AS_OF)
    engine = make_engine(url)
    with transaction(engine) as s:
        iris = login(s, "iris", PASSWORD, clock=clock)
    with read_only(engine) as s:
        stored_protocol(s)
    before = memory_mb("VmRSS")
    fresh = reset_peak()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    files = ExportFiles(out)
    with files:
        with transaction(engine) as s:
            result = export_table(s, iris, "outcomes", files, clock=clock)
        files.publish()
    seconds = time.perf_counter() - started
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(20)
    engine.dispose()
    peak = (memory_mb("VmHWM") if fresh
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"seconds": seconds, "rows": result.rows, "rss_before_mb": before, "peak_mb": peak}


def child(kind: str, backend: str, url: str, out: Path, profile: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--backend", backend, "--url", url,
               "--out", str(out)] + (["--profile"] if profile else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{done.stderr}")
    if profile and kind == "service":
        print(done.stderr)
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


# --- checking and reporting ---------------------------------------------------------------


def check(service_csv: Path, floor_csv: Path) -> tuple[bool, str]:
    """The service's counts per participant and window against the floor's."""
    floor: dict[tuple[str, str], tuple[str, ...]] = {}
    with floor_csv.open(newline="", encoding="utf-8") as f:
        for pid, window, *counts in csv.reader(f):
            floor[(pid, window)] = tuple(counts)
    service: dict[tuple[str, str], tuple[str, ...]] = {}
    rows = 0
    with service_csv.open(newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows += 1
            if r["days_recorded"] != "0":
                service[(r["participant_id"], r["window"])] = (
                    r["days_recorded"], r["headache_days"], r["moderate_severe_days"],
                    r["acute_medication_days"])
    if service != floor:
        wrong = sorted(set(service.items()) ^ set(floor.items()))[:3]
        return False, f"counts differ from the floor, e.g. {wrong}"
    return True, f"{rows:,} rows; counts equal the floor's for all {len(floor):,} windows"


@dataclass
class Result:
    backend: str
    floors: list[float]
    services: list[dict[str, Any]]
    ok: bool
    said: str

    def report(self, diary_rows: int) -> None:
        floor = statistics.median(self.floors)
        service = statistics.median(r["seconds"] for r in self.services)
        peak = max(r["peak_mb"] for r in self.services)
        before = min(r["rss_before_mb"] for r in self.services)
        ratio = service / floor
        print(f"== {self.backend}")
        print(f"  floor (SQL aggregate + csv): median {floor:.2f} s of "
              f"{', '.join(f'{s:.2f}' for s in self.floors)}")
        each = ", ".join(f"{r['seconds']:.2f}" for r in self.services)
        print(f"  export outcomes (service):   median {service:.2f} s of {each} "
              f"({diary_rows / service:,.0f} diary rows/s)")
        verdict = "within" if ratio <= GOAL_RATIO else "OVER"
        print(f"  ratio: {ratio:.2f}x ({verdict} the goal of {GOAL_RATIO:g}x)")
        verdict = "within" if peak <= GOAL_MB else "OVER"
        print(f"  peak memory of the export process: {peak:.0f} MB ({verdict} the goal of "
              f"{GOAL_MB} MB; {before:.0f} MB before the export started)")
        print(f"  check: {'OK' if self.ok else 'FAILED'}: {self.said}")


def bench(backend: str, url: str, folder: Path, rounds: int, profile: bool) -> Result:
    floors: list[float] = []
    services: list[dict[str, Any]] = []
    for r in range(rounds):
        floors.append(child("floor", backend, url, folder / "floor.csv", False)["seconds"])
        last = r == rounds - 1
        services.append(child("service", backend, url, folder / "outcomes.csv",
                              profile and last))
        print(f"  {backend} round {r + 1}: floor {floors[-1]:.2f} s, service "
              f"{services[-1]['seconds']:.2f} s, peak {services[-1]['peak_mb']:.0f} MB",
              flush=True)
    ok, said = check(folder / "outcomes.csv", folder / "floor.csv")
    return Result(backend, floors, services, ok, said)


def build(backend: str, url: str, conninfo: str | None, n: int) -> int:
    started = time.perf_counter()
    create_trial(url)
    if backend == "sqlite":
        from sqlalchemy.engine import make_url

        rows = fill_sqlite(Path(str(make_url(url).database)), n)
    else:
        assert conninfo is not None
        rows = fill_postgresql(conninfo, n)
    print(f"set-up ({backend}): {n:,} randomized participants, {rows:,} diary rows in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--pg-url", default=os.environ.get("TRIALKIT_TEST_PG_URL", DEFAULT_PG))
    parser.add_argument("--profile", action="store_true", help="profile the last export")
    parser.add_argument("--child", choices=("floor", "service"), help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run = run_floor if args.child == "floor" else None
        doc = (run(args.backend, args.url, Path(args.out)) if run is not None
               else run_service(args.url, Path(args.out), args.profile))
        print(json.dumps(doc))
        return 0
    backends = [args.only] if args.only else ["sqlite", "postgresql"]
    results: list[tuple[Result, int]] = []
    folder = Path(tempfile.mkdtemp(prefix="trialkit-bench-export-"))
    try:
        for backend in backends:
            if backend == "sqlite":
                url = f"sqlite:///{folder / 'trial.db'}"
                rows = build(backend, url, None, args.participants)
                results.append((bench(backend, url, folder, args.rounds, args.profile), rows))
            else:
                with pg_schema(args.pg_url) as (url, conninfo):
                    rows = build(backend, url, conninfo, args.participants)
                    results.append((bench(backend, url, folder, args.rounds, args.profile),
                                    rows))
        for result, rows in results:
            result.report(rows)
        return 0 if all(r.ok for r, _rows in results) else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
