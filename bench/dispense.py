"""How many envelopes a pharmacist can open and record per second, and where the time goes.

Run with the project's interpreter:  .venv/bin/python bench/dispense.py [--participants N]

Builds a KetHead trial on a temporary SQLite file (WAL, synchronous=FULL, as trialkit
always opens it) or on ``--db URL``: pharmacists phil and pia, lists sealed with
``--per-stratum`` envelopes (default 40), and ``--participants`` (default 40) participants
screened, consented, given a baseline diary and randomized in one stratum. Then, in
process, phil dispenses each of them once, timing the whole unit of work:

    transaction -> permission check -> participant and checker checks -> custodian key
    unwrapped with the password KDF -> list data key unwrapped (HPKE) -> list re-verified
    (signature, Merkle root, every envelope's leaf) -> envelope decrypted and its
    commitment re-checked -> preparation sealed and recorded -> two audit events -> commit

The same calls are timed one by one inside that run (the KDF, the HPKE unwrap, the list
check, the decryption) so the script can say what share each takes. The password KDF is
meant to be slow (Argon2id, OWASP minimum; Scrypt where OpenSSL lacks Argon2): it is what
makes a stolen database useless without a custodian's password.

Exit status 0 unless something fails."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from trialkit.demo import add_activated_user, approve_as
from trialkit.domain.diary import DiaryDay
from trialkit.domain.eligibility import answered_criteria
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.sign_in import login
from trialkit.services.diary.file_import import record_days
from trialkit.services.enrolment.allocation import seal_lists
from trialkit.services.enrolment.participants import consent, randomize, screen
from trialkit.services.pharmacy import dispensing, envelopes
from trialkit.store.db import make_engine, transaction

ROOT = Path(__file__).resolve().parents[1]
KETHEAD = ROOT / "protocols" / "kethead.toml"
PASSWORD = "correct-horse-battery"
LOTS = {"bolus": "K2403-117", "infusion": "K2403-118"}


@dataclass
class SteppingClock:
    at: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.at


@dataclass
class Stopwatch:
    """Accumulated seconds per wrapped function, during the timed run only."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    on: bool = False

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if self.on:
                    self.seconds[name] += time.perf_counter() - start

        return timed


def build(url: str, participants: int, per_stratum: int, clock: SteppingClock) -> list[str]:
    engine = make_engine(url, must_exist=False)
    try:
        loaded = load_protocol(KETHEAD)
        protocol = loaded.protocol
        initialize(engine, loaded, admin="alice", admin_password=PASSWORD, training=False,
                   clock=clock)
        with transaction(engine) as s:
            alice = login(s, "alice", PASSWORD, clock=clock)
        with transaction(engine) as s:
            for name, role, sites in (("phil", Role.PHARMACIST, []), ("pia", Role.PHARMACIST, []),
                                      ("cora", Role.COORDINATOR, ["TWH"]),
                                      ("iris", Role.INVESTIGATOR, [])):
                add_activated_user(s, alice, name=name, role=role, password=PASSWORD, sites=sites,
                            custodian=False, clock=clock)
            approve_as(s, "iris", "phil", password=PASSWORD, clock=clock)
            approve_as(s, "phil", "pia", password=PASSWORD, clock=clock)
        with transaction(engine) as s:
            seal_lists(s, alice, per_stratum=max(per_stratum, participants), block_sizes=None,
                       clock=clock)
        with transaction(engine) as s:
            cora = login(s, "cora", PASSWORD, clock=clock)
        answers = {c.id: "yes" if c.kind == "inclusion" else "no"
                   for c in answered_criteria(protocol)}
        pids = []
        for i in range(participants):
            with transaction(engine) as s:
                v = screen(s, cora, site="TWH", age=40, sex="F", weight_kg=50.0 + i % 60,
                           factors={"headache_type": "CM"}, answers=answers, clock=clock)
                consent(s, cora, v.id, on=clock.now().date(), form_version="2.0", clock=clock)
            pids.append(v.id)
        first = clock.now().date()
        clock.at += timedelta(days=protocol.diary.window_days)
        days = [DiaryDay(first + timedelta(days=d), True, "moderate", 6.0, False)
                for d in range(protocol.diary.window_days)]
        for pid in pids:
            with transaction(engine) as s:
                record_days(s, cora, pid, days, clock=clock)
                randomize(s, cora, pid, clock=clock)
        return pids
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=40)
    parser.add_argument("--per-stratum", type=int, default=40)
    parser.add_argument("--db", help="a database URL (an empty PostgreSQL schema); default a "
                        "temporary SQLite file")
    args = parser.parse_args()

    watch = Stopwatch()
    for module, name, label in (
        (envelopes, "custodian_private_key", "password KDF (custodian key)"),
        (envelopes, "unwrap_data_key", "HPKE unwrap of the list key"),
        (envelopes, "check_list", "list re-verification"),
        (envelopes, "open_envelope", "envelope decryption"),
        (envelopes, "commitment", "commitment re-check"),
        (dispensing, "seal_details", "sealing the lots"),
    ):
        setattr(module, name, watch.wrap(label, getattr(module, name)))

    with tempfile.TemporaryDirectory(prefix="trialkit-bench-dispense-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'trial.db'}"
        clock = SteppingClock()
        start = time.perf_counter()
        pids = build(url, args.participants, args.per_stratum, clock)
        print(f"set-up: {len(pids)} participants randomized in {time.perf_counter() - start:.1f} s"
              f" ({max(args.per_stratum, args.participants)} envelopes per stratum)")
        engine = make_engine(url)
        try:
            with transaction(engine) as s:
                phil = login(s, "phil", PASSWORD, clock=clock)
            per_call: list[float] = []
            watch.on = True
            for pid in pids:
                begin = time.perf_counter()
                with transaction(engine) as s:
                    done = dispensing.dispense(s, phil, pid, password=PASSWORD, clock=clock,
                                             lots=LOTS, checked_by="pia",
                                             checker_password=PASSWORD)
                per_call.append(time.perf_counter() - begin)
                assert done.record is not None
            watch.on = False
        finally:
            engine.dispose()
    total = sum(per_call)
    print(f"dispense (open + check + record + commit): {len(per_call) / total:.1f} per second; "
          f"median {statistics.median(per_call) * 1e3:.1f} ms, "
          f"min {min(per_call) * 1e3:.1f} ms, max {max(per_call) * 1e3:.1f} ms")
    accounted = 0.0
    for label, seconds in watch.seconds.items():
        accounted += seconds
        print(f"  {label:<32} {seconds / len(per_call) * 1e3:7.2f} ms  {seconds / total:6.1%}")
    rest = total - accounted
    print(f"  {'database, audit, the rest':<32} {rest / len(per_call) * 1e3:7.2f} ms  "
          f"{rest / total:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
