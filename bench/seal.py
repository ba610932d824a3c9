"""How fast `seal` writes 100,000 envelopes, against a floor measured in the same run.

Run with the project's interpreter:  .venv/bin/python bench/seal.py [--sites N] [--profile]

KetHead has 4 strata; this builds a synthetic protocol from protocols/kethead.toml with
``--sites`` sites (default 1,250) x its 2 headache-type levels = 2,500 strata, creates the
trial on a temporary SQLite file (WAL, synchronous=FULL, as trialkit always opens it),
signs in the admin, adds a pharmacist (the custodian every list key is wrapped to) and
times one ``seal_lists`` call of ``--per-stratum`` (default 40) envelopes per stratum,
commit included.

The floor is what the work cannot avoid: AES-256-GCM of as many plaintexts of the same
length (a fresh nonce each, associated data of the same length, one key per list) plus
``sqlite3.executemany`` of the same rows into a table with the envelope table's columns
and indexes, in one transaction, on a file opened like trialkit's. Goal: at most 3x the
floor, best sealing against best floor (``--runs``, ``--floor-runs``; floors and sealings
alternate so that load from elsewhere hits both). ``--profile`` runs the sealing under
cProfile and prints where the time goes.

Exit status 0 unless something fails; the ratio is reported, never enforced."""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trialkit.demo import add_activated_user, approve_as
from trialkit.domain.clock import SystemClock
from trialkit.domain.protocol import LoadedProtocol, protocol_from_text
from trialkit.domain.roles import Role
from trialkit.domain.sealing import ENVELOPE_PLAINTEXT_LEN, NONCE_LEN, STRATUM_WIDTH
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.sign_in import login
from trialkit.services.enrolment.allocation import SealResult, seal_lists
from trialkit.store.db import make_engine, transaction

ROOT = Path(__file__).resolve().parents[1]
KETHEAD = ROOT / "protocols" / "kethead.toml"
GOAL = 3.0
ADMIN, PHARMACIST, PASSWORD = "alice", "phil", "correct-horse-battery"
# The envelope's slot as sealed (magic, list id, stratum, seq), same widths as sealing.py.
AD_LEN = len(b"trialkit envelope v1\x00") + (1 + 64) + (1 + STRATUM_WIDTH) + 4
ENVELOPE_DDL = [
    """CREATE TABLE envelope (
        id INTEGER NOT NULL PRIMARY KEY,
        list_id VARCHAR(32) NOT NULL,
        stratum_code VARCHAR(64) NOT NULL,
        seq INTEGER NOT NULL,
        ciphertext BLOB NOT NULL,
        commitment VARCHAR(64) NOT NULL,
        participant_id VARCHAR(16) UNIQUE,
        bound_at DATETIME,
        UNIQUE (stratum_code, seq))""",
    "CREATE INDEX ix_envelope_list_id ON envelope (list_id)",
]


def synthetic_protocol(sites: int) -> LoadedProtocol:
    """KetHead with its two sites replaced by ``sites`` sites S0001, S0002, ..."""
    text = KETHEAD.read_text(encoding="utf-8")
    start, end = text.index("\n[[sites]]\n") + 1, text.index("\n[[stratification]]\n") + 1
    generated = "".join(
        f'[[sites]]\ncode = "S{i:04d}"\nname = "Synthetic site {i}"\ntarget = 40\n'
        'timezone = "America/Toronto"\n\n'
        for i in range(1, sites + 1)
    )
    text = text[:start] + generated + text[end:]
    text = re.sub(r'(?m)^id = "KETHEAD"$', 'id = "SYNTH"', text, count=1)
    return protocol_from_text(text, "synthetic protocol")


@dataclass(frozen=True)
class SealRun:
    seconds: float
    result: SealResult
    profile: str | None


def run_seal(folder: Path, loaded: LoadedProtocol, per_stratum: int, profile: bool) -> SealRun:
    clock = SystemClock()
    engine = make_engine(str(folder / "trial.db"), must_exist=False)
    try:
        initialize(engine, loaded, admin=ADMIN, admin_password=PASSWORD, training=False,
                   clock=clock)
        with transaction(engine) as s:
            admin = login(s, ADMIN, PASSWORD, clock=clock)
        with transaction(engine) as s:
            add_activated_user(s, admin, name=PHARMACIST, role=Role.PHARMACIST, password=PASSWORD,
                        sites=[], custodian=False, clock=clock)
            add_activated_user(s, admin, name="iris", role=Role.INVESTIGATOR, password=PASSWORD,
                        sites=[], custodian=False, clock=clock)
            approve_as(s, "iris", PHARMACIST, password=PASSWORD, clock=clock)
        profiler = cProfile.Profile() if profile else None
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        with transaction(engine) as s:
            result = seal_lists(s, admin, per_stratum=per_stratum, block_sizes=None,
                                clock=clock)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - start
        text = None
        if profiler:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(40)
            text = out.getvalue()
        return SealRun(seconds, result, text)
    finally:
        engine.dispose()


