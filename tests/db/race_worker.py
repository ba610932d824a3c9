"""A separate OS process that randomizes participants through the real service, for the
race and crash tests (``test_randomize_concurrency.py``, ``test_randomize_crash.py``).

Run from the repository root::

    python -m tests.db.race_worker --url URL --user NAME --password PW --at 2026-03-02T10:00Z

It opens its own engine, signs in once (one Argon2 check), prints ``ready`` and waits for
one line on standard input: a JSON list of participant ids. It then randomizes them in that
order as the CLI and the TUI do (``randomize`` in one ``transaction(engine)``); it prints one
JSON line per step:

    {"begin": "TWH-001"}                                    about to open the transaction
    {"pid": "TWH-001", "number": "R0001", "label": "...", "already": false, "ms": 4.2}
                                                   committed, after ms milliseconds
    {"error": "OperationalError", "pid": "TWH-001", "message": "..."}         and exit 1

and ``done`` at the end. Nothing is retried: any error (a refusal, a lock timeout, a
serialization failure or deadlock) is reported and ends the process with status 1.
Lines are flushed as they are written, so a parent that SIGKILLs the worker still reads
everything that was said before the kill. The crash test forks the same loop from a
multiprocessing forkserver instead (``run_forked``, ``ForkedWorker``): the participant ids
come as an argument and each line is one message on a pipe.

The second half of the module is the parent's side: driving workers, consenting
participants with a baseline diary in bulk, and ``check_allocation``, the invariants
every test here asserts."""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from trialkit.domain.clock import Clock, parse_clock
from trialkit.domain.diary import DiaryDay
from trialkit.services.actor import Actor
from trialkit.services.administration.sign_in import login
from trialkit.services.diary.file_import import record_days
from trialkit.services.enrolment.participants import consent, randomize, screen
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.store.models import AuditEvent, Envelope, Participant

ROOT = Path(__file__).resolve().parents[2]


def _say(message: dict[str, Any] | str, out: Connection | None = None) -> None:
    line = message if isinstance(message, str) else json.dumps(message)
    if out is None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    else:  # one small write: a kill never leaves half a message in the pipe
        out.send_bytes(line.encode())


def run(
    url: str,
    user: str,
    password: str,
    at: str,
    pids: Sequence[str] | None,
    out: Connection | None = None,
) -> int:
    """Sign in, say ``ready``, randomize ``pids`` (or the JSON list read from standard input
    when None), saying what happens to each; 0 when all went through, 1 on the first error."""
    clock = parse_clock(at)
    engine = make_engine(url)
    try:
        with transaction(engine) as s:
            actor = login(s, user, password, clock=clock)
        _say("ready", out)
        if pids is None:
            line = sys.stdin.readline()
            if not line.strip():
                return 0  # the parent changed its mind
            pids = json.loads(line)
        for pid in pids:
            _say({"begin": pid}, out)
            started = time.monotonic()
            try:
                with transaction(engine) as s:  # as the CLI and the TUI do
                    r = randomize(s, actor, pid, clock=clock)
            except Exception as exc:  # reported, never retried: the parent judges it
                _say({"error": type(exc).__name__, "pid": pid, "message": str(exc)[:2000]}, out)
                return 1
            message = {
                "pid": r.participant_id,
                "number": r.randomization_number,
                "label": r.label_code,
                "already": r.already,
                "ms": round((time.monotonic() - started) * 1000, 1),
            }
            _say(message, out)
        _say("done", out)
        return 0
    finally:
        engine.dispose()


