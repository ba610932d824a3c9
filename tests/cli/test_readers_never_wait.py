"""A command that only reads never queues behind a writer: while another connection holds
the write lock (in the middle of a randomization, not yet committed), ``trialkit status``,
``participants`` and ``export outcomes`` read the trial as it was before that change, and
only then wait, for the few milliseconds the writer still needs, to record their sign-in
(signed, in the hash chain, before anything is shown). Ordering, not timing: the writer
commits only once the command says it has read and is waiting to record; had the command
waited for the lock before reading, it would have seen the randomization.

A writer that keeps the lock past the busy timeout gets one line, and nothing is shown."""

from __future__ import annotations

import csv
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.builders import consented, record_baseline, seal, staff
from tests.conftest import PASSWORD, SteppingClock, add_user
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.enrolment.participants import randomize
from trialkit.services.integrity.audit import first_break
from trialkit.store.db import make_engine, read_only, transaction

WAITING = "Waiting for another change to the trial to finish, to record your sign-in..."


def _world(engine: Engine, admin: Actor, clock: SteppingClock) -> tuple[Actor, list[str], str]:
    """Two participants randomized at TWH, a third (at SHS) consented with its baseline
    diary, ready to be randomized; an investigator, ivan."""
    team = staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=8)
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR)
    early = [consented(engine, team["cora"], clock, site="TWH").id for _ in range(2)]
    late = consented(engine, team["cora"], clock, site="SHS").id
    record_baseline(engine, team["cora"], clock, *early, late)
    for pid in early:
        with transaction(engine) as s:
            randomize(s, team["cora"], pid, clock=clock)
    return team["cora"], early, late


