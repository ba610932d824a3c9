"""``trialkit audit verify`` on a large trial: its peak memory, and its time against a floor.

Run with the project's interpreter:  .venv/bin/python bench/audit_verify.py [--runs N]

Set-up (not timed): a training trial of ``--participants`` (20,000) in a SQLite file, with
a whole audit trail. ``trialkit demo --participants N`` builds it when this trialkit has it;
otherwise this script does, through the services: the demo trial, then N participants
screened and consented at both sites, each with ``--days`` (66) diary days entered as one
batch, then randomized (lists extended as needed). ``--keep DIR`` builds it once and reuses
it.

Timed, each in a fresh process, alternating (floor, verify) for ``--runs`` rounds:

- the floor: the standard library's sqlite3 reads every audit event and every row of each
  audited table (users, trial, participants, lists, diary, preparations, envelopes) and
  hashes each row's text with SHA-256;
- verify: ``trialkit --db FILE audit verify`` end to end (it must print OK).

Goals: verify's peak resident memory (VmHWM of its process, the interpreter and imports
included) at most 250 MB, and its median time at most 3x the floor's. Prints min/median/max
of both. Exit status 1 if verify fails or does not say OK; the figures are only reported."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 3.0
GOAL_MB = 250
AUDITED_TABLES = ("audit_event", "app_user", "trial", "participant", "allocation_list",
                  "diary_entry", "preparation", "envelope")

FLOOR = """
import hashlib, sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = 0
for table in sys.argv[2:]:
    for row in conn.execute(f'SELECT * FROM "{table}"'):
        hashlib.sha256(repr(row).encode()).digest()
        rows += 1
print(rows)
"""

# The same, plus one Ed25519 verification (cryptography, as trialkit) of each signed audit
# event against its author's signing key in app_user: the least a check of every
# signature can add. A signature that does not verify is counted, never fatal.
FLOOR_SIGNED = """
import hashlib, sqlite3, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
keys = {name: Ed25519PublicKey.from_public_bytes(key) for name, key in
        conn.execute("SELECT name, signing_public_key FROM app_user "
                     "WHERE signing_public_key IS NOT NULL")}
context = b"trialkit audit event v1\\x00"
rows = signed = 0
for table in sys.argv[2:]:
    cursor = conn.execute(f'SELECT * FROM "{table}"')
    names = [d[0] for d in cursor.description]
    who, digest, signature = (names.index(c) if c in names else None
                              for c in ("user_name", "hash", "signature"))
    for row in cursor:
        hashlib.sha256(repr(row).encode()).digest()
        rows += 1
        if table == "audit_event" and row[signature] is not None and row[who] in keys:
            try:
                keys[row[who]].verify(row[signature], context + bytes.fromhex(row[digest]))
                signed += 1
            except InvalidSignature:
                pass
