"""Randomizations per second with concurrent clients, against a raw-SQL claim loop.

Run with the project's interpreter:  .venv/bin/python bench/randomize.py [--rounds N]

PostgreSQL (16 client processes; URL from TRIALKIT_TEST_PG_URL or the local default, in a
fresh schema dropped at the end) and a SQLite file (4 client processes). Each client signs
in once, waits at a barrier with the others, then randomizes its own consented
participants (each with the baseline diary the randomization gate asks for) back to back
through the real service (``randomize_in_turn``, what the CLI and the TUI call: checks in a
read-only transaction, the claim in a write transaction), spread over KetHead's four strata.

The raw loop, in the same run, does the least a correct claim needs with the same locking
and durability, in plain SQL over the bare driver (psycopg, sqlite3): take the lock (PG: the
same advisory lock, then the stratum row FOR UPDATE; SQLite: BEGIN IMMEDIATE, WAL,
synchronous=FULL), pick the lowest unused envelope of the stratum, bind it, insert a
minimal audit row, commit. Goal: the service at least 0.5x the raw rate.

Afterwards the script counts integrity violations on both sides: an envelope bound twice,
a participant holding other than one envelope, a gap in a stratum's used envelopes,
randomization numbers not R0001..Rn, a missing or extra audit event, ``audit verify``
failing, a client error (a lock timeout, deadlock or serialization failure is one: nothing
is retried). Exit status 1 if any is found; the ratio is reported, never enforced."""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any
from urllib.parse import quote

import equivalent_claim  # noqa: E402  (bench/ is on the path: this script's folder)
import psycopg
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from trialkit.domain.clock import FixedClock
from trialkit.domain.diary import DiaryDay
from trialkit.domain.eligibility import answered_criteria
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services import integrity
from trialkit.services.allocation import seal_lists
from trialkit.services.auth import login
from trialkit.services.diary_import import record_days
from trialkit.services.enrolment import consent, screen
from trialkit.services.randomization import randomize_in_turn
from trialkit.services.setup import initialize
from trialkit.services.users import create_user
from trialkit.store.db import make_engine, normalize_url, read_only, transaction
from trialkit.store.models import AuditEvent, Envelope, Participant

ROOT = Path(__file__).resolve().parents[1]
KETHEAD = ROOT / "protocols" / "kethead.toml"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GOAL = 0.5
PASSWORD = "correct-horse-battery"
STRATA = [("TWH", "CM"), ("TWH", "CDH"), ("SHS", "CM"), ("SHS", "CDH")]
CHAIN_LOCK_KEY = 0x7472_6B61  # the advisory lock trialkit's audit chain uses
START = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)  # screening and consent
BASELINE_DAYS = 24  # diary days the randomization gate asks for, in the 28 days before
RANDOMIZE_AT = START + timedelta(days=BASELINE_DAYS, hours=1)
HEAVY_IMPORTS = [
    "psycopg", "sqlalchemy", "sqlmodel", "trialkit.services.enrolment", "trialkit.services.auth",
    "trialkit.services.integrity", "trialkit.services.setup", "trialkit.services.diary",
    "trialkit.store.db",
]


# --- clients (run in forked processes) --------------------------------------------------------


@dataclass(frozen=True)
class ClientResult:
    done: int
    started: float
    ended: float
    error: str | None


def service_client(url: str, pids: Sequence[str], barrier: Any, out: Any) -> None:
    clock = FixedClock(RANDOMIZE_AT)
    engine = make_engine(url)
    try:
        with transaction(engine) as s:
            actor = login(s, "cora", PASSWORD, clock=clock)
        barrier.wait()
        started, done, error = time.monotonic(), 0, None
        for pid in pids:
            try:
                randomize_in_turn(engine, actor, pid, clock=clock)
            except Exception as exc:  # counted, never retried
                error = f"{pid}: {type(exc).__name__}: {exc}".splitlines()[0]
                break
            done += 1
        out.put(ClientResult(done, started, time.monotonic(), error))
    finally:
        engine.dispose()