def _start(db_url: str, args: list[str]) -> subprocess.Popen[str]:
    env = os.environ | {"TRIALKIT_USER": "ivan", "TRIALKIT_PASSWORD": PASSWORD}
    env.pop("TRIALKIT_CLOCK", None)
    return subprocess.Popen([sys.executable, "-m", "trialkit", "--db", db_url, *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _first_stderr_line(proc: subprocess.Popen[str]) -> str:
    """The command's first line on stderr (read in a thread so that a command that never
    writes one fails the test instead of hanging it)."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    threading.Thread(target=lambda: lines.put(proc.stderr.readline()), daemon=True).start()  # type: ignore[union-attr]
    try:
        return lines.get(timeout=120).rstrip("\n")
    except queue.Empty:
        proc.kill()
        pytest.fail("the command neither read nor said it was waiting")


def _actions_after(engine: Engine, seq: int) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT user_name, action FROM audit_event WHERE seq > :s "
                                 "ORDER BY seq"), {"s": seq}).all()
    return [(r[0], r[1]) for r in rows]


def _head(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT max(seq) FROM audit_event")).scalar_one())


COMMANDS = {
    "status": ["--json", "status"],
    "participants": ["--json", "participants"],
    "export outcomes": ["export", "outcomes", "--out", "OUT/outcomes.csv"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_reader_reads_while_a_writer_holds_the_lock(
    command: str, db_url: str, engine: Engine, admin: Actor, clock: SteppingClock,
    tmp_path: Path,
) -> None:
    cora, early, late = _world(engine, admin, clock)
    args = [a.replace("OUT", str(tmp_path)) for a in COMMANDS[command]]
    before = _head(engine)
    writer = make_engine(db_url)
    try:
        with transaction(writer) as s:  # the write lock, held until the command has read
            assert randomize(s, cora, late, clock=clock).randomization_number == "R0003"
            proc = _start(db_url, args)
            assert _first_stderr_line(proc) == WAITING
        out, err = proc.communicate(timeout=120)
    finally:
        writer.dispose()
    assert proc.returncode == 0, err
    assert err == ""  # nothing more than the waiting line (read above)
    # What the command read: the trial before the randomization it did not wait for.
    if command == "status":
        doc = json.loads(out)
        assert [(site["code"], site["randomized"]) for site in doc["sites"]] == [
            ("TWH", 2), ("SHS", 0)]
    elif command == "participants":
        status = {p["id"]: p["status"] for p in json.loads(out)}
        assert status == {early[0]: "randomized", early[1]: "randomized", late: "consented"}
    else:
        with (tmp_path / "outcomes.csv").open(newline="", encoding="utf-8") as f:
            assert {r["participant_id"] for r in csv.DictReader(f)} == set(early)
    # Its sign-in was recorded after the writer's change, signed, and the chain holds.
    actions = _actions_after(engine, before)
    assert actions[:2] == [("cora", "participant.randomize"), ("ivan", "login")]
    if command == "export outcomes":
        assert actions[2:] == [("ivan", "export.outcomes"), ("ivan", "audit.checkpoint")]
    else:
        assert actions[2:] == []
    with read_only(engine) as s:
        count, _head_hash, broken = first_break(s)
        signature = s.execute(text("SELECT signature FROM audit_event WHERE seq = :q"),
                              {"q": before + 2}).scalar_one()
    assert broken is None and count == before + len(actions)
    assert signature is not None  # signed by ivan's key, as every sign-in is


def test_a_refused_reader_is_recorded_after_its_sign_in(
    db_url: str, engine: Engine, admin: Actor, clock: SteppingClock, tmp_path: Path,
) -> None:
    """A coordinator may not export: the command reads nothing it may not, and the trail
    shows the sign-in, then the refusal, as when the sign-in was recorded first."""
    _world(engine, admin, clock)
    before = _head(engine)
    env = os.environ | {"TRIALKIT_USER": "cora", "TRIALKIT_PASSWORD": PASSWORD}
    done = subprocess.run([sys.executable, "-m", "trialkit", "--db", db_url, "export",
                           "outcomes", "--out", str(tmp_path / "o.csv")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith(
        "Refused: cora (coordinator) lacks the permission")
    assert _actions_after(engine, before) == [("cora", "login"), ("cora", "export.refused")]
    assert not (tmp_path / "o.csv").exists()


def test_a_wrong_password_is_recorded_as_before(
    db_url: str, engine: Engine, admin: Actor, clock: SteppingClock,
) -> None:
    _world(engine, admin, clock)
    before = _head(engine)
    env = os.environ | {"TRIALKIT_USER": "ivan", "TRIALKIT_PASSWORD": "not-" + PASSWORD}
    done = subprocess.run([sys.executable, "-m", "trialkit", "--db", db_url, "participants"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "Refused: wrong user name or password\n"
    assert _actions_after(engine, before) == [("ivan", "login.fail")]


def test_a_writer_busy_past_the_timeout_is_one_line_and_nothing_is_shown(
    db_url: str, engine: Engine, admin: Actor, clock: SteppingClock,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from trialkit import __main__ as entry
    from trialkit.store import db

    cora, _early, late = _world(engine, admin, clock)
    before = _head(engine)
    monkeypatch.setenv("TRIALKIT_USER", "ivan")
    monkeypatch.setenv("TRIALKIT_PASSWORD", PASSWORD)
    monkeypatch.delenv("TRIALKIT_CLOCK", raising=False)
    monkeypatch.setattr(sys, "argv", ["trialkit", "--db", db_url, "participants"])
    writer = make_engine(db_url)
    try:
        with transaction(writer) as s:
            randomize(s, cora, late, clock=clock)
            # shortened once the lock is held (other runs may share the PostgreSQL server)
            monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 300)
            with pytest.raises(SystemExit) as ended:
                entry.main()
    finally:
        writer.dispose()
    out, err = capsys.readouterr()
    assert ended.value.code == 1
    assert out == ""  # what it read is not shown: its sign-in could not be recorded
    assert err == (f"{WAITING}\nRefused: the database is busy: another change held it for "
                   "more than 0.3 s; nothing was changed (try again)\n")
    assert _actions_after(engine, before) == [("cora", "participant.randomize")]