def run_floor(folder: Path, strata: int, per_stratum: int) -> tuple[float, float]:
    """(AES-GCM seconds, sqlite3 executemany seconds) for the same number of envelopes."""
    plaintexts = [os.urandom(ENVELOPE_PLAINTEXT_LEN) for _ in range(per_stratum)]
    ad = os.urandom(AD_LEN)
    rows: list[tuple[str, str, int, bytes, str]] = []
    start = time.perf_counter()
    for s in range(strata):
        aead = AESGCM(AESGCM.generate_key(bit_length=256))
        list_id, stratum = os.urandom(8).hex(), f"S{s // 2 + 1:04d}-{('CM', 'CDH')[s % 2]}"
        for seq, plaintext in enumerate(plaintexts, start=1):
            nonce = os.urandom(NONCE_LEN)
            rows.append((list_id, stratum, seq, nonce + aead.encrypt(nonce, plaintext, ad), ""))
    aes = time.perf_counter() - start
    digest = "0" * 64  # the commitment column holds 64 hex digits
    rows = [(a, b, c, d, digest) for a, b, c, d, _ in rows]
    conn = sqlite3.connect(folder / "floor.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        for ddl in ENVELOPE_DDL:
            conn.execute(ddl)
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO envelope (list_id, stratum_code, seq, ciphertext, commitment) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
        insert = time.perf_counter() - start
    finally:
        conn.close()
    return aes, insert


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1250)
    parser.add_argument("--per-stratum", type=int, default=40)
    parser.add_argument("--runs", type=int, default=1, help="sealings to time (the best counts)")
    parser.add_argument("--floor-runs", type=int, default=3,
                        help="floor measurements (the best counts)")
    parser.add_argument("--profile", action="store_true", help="run the sealing under cProfile")
    args = parser.parse_args()

    loaded = synthetic_protocol(args.sites)
    levels = len(loaded.protocol.stratification[0].levels)
    strata = args.sites * levels
    total = strata * args.per_stratum
    print(f"sealing {total:,} envelopes: {args.sites:,} sites x {levels} levels = "
          f"{strata:,} strata x {args.per_stratum}")
    floors: list[tuple[float, float]] = []
    runs: list[SealRun] = []
    # Floors before and after the sealings, so that load from elsewhere hits both alike.
    for i in range(max(args.floor_runs, args.runs)):
        if i < args.floor_runs:
            with tempfile.TemporaryDirectory(prefix="trialkit-bench-floor-") as tmp:
                floors.append(run_floor(Path(tmp), strata, args.per_stratum))
        if i < args.runs:
            with tempfile.TemporaryDirectory(prefix="trialkit-bench-seal-") as tmp:
                runs.append(run_seal(Path(tmp), loaded, args.per_stratum, args.profile))
    bad = [r.result.total for r in runs if r.result.total != total]
    if bad:
        print(f"error: sealed {bad} envelopes, expected {total}", file=sys.stderr)
        return 1
    aes, insert = min(floors, key=sum)
    floor = aes + insert
    run = min(runs, key=lambda r: r.seconds)
    ratio = run.seconds / floor
    shown = ", ".join(f"{sum(f):.2f}" for f in floors)
    print(f"floor (best of {len(floors)}: {shown} s): AES-256-GCM {aes:.2f} s + sqlite3 "
          f"executemany {insert:.2f} s = {floor:.2f} s ({total / floor:,.0f} envelopes/s)")
    shown = ", ".join(f"{r.seconds:.2f}" for r in runs)
    print(f"seal_lists (best of {len(runs)}: {shown} s): {run.seconds:.2f} s "
          f"({total / run.seconds:,.0f} envelopes/s){' under cProfile' if args.profile else ''}")
    verdict = "within" if ratio <= GOAL else "OVER"
    print(f"ratio: {ratio:.1f}x the floor ({verdict} the goal of {GOAL:.0f}x)")
    if run.profile:
        print(run.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