def _raw_claim_pg(conn: psycopg.Connection[Any], stratum: str, pid: str) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK_KEY,))
        cur.execute("SELECT code FROM raw_stratum WHERE code = %s FOR UPDATE", (stratum,))
        cur.execute(
            "SELECT id FROM raw_envelope WHERE stratum_code = %s AND participant_id IS NULL "
            "ORDER BY seq LIMIT 1",
            (stratum,),
        )
        row = cur.fetchone()
        if row is None:
            raise RuntimeError(f"stratum {stratum} is exhausted")
        cur.execute(
            "UPDATE raw_envelope SET participant_id = %s, bound_at = now() WHERE id = %s",
            (pid, row[0]),
        )
        cur.execute(
            "INSERT INTO raw_audit (at, action, entity_id) VALUES (now(), %s, %s)",
            ("participant.randomize", pid),
        )


def _raw_claim_sqlite(conn: sqlite3.Connection, stratum: str, pid: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT id FROM raw_envelope WHERE stratum_code = ? AND participant_id IS NULL "
            "ORDER BY seq LIMIT 1",
            (stratum,),
        ).fetchone()
        if row is None:
            raise RuntimeError(f"stratum {stratum} is exhausted")
        now = datetime.now(UTC).isoformat()
        conn.execute(
            "UPDATE raw_envelope SET participant_id = ?, bound_at = ? WHERE id = ?",
            (pid, now, row[0]),
        )
        conn.execute(
            "INSERT INTO raw_audit (at, action, entity_id) VALUES (?, ?, ?)",
            (now, "participant.randomize", pid),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _claim_all(claim: Callable[[str, str], None], closer: Callable[[], None],
               work: Sequence[tuple[str, str]], barrier: Any, out: Any) -> None:
    """Wait for the others, claim every (stratum, pid) back to back, report, close."""
    try:
        barrier.wait()
        started, done, error = time.monotonic(), 0, None
        for stratum, pid in work:
            try:
                claim(stratum, pid)
            except Exception as exc:
                error = f"{pid}: {type(exc).__name__}: {exc}".splitlines()[0]
                break
            done += 1
        out.put(ClientResult(done, started, time.monotonic(), error))
    finally:
        closer()


def raw_client(target: str, work: Sequence[tuple[str, str]], barrier: Any, out: Any) -> None:
    """``target``: a psycopg conninfo, or ``sqlite:PATH``; ``work``: (stratum, pid) pairs."""
    claim: Callable[[str, str], None]
    if target.startswith("sqlite:"):
        lite = sqlite3.connect(target.removeprefix("sqlite:"), isolation_level=None, timeout=30)
        for pragma in ("busy_timeout = 30000", "journal_mode = WAL", "synchronous = FULL",
                       "foreign_keys = ON"):
            lite.execute(f"PRAGMA {pragma}")
        closer: Callable[[], None] = lite.close

        def claim(stratum: str, pid: str) -> None:
            _raw_claim_sqlite(lite, stratum, pid)
    else:
        pg = psycopg.connect(target)
        closer = pg.close

        def claim(stratum: str, pid: str) -> None:
            _raw_claim_pg(pg, stratum, pid)
    _claim_all(claim, closer, work, barrier, out)


def equivalent_client(target: str, payload: str, work: Sequence[tuple[str, str]], barrier: Any,
                      out: Any) -> None:
    """The raw claim with a randomization's own writes (``equivalent_claim.py``);
    ``target``: ``sqlite:PATH`` or a psycopg conninfo of a trialkit database."""
    if target.startswith("sqlite:"):
        claim, closer = equivalent_claim.sqlite_claimer(target.removeprefix("sqlite:"), payload)
    else:
        claim, closer = equivalent_claim.pg_claimer(target, payload)
    _claim_all(claim, closer, work, barrier, out)


def run_clients(
    ctx: ForkServerContext, target: Callable[..., None], args: list[tuple[Any, ...]]
) -> tuple[int, float, list[str]]:
    """Start one process per argument tuple, release them together; (done, seconds, errors)."""
    barrier = ctx.Barrier(len(args))
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, barrier, out)) for a in args]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    results: list[ClientResult] = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    print(f"    clients ready after {min(r.started for r in results) - t0:.1f} s", flush=True)
    errors = [r.error for r in results if r.error]
    errors += [f"client exit status {p.exitcode}" for p in procs if p.exitcode != 0]
    seconds = max(r.ended for r in results) - min(r.started for r in results)
    return sum(r.done for r in results), seconds, errors


# --- the trialkit side --------------------------------------------------------------------------


