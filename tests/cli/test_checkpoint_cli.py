"""``audit checkpoint`` and ``audit verify --checkpoint`` as an auditor types them, on two
SQLite trials of the same code: a checkpoint holds; a bad file, another trial's checkpoint,
an edited one and a truncated trail are each one line with the right exit status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.cli.test_pharmacy_cli import invoke
from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock, add_user, sign_in
from tests.db.tampering import attack
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.administration.setup import initialize
from trialkit.store.db import make_engine

CLOCK = "2026-03-02T12:00:00Z"


@dataclass(frozen=True)
class Trials:
    folder: Path
    here: str
    other: str


def _trial(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = make_engine(url, must_exist=False)
    clock = SteppingClock()
    initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
               training=True, clock=clock)
    add_user(engine, sign_in(engine, ADMIN, clock), clock, "mona", Role.MONITOR)
    engine.dispose()
    return url


@pytest.fixture
def trials(tmp_path: Path) -> Iterator[Trials]:
    yield Trials(tmp_path, _trial(tmp_path / "here.db"), _trial(tmp_path / "other.db"))


def run(url: str, who: str | None, *args: str) -> tuple[int, str, str]:
    return invoke(url, who, list(args), CLOCK)


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


def test_a_checkpoint_is_written_once_and_holds(trials: Trials) -> None:
    out = trials.folder / "mona.checkpoint.json"
    code, printed, err = run(trials.here, "mona", "audit", "checkpoint", "--out", str(out))
    assert code == 0, err
    assert f"Checkpoint written to {out}: " in printed and "signed by mona" in printed
    assert json.loads(out.read_text())["signer"] == "mona"
    code, printed, err = run(trials.here, None, "audit", "verify", "--checkpoint", str(out))
    assert code == 0, err
    assert f"checkpoint {out}: holds (" in printed
    code, printed, err = run(trials.here, None, "--json", "audit", "verify", "--checkpoint",
                             str(out))
    assert code == 0, err
    [held] = json.loads(printed)["checkpoints"]
    assert (held["file"], held["signer"], held["note"]) == (str(out), "mona", None)
    code, _, err = run(trials.here, "mona", "audit", "checkpoint", "--out", str(out))
    assert code == 2 and "already exists: a checkpoint is never overwritten" in one_line(err)


def test_bad_checkpoint_files_are_one_line_each(trials: Trials) -> None:
    ok = trials.folder / "ok.checkpoint.json"
    assert run(trials.here, "mona", "audit", "checkpoint", "--out", str(ok))[0] == 0
    elsewhere = trials.folder / "other.checkpoint.json"
    assert run(trials.other, "mona", "audit", "checkpoint", "--out", str(elsewhere))[0] == 0
    doc = json.loads(ok.read_text())
    files = {
        "not json": ("garbage {", 2, "not a trialkit checkpoint (not JSON)"),
        "a list": ("[1, 2]", 2, "not a trialkit checkpoint (not a JSON object)"),
        "no count": (json.dumps({k: v for k, v in doc.items() if k != "events"}), 2,
                     "field 'events' is missing"),
        "count as text": (json.dumps(doc | {"events": "12"}), 2, "field 'events' is missing"),
        "renamed trial": (json.dumps(doc | {"trial": "MIGRAINE2"}), 2,
                          "is a checkpoint of trial 'MIGRAINE2', not of 'KETHEAD'"),
        "fewer events": (json.dumps(doc | {"events": doc["events"] - 1}), 1,
                         "its signature does not hold"),
        "another head": (json.dumps(doc | {"head": "0" * 64}), 1,
                         "its signature does not hold"),
        "same code, other trial": (elsewhere.read_text(), 1,
                                   "it is another trial's checkpoint"),
    }
    for name, (content, status, words) in files.items():
        path = trials.folder / f"{name.replace(' ', '-')}.json"
        path.write_text(content)
        code, printed, err = run(trials.here, None, "audit", "verify", "--checkpoint",
                                 str(ok), "--checkpoint", str(path))
        assert (code, printed.count("OK")) == (status, 0), (name, err)
        assert words in one_line(err), name
    code, _, err = run(trials.here, None, "audit", "verify", "--checkpoint",
                       str(trials.folder / "missing.json"))
    assert code == 2 and "cannot read checkpoint" in one_line(err)


def test_a_truncated_trail_fails_against_the_checkpoint(trials: Trials) -> None:
    kept = trials.folder / "kept.checkpoint.json"
    assert run(trials.here, "mona", "audit", "checkpoint", "--out", str(kept))[0] == 0
    counted = json.loads(kept.read_text())["events"]
    engine = make_engine(trials.here)
    with attack(engine) as conn:  # the last two events go: mona's sign-in and the checkpoint
        conn.execute(text("DELETE FROM audit_event WHERE seq > :n"), {"n": counted - 2})
    engine.dispose()
    assert run(trials.here, None, "audit", "verify")[0] == 0  # alone, verify cannot tell
    code, _, err = run(trials.here, None, "--json", "audit", "verify", "--checkpoint",
                       str(kept))
    assert code == 1
    doc = json.loads(one_line(err)) if err.startswith("{") else None
    line = one_line(err) if doc is None else doc["error"]
    assert (f"it counts {counted} events but the trail holds {counted - 2}: events after "
            f"{counted - 2} were removed") in line
