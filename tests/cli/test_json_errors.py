"""With --json, a refusal or invalid input is one JSON document on stdout,
``{"error": MESSAGE, "exit_code": 1|2}``, and the same exit status; the human text stays
on stderr. This holds for trialkit's own refusals in every command group and for the usage
errors Click finds before a command runs (unknown command or option, a bad value)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from sqlalchemy import Engine

from tests.cli.test_cli import Run, live, live_db, state_of, trialkit
from tests.db.tampering import attack, set_event
from trialkit import __main__ as entry
from trialkit.cli.app import app

__all__ = ["live", "live_db"]  # fixtures shared with test_cli


def json_error(run: Run, code: int) -> dict[str, Any]:
    """The one JSON document a failed --json command printed, checked against its exit
    status and its human text on stderr."""
    assert run.code == code, (run.code, run.out, run.err)
    doc = json.loads(run.out)  # one document: json.loads refuses anything after it
    assert isinstance(doc, dict)
    assert doc["exit_code"] == code
    assert isinstance(doc["error"], str) and doc["error"]
    assert doc["error"] in run.err  # the same words a person reads
    assert '"exit_code"' not in run.err
    return doc


# One refusal or invalid input per command group, as a script would meet them. The users
# (alice the admin, and nobody else) come from the live_db fixture.
CASES: list[tuple[str, list[str], dict[str, str | None], int, str]] = [
    ("user: unknown role", ["user", "add", "bob", "--role", "nurse"], {}, 2, "nurse"),
    ("user: wrong password", ["user", "list"], {"password": "not-her-password"}, 1,
     "wrong user name or password"),
    ("who acts: nobody given", ["participants"], {"user": None}, 2, "who is acting"),
    ("enrolment: unknown participant", ["consent", "TWH-999", "--date", "2026-03-01",
                                        "--form-version", "1.0"], {}, 1, ""),
    ("pharmacy: not a pharmacist", ["queue"], {}, 1, ""),
    ("reports: lock by an admin", ["lock", "--yes"], {}, 1, ""),
    ("reports: unknown export", ["export", "everything", "--out", "x.csv"], {}, 2,
     "everything"),
    ("diary: a day that is no date", ["diary", "record", "TWH-001", "--date", "yesterday",
                                      "--headache", "no"], {}, 2, ""),
    ("training clock on a live trial", ["status"], {"clock": "2027-01-05T10:00:00Z"}, 1,
     "TRIALKIT_CLOCK"),
    ("design: unknown procedure", ["design", "report", "--procedure", "urn"], {}, 2,
     "unknown procedure 'urn'"),
    ("design: parameters without a procedure", ["design", "report", "--mti", "3"], {}, 2,
     "--procedure"),
    ("report: randomization to a text file", ["report", "randomization", "--out", "r.txt"],
     {}, 2, ".pdf or .csv"),
    ("usage: unknown command", ["enroll"], {}, 2, "No such command"),
    ("usage: unknown option", ["seal", "--per-stratum", "4", "--colour", "red"], {}, 2,
     "No such option: --colour"),
    ("usage: a bad value", ["seal", "--per-stratum", "many"], {}, 2, "--per-stratum"),
    ("usage: a missing argument", ["randomize"], {}, 2, "Missing argument"),
    ("usage: a group without its command", ["custodian"], {}, 2, "a command is missing"),
]


@pytest.mark.parametrize(("args", "who", "code", "words"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_failed_json_command_prints_one_json_error(
    live_db: Path, live: Engine, args: list[str], who: dict[str, Any], code: int, words: str
) -> None:
    before = state_of(live)
    run = trialkit("--json", *args, db=live_db, cwd=live_db.parent, **who)
    doc = json_error(run, code)
    assert words in doc["error"]
    after = state_of(live)
    # Nothing changed, beyond the sign-in (or failed sign-in) the audit trail must keep
    # and, for a refusal (exit 1), the record of it (rule 3).
    assert after.actions[: len(before.actions)] == before.actions
    new = after.actions[len(before.actions):]
    refused = [a for a in new if a.endswith(".refused")]
    signed_in = "login" in new  # a refusal before anyone signed in has no one to name
    assert len(refused) == (1 if code == 1 and signed_in else 0), new
    assert set(new) <= {"login", "login.fail", *refused}


def test_json_given_after_the_command_also_gives_a_json_error(live_db: Path) -> None:
    run = trialkit("user", "add", "bob", "--role", "nurse", "--json", db=live_db,
                   cwd=live_db.parent)
    json_error(run, 2)


def test_without_json_an_error_is_plain_text_on_stderr_only(live_db: Path) -> None:
    run = trialkit("user", "add", "bob", "--role", "nurse", db=live_db, cwd=live_db.parent)
    assert run.code == 2
    assert run.out == ""
    assert run.err.startswith("Error: ")


def test_a_failed_audit_verify_is_one_document_with_its_details(
    live_db: Path, live: Engine
) -> None:
    with attack(live) as conn:
        set_event(conn, 2, reason="approved by the sponsor")
    doc = json_error(trialkit("--json", "audit", "verify", db=live_db, cwd=live_db.parent), 1)
    assert (doc["ok"], doc["events"], doc["first_bad_event"]) == (False, 2, 2)
    assert doc["error"] == f"verification failed: {doc['problem']}"


def leaf_commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command a user can run, as the words that name it (a group lists its commands
    through Click's list_commands and get_command, which load the root's lazy ones)."""
    if not hasattr(command, "list_commands"):
        return [path]
    ctx = typer.Context(command)
    return [leaf for name in sorted(command.list_commands(ctx))
            for leaf in leaf_commands(command.get_command(ctx, name), (*path, name))]


def test_every_command_answers_a_bad_option_with_one_json_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Walks the whole command tree in-process (the entry point as installed)."""
    monkeypatch.chdir(tmp_path)
    for name in ("TRIALKIT_DB", "TRIALKIT_USER", "TRIALKIT_PASSWORD", "TRIALKIT_CLOCK"):
        monkeypatch.delenv(name, raising=False)
    commands = leaf_commands(typer.main.get_command(app))
    assert len(commands) >= 25, commands  # the tree was really walked
    for words in commands:
        monkeypatch.setattr(sys, "argv", ["trialkit", "--json", *words, "--no-such-option"])
        with pytest.raises(SystemExit) as ended:
            entry.main()
        out, err = capsys.readouterr()
        assert ended.value.code == 2, words
        assert json.loads(out) == {"error": "No such option: --no-such-option",
                                   "exit_code": 2}, words
        assert "Error: No such option: --no-such-option" in err, words
    assert list(tmp_path.iterdir()) == []  # no command got far enough to create anything