def run_forked(
    url: str, user: str, password: str, at: str, pids: Sequence[str], out: Connection
) -> None:
    """``run`` as a multiprocessing target (forkserver: the imports are already done)."""
    sys.exit(run(url, user, password, at, pids, out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of the trial database")
    parser.add_argument("--user", required=True, help="coordinator to sign in as")
    parser.add_argument("--password", required=True)
    parser.add_argument("--at", required=True, help="ISO time the worker's clock shows")
    args = parser.parse_args(argv)
    return run(args.url, args.user, args.password, args.at, None)


# --- the parent's side: spawning workers, preparing participants, checking the outcome ----


@dataclass
class Worker:
    """One worker process as the test drives it."""

    proc: subprocess.Popen[str]
    user: str
    lines: list[str] = field(default_factory=list)
    stderr: str = ""

    @classmethod
    def spawn(cls, url: str, user: str, password: str, at: str) -> Worker:
        command = [sys.executable, "-m", "tests.db.race_worker"]
        command += ["--url", url, "--user", user, "--password", password, "--at", at]
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
        return cls(proc, user)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the worker has signed in (its first line), or fail."""
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.kill()
                raise AssertionError(f"worker {self.user} not ready after {timeout} s")
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.finish(timeout=10)
            raise AssertionError(f"worker {self.user} said {line!r}, stderr:\n{self.stderr}")

    def go(self, pids: Sequence[str]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(list(pids)) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> bool:
        """SIGKILL; True if the process was still running."""
        running = self.proc.poll() is None
        if running:
            os.kill(self.proc.pid, signal.SIGKILL)
        return running

    def finish(self, timeout: float) -> list[str]:
        """Wait for the end (or for the corpse) and collect everything it printed."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.proc.communicate()
            err += f"\n(killed by the test after {timeout} s)"
        self.lines += [ln for ln in out.splitlines() if ln.strip()]
        self.stderr += err
        return self.lines

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(ln) for ln in self.lines if ln.startswith("{")]

    def errors(self) -> list[dict[str, Any]]:
        return [m for m in self.messages() if "error" in m]


@dataclass
class ForkedWorker:
    """A worker forked by a multiprocessing forkserver that has already imported this module:
    a real process of its own, started in milliseconds instead of an interpreter's second."""

    proc: BaseProcess
    reader: Connection
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        ctx: ForkServerContext,
        url: str,
        user: str,
        password: str,
        at: str,
        pids: Sequence[str],
    ) -> ForkedWorker:
        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=run_forked, args=(url, user, password, at, list(pids), writer), daemon=True
        )
        proc.start()
        writer.close()  # the child holds its own copy
        return cls(proc, reader)

    def _read(self, timeout: float) -> bool:
        try:
            if not self.reader.poll(timeout):
                return False
            self.lines.append(self.reader.recv_bytes().decode())
            return True
        except (EOFError, OSError):
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        if not self._read(timeout) or self.lines[-1] != "ready":
            self.kill()
            self.finish(5)
            raise AssertionError(f"forked worker not ready: {self.lines}")

    def kill(self) -> bool:
        """SIGKILL; True if the process was still running."""
        running = self.proc.is_alive()
        self.proc.kill()
        return running

    def finish(self, timeout: float) -> list[str]:
        """Wait for the end (or the corpse) and collect everything it sent."""
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.kill()
            self.proc.join()
        while self._read(0):
            pass
        self.reader.close()
        return self.lines

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(ln) for ln in self.lines if ln.startswith("{")]

    def errors(self) -> list[dict[str, Any]]:
        return [m for m in self.messages() if "error" in m]


def consent_many(
    engine: Engine,
    coordinator: Actor,
    clock: Clock,
    people: Sequence[tuple[str, str]],
    answers: Mapping[str, str],
    *,
    on: date,
    batch: int = 50,
) -> list[str]:
    """Screen and consent one eligible participant per (site, headache type), ``batch`` of
    them per transaction (the services do not mind sharing one); returns their ids."""
    pids: list[str] = []
    for start in range(0, len(people), batch):
        with transaction(engine) as s:
            for site, headache_type in people[start : start + batch]:
                v = screen(
                    s, coordinator, site=site, age=40, sex="F", weight_kg=70.0,
                    factors={"headache_type": headache_type}, answers=answers, clock=clock,
                )
                consent(s, coordinator, v.id, on=on, form_version="2.0", clock=clock)
                pids.append(v.id)
    return pids


BASELINE_DAYS = 24  # the protocol's minimum of recorded baseline days (28-day window)


def record_baselines(
    engine: Engine,
    coordinator: Actor,
    clock: Clock,
    pids: Sequence[str],
    *,
    batch: int = 50,
) -> None:
    """Give each participant the diary the randomization gate asks for, ending yesterday:
    ``BASELINE_DAYS`` headache days (6 h, moderate). The participants must have been
    screened at least that many days ago; randomize them today."""
    today = clock.now().date()
    days = [
        DiaryDay(today - timedelta(days=n), headache=True, severity="moderate",
                 duration_hours=6.0, acute_medication=False)
        for n in range(BASELINE_DAYS, 0, -1)
    ]
    for start in range(0, len(pids), batch):
        with transaction(engine) as s:
            for pid in pids[start : start + batch]:
                record_days(s, coordinator, pid, days, clock=clock)


