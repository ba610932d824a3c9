"""Entry point: run the CLI and turn domain errors into one line and an exit status."""

from __future__ import annotations

import sys


def main() -> None:
    from trialkit.cli.app import app
    from trialkit.domain.errors import TrialkitError

    try:
        app(prog_name="trialkit")
    except TrialkitError as exc:
        label = "Error" if exc.exit_code == 2 else "Refused"
        print(f"{label}: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("Interrupted: nothing was changed by the interrupted step.", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
