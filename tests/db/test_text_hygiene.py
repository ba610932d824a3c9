"""Text hygiene: a control character (a line break, a carriage return, a tab, ESC, a
C1 control, a bidi override) in any free-text field is invalid input (exit 2) and changes
nothing; text already stored (an old database, a tampered row) is printed escaped, so it
can neither forge a line of ``audit log`` nor drive the reader's terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from tests.builders import baseline_days, consented, staff
from tests.conftest import KETHEAD, PASSWORD, SteppingClock
from trialkit.domain.errors import InvalidInput, ProtocolFileError
from trialkit.domain.protocol import load_protocol
from trialkit.domain.text import plain_text, printable
from trialkit.services.actor import Actor
from trialkit.services.administration.users import set_disabled, validate_name
from trialkit.services.diary.entries import record_day
from trialkit.services.diary.file_import import import_diary
from trialkit.services.enrolment.participants import consent, list_participants, withdraw
from trialkit.services.integrity.audit import record
from trialkit.services.pharmacy.unblinding import unblind
from trialkit.store.db import transaction
from trialkit.store.models import AuditEvent

# Each would move the cursor, end a line, recolour or reorder what a terminal shows.
CONTROLS = ["\n", "\r", "\t", "\x1b[2J", "\x1b]0;owned\x07", "\x00", "\x7f", "\x85",
            "\x9b31m", "\u2028", "\u202e"]


def _count(engine: Engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(AuditEvent)).one()


Field = Callable[[Session, dict[str, Actor], str, str, SteppingClock], Any]

FIELDS: dict[str, Field] = {
    "withdrawal reason": lambda s, a, pid, t, c: withdraw(
        s, a["cora"], pid, reason=f"moved{t}away", clock=c),
    "consent form version": lambda s, a, pid, t, c: consent(
        s, a["cora"], pid, on=c.now().date(), form_version=f"2.0{t}", clock=c),
    "correction reason": lambda s, a, pid, t, c: record_day(
        s, a["cora"], pid, baseline_days(c.now().date() - timedelta(days=1), days=1)[0],
        clock=c, reason=f"typo{t}"),
    "unblinding reason": lambda s, a, pid, t, c: unblind(
        s, a["phil"], pid, reason=f"anaphylaxis{t}", password=PASSWORD, clock=c),
    "disabling reason": lambda s, a, pid, t, c: set_disabled(
        s, a["alice"], name="tess", disabled=True, reason=f"left{t}", clock=c),
    "search text": lambda s, a, pid, t, c: list_participants(s, a["cora"], search=f"SHS{t}"),
    "diary file name": lambda s, a, pid, t, c: import_diary(
        s, a["cora"], b"participant_id,date\n", source=f"diary{t}.csv", clock=c),
}


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_a_control_character_in_a_free_text_field_is_invalid_and_changes_nothing(
    engine: Engine, admin: Actor, clock: SteppingClock, field: str
) -> None:
    actors = staff(engine, admin, clock) | {"alice": admin}
    pid = consented(engine, actors["cora"], clock, site="SHS").id
    for control in CONTROLS:
        before = _count(engine)
        with pytest.raises(InvalidInput, match="control characters") as refused:
            with transaction(engine) as s:
                FIELDS[field](s, actors, pid, control, clock)
        assert refused.value.exit_code == 2
        assert _count(engine) == before, f"{field} with {control!r} wrote something"


@pytest.mark.parametrize("control", CONTROLS)
def test_user_names_take_no_control_character(control: str) -> None:
    for name in (f"eve{control}", f"{control}eve", f"e{control}ve"):
        with pytest.raises(InvalidInput):
            validate_name(name)


def test_plain_text_keeps_ordinary_words_of_any_script() -> None:
    for words in ("Müller–Lüdenscheid", "頭痛がひどい", "patient's request (per IRB #12)"):
        assert plain_text(f"  {words} ", "the reason") == words


@pytest.mark.parametrize("control", CONTROLS)
def test_a_protocol_text_with_a_control_character_is_refused(
    control: str, tmp_path: Path
) -> None:
    text = KETHEAD.read_text(encoding="utf-8")
    title = tomllib.loads(text)["trial"]["title"]
    bad = tmp_path / "bad.toml"
    escaped = control.encode("unicode_escape").decode("ascii").replace("\\x", "\\u00")
    bad.write_text(text.replace(f'"{title}"', f'"{title}{escaped}"', 1), encoding="utf-8")
    with pytest.raises(ProtocolFileError, match="control character"):
        load_protocol(bad)


@pytest.mark.parametrize("control", CONTROLS)
def test_printed_text_shows_every_control_character_escaped(control: str) -> None:
    shown = printable(f"ok{control}\n  1 2026-01-01 00:00:00 ivan  participant.unblind")
    assert "\n" not in shown and "\x1b" not in shown and "\x9b" not in shown
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u202e]", shown)
    assert shown.startswith("ok")


def _trialkit(url: str, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    env |= {"TRIALKIT_PASSWORD": PASSWORD, "TRIALKIT_USER": who}
    return subprocess.run([sys.executable, "-m", "trialkit", "--db", url, *args], env=env,
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_audit_log_prints_one_line_per_event_whatever_it_holds(
    engine: Engine, admin: Actor, db_url: str, clock: SteppingClock
) -> None:
    # An event written before text was checked (or by someone editing the file): a reason
    # that would forge a second event line and clear the reader's screen.
    forged = "ok\n    99 2026-01-01 00:00:00 ivan investigator participant.unblind\x1b[2J"
    with transaction(engine) as s:
        record(s, admin, action="user.disable", entity="user", entity_id="x\x1b]0;t\x07",
               reason=forged, clock=clock)
    shown = _trialkit(db_url, "alice", "audit", "log", "--sign-ins")  # every event
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    event_lines = [line for line in shown.stdout.splitlines() if re.match(r"\s*\d+ \d{4}-", line)]
    assert len(event_lines) == _count(engine)
    assert not any(line.lstrip().startswith("99 2026") for line in shown.stdout.splitlines())
    assert r"reason: ok\n    99 2026" in shown.stdout


def test_a_reason_with_escape_codes_is_refused_on_the_command_line(
    engine: Engine, admin: Actor, db_url: str, clock: SteppingClock
) -> None:
    actors = staff(engine, admin, clock)
    pid = consented(engine, actors["cora"], clock, site="SHS").id
    before = _count(engine)
    shown = _trialkit(db_url, "cora", "withdraw", pid, "--reason", "moved\x1b[2J\nline two")
    assert shown.returncode == 2
    assert len(shown.stderr.strip().splitlines()) == 1
    assert "control characters" in shown.stderr and "\x1b" not in shown.stderr
    assert _count(engine) == before + 1  # the sign-in only
