"""The CLI loads the commands of its other modules lazily (issue 11): the help of the root,
of every group and of every command is byte-for-byte what the CLI printed when it built
every command up front, at a wide and at a narrow terminal; and the root's help imports
none of those modules."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from trialkit.cli import app as cli_app
from trialkit.cli import (
    audit_cmds,
    design_cmds,
    diary_cmds,
    enrol_cmds,
    list_cmds,
    pharmacy_cmds,
    report_cmds,
    user_cmds,
)
from trialkit.cli.app import ELSEWHERE, app


def every_command_built_up_front() -> typer.Typer:
    """The CLI as it was built before lazy loading: one Typer app, every module imported
    and every command added in the order the old code added them."""
    eager = typer.Typer(
        name="trialkit",
        help="Sealed, stratified randomization and headache-diary capture for the KetHead "
             "trial.",
        no_args_is_help=False, add_completion=False, pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    eager.callback(invoke_without_command=True)(cli_app.main_options)
    eager.command()(cli_app.tui)
    eager.command()(cli_app.init)
    eager.command()(cli_app.demo)
    eager.command()(cli_app.serve)
    eager.add_typer(cli_app.db_app, name="db")
    eager.command()(cli_app.backup)
    eager.command("restore-check")(cli_app.restore_check)
    eager.add_typer(user_cmds.app, name="user")
    eager.add_typer(audit_cmds.app, name="audit")
    eager.command("seal")(list_cmds.seal)
    eager.add_typer(list_cmds.list_app, name="list")
    eager.add_typer(list_cmds.custodian_app, name="custodian")
    eager.add_typer(design_cmds.design_app, name="design")
    eager.add_typer(design_cmds.report_app, name="report")
    for name in ("screen", "consent", "withdraw", "randomize", "participants", "schedule"):
        eager.command(name)(getattr(enrol_cmds, name))
    eager.add_typer(diary_cmds.diary_app, name="diary")
    eager.command("infuse")(diary_cmds.infuse)
    eager.command("outcomes")(diary_cmds.outcomes)
    for name in ("queue", "dispense", "label", "preparation", "unblind"):
        eager.command(name)(getattr(pharmacy_cmds, name))
    for name in ("status", "lock", "export"):
        eager.command(name)(getattr(report_cmds, name))
    return eager


EAGER = every_command_built_up_front()


def command_paths(group: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The root, every group and every command of a built CLI, depth first."""
    yield path
    for name, command in getattr(group, "commands", {}).items():
        yield from command_paths(command, (*path, name))


PATHS = list(command_paths(typer.main.get_command(EAGER)))


def first_sentence(text: str) -> str:
    """The words of the first paragraph up to the first one ending with a full stop."""
    words = text.split("\n\n")[0].split()
    ends = [i for i, word in enumerate(words) if word.endswith(".")]
    return " ".join(words[: ends[0] + 1] if ends else words)


def test_every_command_is_reached() -> None:
    # 31 at the root (7 of app.py, 24 elsewhere), with their groups' commands.
    assert len([p for p in PATHS if len(p) == 1]) == 31
    assert len(PATHS) > 50


@pytest.mark.parametrize("width", [80, 60])
@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "trialkit")
def test_help_is_byte_for_byte_the_same(path: tuple[str, ...], width: int) -> None:
    """At a narrow terminal Click shortens the summaries more and wraps sooner."""
    runner = CliRunner()
    args = [*path, "--help"]
    before = runner.invoke(EAGER, args, prog_name="trialkit", terminal_width=width)
    now = runner.invoke(app, args, prog_name="trialkit", terminal_width=width)
    assert before.exit_code == 0, before.output
    assert (now.exit_code, now.output) == (before.exit_code, before.output)


@pytest.mark.parametrize("typed", [["stats"], ["dairy"], ["usr", "add"], ["diary", "recrod"]])
def test_a_mistyped_command_gets_the_same_answer(typed: list[str]) -> None:
    """Typer's "did you mean" names the lazy commands too."""
    runner = CliRunner()
    before = runner.invoke(EAGER, typed, prog_name="trialkit")
    now = runner.invoke(app, typed, prog_name="trialkit")
    assert before.exit_code == 2 and "Did you mean" in before.output, before.output
    assert (now.exit_code, now.output) == (before.exit_code, before.output)


def test_each_summary_is_the_first_sentence_of_the_commands_own_help() -> None:
    built = typer.main.get_command(EAGER)
    commands = built.commands  # type: ignore[attr-defined]
    for name, where in ELSEWHERE.items():
        assert where.summary == first_sentence(commands[name].help), name


PROBE = """
import json, sys
sys.argv = ["trialkit", *json.loads(sys.argv[1])]
from trialkit.__main__ import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + json.dumps(sorted(m for m in sys.modules
                                                     if m.startswith("trialkit.cli."))))
"""


def cli_modules_loaded(args: list[str], cwd: Path) -> set[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    tail = done.stderr.rsplit("MODULES ", 1)
    assert len(tail) == 2, done.stderr
    return set(json.loads(tail[1]))


def test_the_roots_help_imports_no_command_module(tmp_path: Path) -> None:
    loaded = cli_modules_loaded(["--help"], tmp_path)
    assert "trialkit.cli.app" in loaded
    assert not {m for m in loaded if m.endswith("_cmds")}, loaded


def test_a_commands_help_imports_its_own_module_only(tmp_path: Path) -> None:
    loaded = cli_modules_loaded(["status", "--help"], tmp_path)
    assert {m for m in loaded if m.endswith("_cmds")} == {"trialkit.cli.report_cmds"}
