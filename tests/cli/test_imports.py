"""The command line imports only what a command needs (issue 11): printing help reads no
database, so it loads neither SQLAlchemy nor anything that draws (Textual, fpdf, matplotlib)
nor the cryptography; a read-only command loads the database layer but nothing that draws.
Which modules a fresh interpreter has loaded is read from ``sys.modules`` after the command
ran in it: a fact about the code, not a wall-clock measure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trialkit.demo import DEMO_PASSWORD

PROBE = """
import json, sys
sys.argv = ["trialkit", *json.loads(sys.argv[1])]
from trialkit.__main__ import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""
DRAWING = {"textual", "fpdf", "matplotlib", "rich", "PIL"}
DATABASE = {"sqlalchemy", "sqlmodel", "alembic", "psycopg", "sqlite3"}
CRYPTO = {"cryptography", "argon2"}


def loaded_by(args: list[str], cwd: Path) -> set[str]:
    env = os.environ | {"TRIALKIT_USER": "ivan", "TRIALKIT_PASSWORD": DEMO_PASSWORD}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    tail = done.stderr.rsplit("MODULES ", 1)
    assert len(tail) == 2, done.stderr
    return set(json.loads(tail[1]))


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("imports")
    done = subprocess.run([sys.executable, "-m", "trialkit", "--db", "demo.db", "demo"],
                          cwd=folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return folder


@pytest.mark.parametrize("args", [["--help"], ["status", "--help"], ["diary", "--help"],
                                  ["export", "--help"]])
def test_help_loads_no_database_drawing_or_cryptography(args: list[str], tmp_path: Path
                                                        ) -> None:
    loaded = loaded_by(args, tmp_path)
    assert "typer" in loaded  # the probe saw the command line run
    assert loaded.isdisjoint(DATABASE | DRAWING | CRYPTO), loaded & (DATABASE | DRAWING | CRYPTO)


@pytest.mark.parametrize("args", [["--db", "demo.db", "status"],
                                  ["--db", "demo.db", "participants"]])
def test_a_read_only_command_loads_nothing_that_draws(args: list[str], trial: Path) -> None:
    loaded = loaded_by(args, trial)
    assert "sqlalchemy" in loaded  # it did read the trial
    assert loaded.isdisjoint(DRAWING), loaded & DRAWING