def prepare_trial(url: str, participants: int) -> list[tuple[str, str]]:
    """A KetHead trial with sealed lists and ``participants`` consented people spread over the
    four strata, each with a baseline diary that lets them be randomized at ``RANDOMIZE_AT``;
    returns (stratum, participant id) pairs."""
    clock = FixedClock(START)
    engine = make_engine(url, must_exist=False)
    try:
        loaded = load_protocol(KETHEAD)
        initialize(engine, loaded, admin="alice", admin_password=PASSWORD, training=False,
                   clock=clock)
        with transaction(engine) as s:
            admin = login(s, "alice", PASSWORD, clock=clock)
        with transaction(engine) as s:
            create_user(s, admin, name="phil", role=Role.PHARMACIST, password=PASSWORD,
                        sites=[], custodian=False, clock=clock)
            create_user(s, admin, name="cora", role=Role.COORDINATOR, password=PASSWORD,
                        sites=["TWH", "SHS"], custodian=False, clock=clock)
        with transaction(engine) as s:
            cora = login(s, "cora", PASSWORD, clock=clock)
            per_stratum = participants // len(STRATA) + 20
            seal_lists(s, admin, per_stratum=per_stratum, block_sizes=None, clock=clock)
        answers = {
            c.id: "yes" if c.kind == "inclusion" else "no"
            for c in answered_criteria(loaded.protocol)
        }
        made: list[tuple[str, str]] = []
        for start in range(0, participants, 100):
            with transaction(engine) as s:
                for i in range(start, min(start + 100, participants)):
                    site, level = STRATA[i % len(STRATA)]
                    v = screen(s, cora, site=site, age=40, sex="F", weight_kg=70.0,
                               factors={"headache_type": level}, answers=answers, clock=clock)
                    consent(s, cora, v.id, on=START.date(), form_version="2.0", clock=clock)
                    made.append((v.stratum, v.id))
        later = FixedClock(RANDOMIZE_AT)
        baseline = [
            DiaryDay(START.date() + timedelta(days=n), headache=True, severity="moderate",
                     duration_hours=6.0, acute_medication=False)
            for n in range(BASELINE_DAYS)
        ]
        for start in range(0, participants, 100):
            with transaction(engine) as s:
                for _, pid in made[start : start + 100]:
                    record_days(s, cora, pid, baseline, clock=later)
        return made
    finally:
        engine.dispose()


def trial_violations(url: str, *, chained: bool = True) -> list[str]:
    """Every broken invariant of the randomizations in a trialkit database (``chained``:
    also ``audit verify``; the equivalent raw claim chains its events its own way)."""
    engine = make_engine(url)
    problems: list[str] = []
    try:
        with read_only(engine) as s:
            bound = s.exec(
                select(Envelope.participant_id, Envelope.stratum_code, Envelope.seq).where(
                    col(Envelope.participant_id).is_not(None)
                )
            ).all()
            numbers = dict(
                s.exec(
                    select(Participant.id, Participant.randomization_number).where(
                        col(Participant.randomization_number).is_not(None)
                    )
                ).all()
            )
            events = Counter(
                s.exec(
                    select(AuditEvent.entity_id).where(
                        AuditEvent.action == "participant.randomize"
                    )
                ).all()
            )
            report = integrity.verify(s) if chained else None
    finally:
        engine.dispose()
    problems += _envelope_violations([(str(p), st, sq) for p, st, sq in bound])
    holders = {str(p) for p, _, _ in bound}
    problems += [f"{pid} has a number but no envelope" for pid in set(numbers) - holders]
    problems += [f"{pid} has an envelope but no number" for pid in holders - set(numbers)]
    values = sorted(str(n) for n in numbers.values())
    if values != [f"R{i:04d}" for i in range(1, len(values) + 1)]:
        problems.append("randomization numbers are not R0001..Rn without gap")
    problems += [f"{pid}: {n} randomize events" for pid, n in events.items() if n != 1]
    problems += [f"{pid}: no randomize event" for pid in holders - set(events)]
    problems += [f"{pid}: randomize event without envelope" for pid in set(events) - holders]
    if report is not None and not report.ok:
        problems.append(f"audit verify: {report.problem}")
    return problems


def _envelope_violations(bound: list[tuple[str, str, int]]) -> list[str]:
    problems = [f"{p} holds {n} envelopes" for p, n in Counter(p for p, _, _ in bound).items()
                if n != 1]
    seqs: dict[str, list[int]] = defaultdict(list)
    for _, stratum, seq in bound:
        seqs[stratum].append(seq)
    for stratum, used in seqs.items():
        if sorted(used) != list(range(1, len(used) + 1)):
            problems.append(f"stratum {stratum}: used envelopes have a gap or a duplicate")
    return problems


