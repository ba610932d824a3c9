"""How long one randomization takes, as the CLI and the TUI make it.

Run with the project's interpreter:  .venv/bin/python bench/randomize.py [--participants N]

On PostgreSQL (URL from TRIALKIT_TEST_PG_URL or the local default, in a fresh schema
dropped at the end) and on a temporary SQLite file (WAL, synchronous=FULL, as trialkit
opens it): a KetHead trial with sealed lists and ``--participants`` (default 60) consented
participants over the four strata, each with the baseline diary the randomization gate
asks for. One signed-in coordinator then randomizes them one after the other, in process,
each call timed from the start of its transaction to the end of its commit. The first call
of the process (it parses the stored protocol) is shown on its own; the script prints the
minimum, median and maximum of the others.

Afterwards it checks what was allocated: every randomized participant holds one envelope,
each stratum's used envelopes are 1..k, numbers are R0001..Rn, one audit event each, and
``audit verify`` passes. Exit status 1 if anything is wrong; times are never enforced."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlmodel import col, select

from trialkit.demo import add_activated_user, approve_as
from trialkit.domain.clock import FixedClock
from trialkit.domain.diary import DiaryDay
from trialkit.domain.eligibility import answered_criteria
from trialkit.domain.errors import InvalidInput
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.sign_in import login
from trialkit.services.diary.file_import import record_days
from trialkit.services.enrolment.allocation import seal_lists
from trialkit.services.enrolment.participants import consent, randomize, screen
from trialkit.services.integrity import verification
from trialkit.store.db import check_reachable, make_engine, normalize_url, read_only, transaction
from trialkit.store.models import AuditEvent, Envelope, Participant

ROOT = Path(__file__).resolve().parents[1]
KETHEAD = ROOT / "protocols" / "kethead.toml"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "correct-horse-battery"
STRATA = [("TWH", "CM"), ("TWH", "CDH"), ("SHS", "CM"), ("SHS", "CDH")]
START = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)  # screening and consent
BASELINE_DAYS = 24  # diary days the randomization gate asks for, in the 28 days before
RANDOMIZE_AT = START + timedelta(days=BASELINE_DAYS, hours=1)


def prepare_trial(url: str, participants: int) -> list[str]:
    """A KetHead trial with sealed lists and ``participants`` people ready to randomize."""
    clock = FixedClock(START)
    engine = make_engine(url, must_exist=False)
    try:
        loaded = load_protocol(KETHEAD)
        initialize(engine, loaded, admin="alice", admin_password=PASSWORD, training=False,
                   clock=clock)
        with transaction(engine) as s:
            admin = login(s, "alice", PASSWORD, clock=clock)
        with transaction(engine) as s:
            add_activated_user(s, admin, name="phil", role=Role.PHARMACIST, password=PASSWORD,
                        sites=[], custodian=False, clock=clock)
            add_activated_user(s, admin, name="cora", role=Role.COORDINATOR, password=PASSWORD,
                        sites=["TWH", "SHS"], custodian=False, clock=clock)
            add_activated_user(s, admin, name="iris", role=Role.INVESTIGATOR, password=PASSWORD,
                        sites=[], custodian=False, clock=clock)
            approve_as(s, "iris", "phil", password=PASSWORD, clock=clock)
        with transaction(engine) as s:
            seal_lists(s, admin, per_stratum=participants // len(STRATA) + 10, block_sizes=None,
                       clock=clock)
        with transaction(engine) as s:
            cora = login(s, "cora", PASSWORD, clock=clock)
        answers = {c.id: "yes" if c.kind == "inclusion" else "no"
                   for c in answered_criteria(loaded.protocol)}
        pids: list[str] = []
        with transaction(engine) as s:
            for i in range(participants):
                site, level = STRATA[i % len(STRATA)]
                v = screen(s, cora, site=site, age=40, sex="F", weight_kg=70.0,
                           factors={"headache_type": level}, answers=answers, clock=clock)
                consent(s, cora, v.id, on=START.date(), form_version="2.0", clock=clock)
                pids.append(v.id)
        baseline = [DiaryDay(START.date() + timedelta(days=n), headache=True, severity="moderate",
                             duration_hours=6.0, acute_medication=False)
                    for n in range(BASELINE_DAYS)]
        with transaction(engine) as s:
            for pid in pids:
                record_days(s, cora, pid, baseline, clock=FixedClock(RANDOMIZE_AT))
        return pids
    finally:
        engine.dispose()


def violations(url: str) -> list[str]:
    """Every broken invariant of the randomizations in the database."""
    engine = make_engine(url)
    try:
        with read_only(engine) as s:
            bound = s.exec(select(Envelope.participant_id, Envelope.stratum_code, Envelope.seq)
                           .where(col(Envelope.participant_id).is_not(None))).all()
            numbers = s.exec(select(Participant.randomization_number)
                             .where(col(Participant.randomization_number).is_not(None))).all()
            events = Counter(s.exec(select(AuditEvent.entity_id)
                                    .where(AuditEvent.action == "participant.randomize")).all())
            report = verification.verify(s)
    finally:
        engine.dispose()
    problems = [f"{p} holds {n} envelopes"
                for p, n in Counter(p for p, _, _ in bound).items() if n != 1]
    for stratum in {st for _, st, _ in bound}:
        used = sorted(seq for _, st, seq in bound if st == stratum)
        if used != list(range(1, len(used) + 1)):
            problems.append(f"stratum {stratum}: used envelopes are not 1..{len(used)}")
    if sorted(numbers) != [f"R{i:04d}" for i in range(1, len(numbers) + 1)]:
        problems.append("randomization numbers are not R0001..Rn without gap")
    if len(numbers) != len(bound) or set(events) != {p for p, _, _ in bound} or any(
            n != 1 for n in events.values()):
        problems.append("numbers, envelopes and randomize events do not match one to one")
    if not report.ok:
        problems.append(f"audit verify: {report.problem}")
    return problems


def measure(url: str, participants: int) -> tuple[float, list[float], list[str]]:
    """(first call, the other calls, violations), in seconds."""
    pids = prepare_trial(url, participants)
    clock = FixedClock(RANDOMIZE_AT)
    engine = make_engine(url)
    try:
        with transaction(engine) as s:
            cora = login(s, "cora", PASSWORD, clock=clock)
        times: list[float] = []
        for pid in pids:
            begin = time.perf_counter()
            with transaction(engine) as s:  # as the CLI and the TUI do
                randomize(s, cora, pid, clock=clock)
            times.append(time.perf_counter() - begin)
    finally:
        engine.dispose()
    return times[0], times[1:], violations(url)


@contextmanager
def pg_schema(base: str) -> Iterator[str]:
    """A fresh schema, dropped at the end: the URL with its search_path."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = normalize_url(base)
        yield url + ("&" if "?" in url else "?") + "options=" + quote(f"-csearch_path={schema}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("TRIALKIT_TEST_PG_URL", DEFAULT_PG))
    parser.add_argument("--participants", type=int, default=60)
    parser.add_argument("--only", choices=["postgresql", "sqlite"])
    args = parser.parse_args()
    failed = False
    for backend in ("postgresql", "sqlite"):
        if args.only and backend != args.only:
            continue
        if backend == "postgresql":
            try:
                check_reachable(make_engine(args.pg_url))
            except InvalidInput as exc:
                print(f"postgresql: skipped ({exc})")
                continue
        with tempfile.TemporaryDirectory(prefix="trialkit-bench-rand-") as tmp:
            where = (pg_schema(args.pg_url) if backend == "postgresql"
                     else _value(f"sqlite:///{tmp}/trial.db"))
            with where as url:
                first, rest, problems = measure(url, args.participants)
        ms = sorted(t * 1000 for t in rest)
        print(f"{backend}: one randomization, {len(ms)} calls: min {ms[0]:.2f} ms, median "
              f"{statistics.median(ms):.2f} ms, max {ms[-1]:.2f} ms (first call of the "
              f"process {first * 1000:.1f} ms); violations: {len(problems)}")
        for problem in problems[:20]:
            print(f"  violation: {problem}")
        failed |= bool(problems)
    return 1 if failed else 0


@contextmanager
def _value(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    sys.exit(main())
