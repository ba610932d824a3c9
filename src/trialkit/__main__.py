"""Entry point: run the CLI and turn domain errors into one line and an exit status."""

from __future__ import annotations

import sys

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


def main() -> None:
    from trialkit.domain.errors import TrialkitError

    args = hoist_global_options(sys.argv[1:])
    try:
        db = plain_tui_database(args)
        if db is not None:
            from trialkit.tui.launch import open_tui_lazily

            open_tui_lazily(db)
            return
        from trialkit.cli.app import app

        app(args=args, prog_name="trialkit")
    except TrialkitError as exc:
        label = "Error" if exc.exit_code == 2 else "Refused"
        print(f"{label}: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("Interrupted: nothing was changed by the interrupted step.", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