# --- the raw side ----------------------------------------------------------------------------

RAW_DDL = [
    "CREATE TABLE raw_stratum (code VARCHAR(64) PRIMARY KEY)",
    """CREATE TABLE raw_envelope (
        id INTEGER PRIMARY KEY,
        stratum_code VARCHAR(64) NOT NULL REFERENCES raw_stratum (code),
        seq INTEGER NOT NULL,
        ciphertext {blob} NOT NULL,
        participant_id VARCHAR(16) UNIQUE,
        bound_at {time},
        UNIQUE (stratum_code, seq))""",
    """CREATE TABLE raw_audit (
        seq {serial} PRIMARY KEY,
        at {time} NOT NULL,
        action VARCHAR(64) NOT NULL,
        entity_id VARCHAR(128) NOT NULL)""",
]


def raw_rows(per_stratum: int) -> list[tuple[int, str, int, bytes]]:
    """Envelope rows for the raw side: ids, stratum, seq and a ciphertext-sized blob."""
    codes = [f"{site}-{level}" for site, level in STRATA]
    return [(i * per_stratum + seq, code, seq, os.urandom(268))
            for i, code in enumerate(codes) for seq in range(1, per_stratum + 1)]


def raw_ddl(kind: str) -> list[str]:
    types = {
        "sqlite": {"blob": "BLOB", "time": "TEXT", "serial": "INTEGER"},
        "postgresql": {"blob": "BYTEA", "time": "TIMESTAMPTZ", "serial": "BIGSERIAL"},
    }[kind]
    return [ddl.format(**types) for ddl in RAW_DDL]


def raw_violations(rows: list[tuple[str, str, int]], audited: list[str], claims: int) -> list[str]:
    problems = _envelope_violations(rows)
    if len(rows) != claims:
        problems.append(f"{len(rows)} envelopes bound for {claims} claims")
    events = Counter(audited)
    holders = {p for p, _, _ in rows}
    if set(events) != holders or any(n != 1 for n in events.values()):
        problems.append("raw audit rows do not match the bound envelopes one to one")
    return problems


# --- backends ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    backend: str
    clients: int
    service: list[tuple[int, float]]  # (randomizations, seconds) per round
    raw: list[tuple[int, float]]  # the minimal raw claim
    equivalent: list[tuple[int, float]]  # the raw claim with a randomization's writes
    violations: list[str]

    @staticmethod
    def rate(runs: list[tuple[int, float]]) -> float:
        return statistics.median(n / s for n, s in runs)