@dataclass(frozen=True)
class AllocationState:
    """What the database says was allocated, after the invariants held."""

    envelope_of: dict[str, tuple[str, int]]  # participant -> (stratum, seq)
    number_of: dict[str, str]  # participant -> randomization number
    used: dict[str, int]  # stratum -> envelopes used (a prefix 1..used)


def check_allocation(engine: Engine) -> AllocationState:
    """Assert the invariants of claiming: every randomized participant holds exactly one
    envelope and every bound envelope a randomized participant; each stratum's used
    envelopes are 1..k without gap and taken in randomization order; randomization numbers
    are R0001..Rn without gap; exactly one ``participant.randomize`` event per bound
    envelope, in randomization order."""
    with read_only(engine) as s:
        bound = s.exec(
            select(Envelope.participant_id, Envelope.stratum_code, Envelope.seq).where(
                col(Envelope.participant_id).is_not(None)
            )
        ).all()
        people = [
            (p.id, p.stratum_code, p.randomization_number, p.label_code, p.randomized_at)
            for p in s.exec(select(Participant))
        ]
        events = s.exec(
            select(AuditEvent.entity_id)
            .where(AuditEvent.action == "participant.randomize")
            .order_by(col(AuditEvent.seq))
        ).all()
    problems: list[str] = []
    per_pid = Counter(pid for pid, _, _ in bound)
    problems += [f"{pid} holds {n} envelopes" for pid, n in per_pid.items() if n != 1]
    envelope_of = {str(pid): (stratum, seq) for pid, stratum, seq in bound}

    seqs: dict[str, list[int]] = defaultdict(list)
    for stratum, seq in envelope_of.values():
        seqs[stratum].append(seq)
    for stratum, used in seqs.items():
        if sorted(used) != list(range(1, len(used) + 1)):
            missing = sorted(set(range(1, max(used) + 1)) - set(used))[:10]
            problems.append(f"stratum {stratum}: used envelopes are not a prefix, gaps {missing}")

    number_of: dict[str, str] = {}
    for pid, stratum, number, label, randomized_at in people:
        has_envelope = pid in envelope_of
        if number is not None:
            number_of[pid] = number
            if not has_envelope:
                problems.append(f"{pid} has {number} but no envelope")
            elif envelope_of[pid][0] != stratum:
                problems.append(f"{pid} ({stratum}) holds an envelope of another stratum")
            if label is None or randomized_at is None:
                problems.append(f"{pid} is half randomized (label or time missing)")
        elif has_envelope or label is not None or randomized_at is not None:
            problems.append(f"{pid} holds an envelope or label without a randomization number")

    numbers = sorted(number_of.values())
    if numbers != [f"R{i:04d}" for i in range(1, len(numbers) + 1)]:
        dup = [n for n, c in Counter(numbers).items() if c > 1][:10]
        problems.append(f"randomization numbers are not R0001..R{len(numbers):04d} (dup {dup})")

    in_order = sorted(number_of, key=lambda pid: number_of[pid])
    last: dict[str, int] = {}
    for pid in in_order:
        stratum, seq = envelope_of.get(pid, ("?", 0))
        if seq <= last.get(stratum, 0):
            problems.append(f"{pid} ({number_of[pid]}) got {stratum}#{seq} out of order")
        last[stratum] = seq

    event_count = Counter(events)
    problems += [f"{pid}: {n} randomize events" for pid, n in event_count.items() if n != 1]
    if set(event_count) != set(envelope_of):
        without_event = sorted(set(envelope_of) - set(event_count))[:10]
        without_envelope = sorted(set(event_count) - set(envelope_of))[:10]
        problems.append(
            f"envelopes bound without a randomize event: {without_event}; "
            f"randomize events without an envelope: {without_envelope}"
        )
    elif list(dict.fromkeys(events)) != in_order:
        problems.append("randomize events are not in randomization-number order")

    assert not problems, "\n".join(problems[:40])
    counts = {stratum: len(v) for stratum, v in sorted(seqs.items())}
    return AllocationState(envelope_of, number_of, counts)


if __name__ == "__main__":
    sys.exit(main())
