"""Errors say what happened; each face words what is missing and what to do next.

The domain and the services never name a command-line option or a key (issue 10: "Messages
the TUI shows never mention --out or --lot"); the CLI and the TUI each have a wording for
every need and every next step the domain can name."""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

from trialkit.cli.wording import COMMANDS, OPTIONS, cli_message
from trialkit.domain.errors import InvalidInput, Need, NextStep, Refused, StepAction
from trialkit.tui.wording import ACTIONS, FIELDS, tui_message

SRC = Path(__file__).resolve().parents[2] / "src" / "trialkit"
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
COMMAND = re.compile(r"trialkit (init|seal|lock|label|dispense|diary|user|custodian|audit)\b")


def _raised_messages(path: Path) -> list[tuple[int, str]]:
    """The literal text of every exception raised in a module (f-strings' fixed parts)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            for arg in node.exc.args:
                parts = [arg] if isinstance(arg, ast.Constant) else (
                    list(arg.values) if isinstance(arg, ast.JoinedStr) else [])
                text = "".join(p.value for p in parts
                               if isinstance(p, ast.Constant) and isinstance(p.value, str))
                found.append((node.lineno, text))
    return found


def test_no_domain_or_service_error_names_a_command_line_option() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{line}: {text!r}"
        for folder in ("domain", "services")
        for path in sorted((SRC / folder).rglob("*.py"))
        for line, text in _raised_messages(path)
        if OPTION.search(text) or COMMAND.search(text)
    ]
    assert offenders == []


def test_every_need_and_next_step_has_a_wording_in_each_face() -> None:
    needs = set(typing.get_args(Need))
    steps = set(typing.get_args(StepAction))
    assert set(OPTIONS) == needs and set(FIELDS) == needs
    assert set(COMMANDS) == steps and set(ACTIONS) == steps


def test_the_cli_names_its_options_and_the_tui_its_fields() -> None:
    err = InvalidInput("labels are printed with the preparation record",
                       needs=("lots", "checker"))
    assert cli_message(err) == ("labels are printed with the preparation record: give "
                                "--lot PREPARATION=LOT for each preparation and "
                                "--checked-by NAME")
    shown = tui_message(err)
    assert shown.startswith("labels are printed with the preparation record: fill in ")
    assert not OPTION.search(shown)


def test_a_next_step_is_a_command_line_in_the_cli_and_never_in_the_tui() -> None:
    for action in typing.get_args(StepAction):
        err = Refused("TWH-001 was already dispensed", next_step=NextStep(action, "TWH-001"))
        assert COMMAND.search(cli_message(err))
        shown = tui_message(err)
        assert shown.startswith("TWH-001 was already dispensed; ")
        assert not COMMAND.search(shown) and not OPTION.search(shown)


def test_the_tui_shows_errors_only_in_its_own_words() -> None:
    """Every screen shows a service's error through ``tui_message``, never its bare message
    (which would drop what to fill in and what to do next)."""
    bare = [
        f"{path.relative_to(SRC)}:{n}"
        for path in sorted((SRC / "tui").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\b(exc|err)\.message\b", line) and "exit" not in line
        and path.name != "wording.py"
    ]
    assert bare == []