print(rows, signed)
"""


def _demo_has_sizes() -> bool:
    done = subprocess.run([sys.executable, "-m", "trialkit", "demo", "--help"], cwd=ROOT,
                          capture_output=True, text=True)
    return "--participants" in done.stdout


def build(path: Path, n: int, days: int) -> None:
    """The trial of ``n`` participants at ``path`` (see the set-up above)."""
    if _demo_has_sizes():
        done = subprocess.run([sys.executable, "-m", "trialkit", "demo", "--participants",
                               str(n), "--db", str(path)], cwd=ROOT, capture_output=True,
                              text=True)
        if done.returncode != 0:
            sys.exit(f"could not build the demo of {n}:\n{done.stderr}")
        return
    from trialkit.demo import (
        DEMO_ADMIN,
        DEMO_PASSWORD,
        DemoClock,
        build_demo,
        demo_diary,
        kethead_protocol,
    )
    from trialkit.domain.clock import SystemClock
    from trialkit.domain.eligibility import answered_criteria
    from trialkit.services.administration.sign_in import login
    from trialkit.services.diary.file_import import record_days
    from trialkit.services.enrolment.allocation import extend_list
    from trialkit.services.enrolment.participants import consent, randomize, screen
    from trialkit.store.db import make_engine, transaction

    build_demo(str(path))
    protocol = kethead_protocol().protocol
    answers = {c.id: "yes" if c.kind == "inclusion" else "no"
               for c in answered_criteria(protocol)}
    clock = DemoClock(SystemClock().now() - timedelta(days=days + 2))
    engine = make_engine(str(path))
    try:
        with transaction(engine) as s:
            admin = login(s, DEMO_ADMIN, DEMO_PASSWORD, clock=clock)
            coordinators = {site: login(s, who, DEMO_PASSWORD, clock=clock)
                            for site, who in (("TWH", "cora"), ("SHS", "sam"))}
        with transaction(engine) as s:
            for stratum in ("TWH-CM", "TWH-CDH", "SHS-CM", "SHS-CDH"):
                extend_list(s, admin, stratum=stratum, count=n // 4 + 8, block_sizes=None,
                            clock=clock)
        people: list[tuple[str, str]] = []
        for start in range(0, n, 500):
            with transaction(engine) as s:
                for i in range(start, min(n, start + 500)):
                    site = ("TWH", "SHS")[i % 2]
                    p = screen(s, coordinators[site], site=site, age=20 + i % 50,
                               sex="FM"[i % 2], weight_kg=55.0 + i % 40,
                               factors={"headache_type": ("CM", "CDH")[(i // 2) % 2]},
                               answers=answers, clock=clock)
                    consent(s, coordinators[site], p.id,
                            on=protocol.site_time(site).today(clock.now()),
                            form_version=protocol.consent.form_versions[-1], clock=clock)
                    people.append((p.id, site))
        first = protocol.trial_time.today(clock.now())
        clock.advance(timedelta(days=days + 1))
        for start in range(0, n, 500):
            with transaction(engine) as s:
                for pid, site in people[start:start + 500]:
                    record_days(s, coordinators[site], pid,
                                demo_diary(first, protocol, count=days), clock=clock)
                    randomize(s, coordinators[site], pid, clock=clock)
    finally:
        engine.dispose()


def _peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run(cmd: list[str]) -> tuple[float, float, str]:
    """Seconds, peak resident MB (VmHWM read just before the process is reaped), stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    peak = 0.0
    while proc.poll() is None:
        try:
            peak = max(peak, _peak_mb(proc.pid))
        except OSError:
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out}\n{err}")
    return took, peak, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=66, help="diary days a participant")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the trial here once and reuse it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / f"verify-{args.participants}.db"
        start = time.perf_counter()
        if not db.exists():
            build(db, args.participants, args.days)
        print(f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; trial of "
              f"{args.participants:,} participants ready in {time.perf_counter() - start:.0f} s")
        floor_cmd = [sys.executable, "-c", FLOOR, str(db), *AUDITED_TABLES]
        signed_cmd = [sys.executable, "-c", FLOOR_SIGNED, str(db), *AUDITED_TABLES]
        verify_cmd = [sys.executable, "-m", "trialkit", "--db", str(db), "audit", "verify"]
        floors: list[float] = []
        signed_floors: list[float] = []
        verifies: list[tuple[float, float]] = []
        rows = signed = 0
        for _ in range(args.runs):
            took, _peak, out = run(floor_cmd)
            floors.append(took)
            rows = int(out.strip())
            took, _peak, out = run(signed_cmd)
            signed_floors.append(took)
            signed = int(out.split()[1])
            took, peak, out = run(verify_cmd)
            if "OK:" not in out:
                sys.exit(f"verify did not say OK:\n{out}")
            verifies.append((took, peak))
        times = [t for t, _ in verifies]
        peaks = [p for _, p in verifies]
        print(f"rows read by the floor: {rows:,} ({signed:,} signatures verified by the "
              f"second floor); verify said: {out.strip().splitlines()[-1]}; load average "
              f"{os.getloadavg()[0]:.1f}")
        for label, s in (("floor (sqlite3 + SHA-256)", floors),
                         ("floor + Ed25519 per event", signed_floors),
                         ("trialkit audit verify", times)):
            print(f"  {label:<27} min {min(s):6.2f} s  median {statistics.median(s):6.2f} s  "
                  f"max {max(s):6.2f} s")
        ratio = statistics.median(times) / statistics.median(floors)
        print(f"  time: {ratio:.2f}x the floor (goal: at most {GOAL_RATIO}x) - "
              f"{'within the goal' if ratio <= GOAL_RATIO else 'OVER the goal'}")
        ratio = statistics.median(times) / statistics.median(signed_floors)
        print(f"  time: {ratio:.2f}x the floor with an Ed25519 verification per signed event "
              f"- {'within' if ratio <= GOAL_RATIO else 'OVER'} {GOAL_RATIO}x")
        print(f"  verify peak memory: min {min(peaks):.0f} MB  median "
              f"{statistics.median(peaks):.0f} MB  max {max(peaks):.0f} MB (goal: at most "
              f"{GOAL_MB} MB) - "
              f"{'within the goal' if max(peaks) <= GOAL_MB else 'OVER the goal'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
