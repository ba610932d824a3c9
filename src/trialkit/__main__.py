"""Entry point: run the CLI and turn domain errors into one line and an exit status."""

from __future__ import annotations

import sys
from typing import NoReturn

# Options every command takes; people type them after the command name as often as before.
GLOBAL_VALUED = ("--db", "--user")
GLOBAL_FLAGS = ("--json",)


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move --db/--user/--json to the front so `trialkit demo --db x.db` works like
    `trialkit --db x.db demo`. Nothing after a bare `--` is touched."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg in GLOBAL_FLAGS:
            front.append(arg)
        elif arg in GLOBAL_VALUED and i + 1 < len(argv):
            front.extend(argv[i : i + 2])
            i += 1
        elif any(arg.startswith(f"{name}=") for name in GLOBAL_VALUED):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def plain_tui_database(args: list[str]) -> str | None:
    """The database to open when the command line asks for nothing but the TUI (``trialkit``,
    ``trialkit tui``, with ``--db``): that path skips building the whole Typer CLI, which
    would cost more than the TUI's own start-up. None for anything else."""
    import os

    rest = list(args)
    db = os.environ.get("TRIALKIT_DB") or "trialkit.db"
    if rest[:1] == ["--db"] and len(rest) >= 2:
        db, rest = rest[1], rest[2:]
    elif rest[:1] and rest[0].startswith("--db="):
        db, rest = rest[0].split("=", 1)[1], rest[1:]
    if rest not in ([], ["tui"]) or os.environ.get("TRIALKIT_CLOCK"):
        return None
    return db


def json_requested(args: list[str]) -> bool:
    """Whether --json was given as a global option (before any bare ``--``)."""
    head = args[: args.index("--")] if "--" in args else args
    return "--json" in head


def fail(human: str | None, message: str, exit_code: int, *, as_json: bool,
         details: dict[str, object] | None = None) -> NoReturn:
    """End a refused or invalid command: the human text on stderr and, with --json, one
    JSON document ``{"error": ..., "exit_code": ...}`` on stdout (after any details the
    command gave, e.g. which audit event failed verification)."""
    import json

    if human is not None:
        print(human, file=sys.stderr)
    if as_json:
        doc = (details or {}) | {"error": message, "exit_code": exit_code}
        print(json.dumps(doc, indent=2, default=str, ensure_ascii=False))
    sys.exit(exit_code)


def run_cli(args: list[str], *, as_json: bool) -> None:
    """The Typer CLI, not standalone, so that Click's usage errors (unknown command or
    option, a bad value, a missing argument) end here like every other error."""
    import typer

    from trialkit.cli.app import app

    try:
        status = app(args=args, prog_name="trialkit", standalone_mode=False)
    except typer.TyperException as exc:
        show = getattr(exc, "show", None)  # Click's usage text and hint, as Typer prints it
        if callable(show):
            show()
        else:
            print(f"Error: {exc.format_message()}", file=sys.stderr)
        message = exc.format_message()
        if "\n" in message:  # a group without its command answers with its whole help
            usage = message.splitlines()[0].removeprefix("Usage: ")
            message = f"a command is missing: {usage}"
            print(f"Error: {message}", file=sys.stderr)
        fail(None, message, exc.exit_code, as_json=as_json)
    except typer.Abort:  # end of input at a prompt
        fail("Aborted: nothing was changed.", "aborted: nothing was changed", 1,
             as_json=as_json)
    if isinstance(status, int) and status != 0:  # Click's Exit(n), e.g. 130 on Ctrl-C
        sys.exit(status)


def main() -> None:
    from trialkit.domain.errors import TrialkitError

    args = hoist_global_options(sys.argv[1:])
    as_json = json_requested(args)
    try:
        db = plain_tui_database(args)
        if db is not None:
            from trialkit.tui.launch import open_tui_lazily

            open_tui_lazily(db)
            return
        run_cli(args, as_json=as_json)
    except TrialkitError as exc:
        from trialkit.cli.wording import cli_message, error_line

        fail(error_line(exc), cli_message(exc), exc.exit_code, as_json=as_json,
             details=exc.details)
    except OSError as exc:  # a file written past what the step's own handling covers
        from trialkit.domain.errors import DiskFull, write_failed

        failure = write_failed(exc, exc.filename or "a file")
        if not isinstance(failure, DiskFull):
            raise
        fail(f"Refused: {failure.message}", failure.message, 1, as_json=as_json)
    except KeyboardInterrupt:
        print("Interrupted: nothing was changed by the interrupted step.", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