@contextmanager
def pg_schema(base: str) -> Iterator[tuple[str, str]]:
    """A fresh schema: (SQLAlchemy URL, psycopg conninfo), both with its search_path."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = normalize_url(base)
        url += ("&" if "?" in url else "?") + "options=" + quote(f"-csearch_path={schema}")
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
        yield url, conninfo
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    return [list(items[i::parts]) for i in range(parts)]


def bench_backend(ctx: ForkServerContext, backend: str, clients: int, per_client: int,
                  rounds: int, pg_base: str) -> Outcome:
    total = clients * per_client
    rng = random.Random(20261121)
    outcome = Outcome(backend, clients, [], [], [], [])
    with tempfile.TemporaryDirectory(prefix="trialkit-bench-rand-") as tmp:
        if backend == "postgresql":
            trial_cm, raw_cm, eq_cm = pg_schema(pg_base), pg_schema(pg_base), pg_schema(pg_base)
        else:
            trial_cm = _nothing((f"sqlite:///{tmp}/trial.db", ""))
            raw_cm = _nothing(("", f"sqlite:{tmp}/raw.db"))
            eq_cm = _nothing((f"sqlite:///{tmp}/equivalent.db", f"sqlite:{tmp}/equivalent.db"))
        with trial_cm as (trial_url, _), raw_cm as (_, raw_target), eq_cm as (eq_url, eq_target):
            t0 = time.monotonic()
            people = prepare_trial(trial_url, total * rounds)
            eq_people = prepare_trial(eq_url, total * rounds)
            payload = equivalent_claim.snapshot_payload(eq_target)
            per_stratum = total * rounds // len(STRATA) + 20
            _prepare_raw_target(raw_target, per_stratum)
            if backend == "postgresql":
                _settle(pg_base)
            print(f"  prepared {len(people)} consented participants "
                  f"in {time.monotonic() - t0:.1f} s", flush=True)
            raw_people = [(st, f"P{i:05d}") for i, (st, _) in enumerate(people)]
            claims = 0
            for r in range(rounds):
                mine = people[r * total : (r + 1) * total]
                rng.shuffle(mine)
                n, s, errors = run_clients(
                    ctx, service_client, [(trial_url, [p for _, p in part])
                                          for part in split(mine, clients)])
                outcome.service.append((n, s))
                outcome.violations += [f"service client: {e}" for e in errors]
                work = raw_people[r * total : (r + 1) * total]
                rng.shuffle(work)
                n, s, errors = run_clients(
                    ctx, raw_client, [(raw_target, part) for part in split(work, clients)])
                outcome.raw.append((n, s))
                claims += n
                outcome.violations += [f"raw client: {e}" for e in errors]
                work = eq_people[r * total : (r + 1) * total]
                rng.shuffle(work)
                n, s, errors = run_clients(ctx, equivalent_client, [
                    (eq_target, payload, part) for part in split(work, clients)])
                outcome.equivalent.append((n, s))
                outcome.violations += [f"equivalent raw client: {e}" for e in errors]
                print(f"  round {r + 1}: service {outcome.service[-1][1]:.1f} s, "
                      f"raw {outcome.raw[-1][1]:.1f} s, equivalent raw {s:.1f} s", flush=True)
            t0 = time.monotonic()
            outcome.violations += trial_violations(trial_url)
            outcome.violations += _raw_target_violations(raw_target, claims)
            outcome.violations += trial_violations(eq_url, chained=False)
            print(f"  checked in {time.monotonic() - t0:.1f} s", flush=True)
    return outcome


def _settle(base: str) -> None:
    """After the bulk preparation: planner statistics for every table and a checkpoint, so
    that autovacuum and the checkpointer do not land in the first round of one side only."""
    admin = create_engine(normalize_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
        conn.execute(text("CHECKPOINT"))
    admin.dispose()


@contextmanager
def _nothing(value: tuple[str, str]) -> Iterator[tuple[str, str]]:
    yield value


def _prepare_raw_target(target: str, per_stratum: int) -> None:
    strata = [(f"{site}-{level}",) for site, level in STRATA]
    rows = raw_rows(per_stratum)
    insert_envelope = "INSERT INTO raw_envelope (id, stratum_code, seq, ciphertext) VALUES "
    if target.startswith("sqlite:"):
        lite = sqlite3.connect(target.removeprefix("sqlite:"), isolation_level=None)
        lite.execute("PRAGMA journal_mode = WAL")
        lite.execute("BEGIN")
        for ddl in raw_ddl("sqlite"):
            lite.execute(ddl)
        lite.executemany("INSERT INTO raw_stratum (code) VALUES (?)", strata)
        lite.executemany(insert_envelope + "(?, ?, ?, ?)", rows)
        lite.execute("COMMIT")
        lite.close()
        return
    with psycopg.connect(target) as pg, pg.cursor() as cur:
        for ddl in raw_ddl("postgresql"):
            cur.execute(ddl.encode())
        cur.executemany("INSERT INTO raw_stratum (code) VALUES (%s)", strata)
        cur.executemany(insert_envelope + "(%s, %s, %s, %s)", rows)


def _raw_target_violations(target: str, claims: int) -> list[str]:
    envelopes = ("SELECT participant_id, stratum_code, seq FROM raw_envelope "
                 "WHERE participant_id IS NOT NULL")
    audited = "SELECT entity_id FROM raw_audit WHERE action = 'participant.randomize'"
    if target.startswith("sqlite:"):
        lite = sqlite3.connect(target.removeprefix("sqlite:"))
        rows = [tuple(r) for r in lite.execute(envelopes)]
        events = [r[0] for r in lite.execute(audited)]
        check = lite.execute("PRAGMA integrity_check").fetchone()[0]
        lite.close()
        extra = [] if check == "ok" else [f"raw SQLite integrity_check: {check}"]
    else:
        with psycopg.connect(target) as pg:
            rows = [tuple(r) for r in pg.execute(envelopes)]
            events = [r[0] for r in pg.execute(audited)]
        extra = []
    return extra + [f"raw: {p}" for p in raw_violations(rows, events, claims)]


def pg_reachable(base: str) -> str | None:
    try:
        engine = create_engine(normalize_url(base))
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return str(exc).splitlines()[0]


def profile_one_client(backend: str, pg_base: str, n: int = 200) -> None:
    """One client, no contention: wall time per randomization, statements sent, and the
    functions the time goes to (cProfile), on a fresh database of ``backend``."""
    with tempfile.TemporaryDirectory(prefix="trialkit-bench-prof-") as tmp:
        cm = pg_schema(pg_base) if backend == "postgresql" else _nothing(
            (f"sqlite:///{tmp}/trial.db", ""))
        with cm as (url, _):
            people = prepare_trial(url, n * 2)
            clock = FixedClock(RANDOMIZE_AT)
            engine = make_engine(url)
            statements: list[str] = []
            event.listen(engine, "before_cursor_execute",
                         lambda *a: statements.append(str(a[2]).split()[0]))
            with transaction(engine) as s:
                actor = login(s, "cora", PASSWORD, clock=clock)
            plain, profiled = people[:n], people[n:]
            statements.clear()
            start = time.perf_counter()
            for _, pid in plain:
                randomize_in_turn(engine, actor, pid, clock=clock)
            wall = (time.perf_counter() - start) / n
            per_call = Counter(statements)
            profiler = cProfile.Profile()
            profiler.enable()
            for _, pid in profiled:
                randomize_in_turn(engine, actor, pid, clock=clock)
            profiler.disable()
            engine.dispose()
    shown = ", ".join(f"{k} {v / n:g}" for k, v in per_call.most_common())
    print(f"{backend}, one client: {wall * 1000:.2f} ms per randomization (no profiler); "
          f"statements per randomization: {sum(per_call.values()) / n:g} ({shown})")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("TRIALKIT_TEST_PG_URL", DEFAULT_PG))
    parser.add_argument("--pg-clients", type=int, default=16)
    parser.add_argument("--sqlite-clients", type=int, default=4)
    parser.add_argument("--per-client", type=int, default=0,
                        help="randomizations per client per round (default: 400 in all)")
    parser.add_argument("--rounds", type=int, default=3, help="service/raw pairs, alternating")
    parser.add_argument("--only", choices=["postgresql", "sqlite"])
    parser.add_argument("--profile", action="store_true",
                        help="instead: one client under cProfile, per backend")
    args = parser.parse_args()
    if args.profile:
        for backend in ("postgresql", "sqlite"):
            if args.only and backend != args.only:
                continue
            if backend == "postgresql" and pg_reachable(args.pg_url):
                continue
            profile_one_client(backend, args.pg_url)
        return 0

    ctx = multiprocessing.get_context("forkserver")
    # Each client re-runs this script as __mp_main__ (a "__main__" preload is not honoured on
    # 3.11); with its heavy imports done once in the server, that costs milliseconds.
    ctx.set_forkserver_preload(HEAVY_IMPORTS)
    outcomes: list[Outcome] = []
    for backend, clients in (("postgresql", args.pg_clients), ("sqlite", args.sqlite_clients)):
        if args.only and backend != args.only:
            continue
        if backend == "postgresql":
            why = pg_reachable(args.pg_url)
            if why:
                print(f"postgresql: skipped, cannot connect to {args.pg_url}: {why}")
                continue
        per_client = args.per_client or max(1, 400 // clients)
        print(f"{backend}: {clients} clients x {per_client} randomizations, "
              f"{args.rounds} rounds ...", flush=True)
        outcomes.append(bench_backend(ctx, backend, clients, per_client, args.rounds,
                                      args.pg_url))
    failed = False
    for o in outcomes:
        service, raw = Outcome.rate(o.service), Outcome.rate(o.raw)
        equivalent = Outcome.rate(o.equivalent)
        ratio = service / equivalent
        rounds = ", ".join(
            f"{n / s:.0f}/{en / es:.0f}/{rn / rs:.0f}" for (n, s), (en, es), (rn, rs)
            in zip(o.service, o.equivalent, o.raw, strict=True))
        verdict = "meets" if ratio >= GOAL else "BELOW"
        print(f"{o.backend} ({o.clients} clients): service {service:.0f}/s, equivalent raw "
              f"{equivalent:.0f}/s, minimal raw {raw:.0f}/s (medians of rounds; per round "
              f"service/equivalent/minimal: {rounds})")
        print(f"  ratio {ratio:.2f}x the equivalent raw claim ({verdict} the goal of {GOAL}x); "
              f"{service / raw:.2f}x the minimal raw claim; "
              f"integrity violations: {len(o.violations)}")
        for v in o.violations[:20]:
            print(f"  violation: {v}")
        failed |= bool(o.violations)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
