"""How fast `trialkit --help` starts, against `python -c "import typer"`.

Run with the project's interpreter:  .venv/bin/python bench/cli_startup.py [--runs N]

Each sample is a fresh interpreter (cold process, warm file cache), the two commands
alternating so that machine noise hits both alike. Prints the medians and their ratio
against the goal (at most 1.5x the bare Typer import), then checks that printing help
imports none of the heavy modules (Textual, SQLAlchemy, cryptography and what pulls them).

Exit status: 1 if help fails or imports a heavy module; the ratio never fails the run
(timings on shared machines are too noisy to gate on), it is only reported."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.5
WARMUP_RUNS = 2

HELP = [sys.executable, "-m", "trialkit", "--help"]
BASELINE = [sys.executable, "-c", "import typer"]

# Importing any of these while printing help is a bug: each costs tens of milliseconds.
HEAVY = (
    "textual", "textual_serve", "sqlalchemy", "sqlmodel", "alembic", "psycopg",
    "cryptography", "pydantic",
)

# Runs the real entry point with `--help` and reports what it imported, as JSON on stdout.
PROBE = """
import contextlib, io, json, sys
sys.argv = ["trialkit", "--help"]
from trialkit.__main__ import main
out, code = io.StringIO(), 0
with contextlib.redirect_stdout(out):
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
print(json.dumps({"exit": code, "help": out.getvalue(), "modules": sorted(sys.modules)}))
"""


@dataclass(frozen=True)
class Timing:
    label: str
    seconds: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def min_ms(self) -> float:
        return min(self.seconds) * 1000


def clean_env() -> dict[str, str]:
    """The caller's environment without trialkit settings or anything that slows Python.
    PYTHONDONTWRITEBYTECODE goes too: the warm-up runs write trialkit's bytecode cache, as
    installing it does, where the baseline's Typer already has its own."""
    drop = ("TRIALKIT_", "PYTHONPROFILEIMPORTTIME", "PYTHONDEVMODE", "PYTHONTRACEMALLOC",
            "PYTHONDONTWRITEBYTECODE")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def run_once(cmd: list[str]) -> float:
    """Wall time of one fresh process; a failing command stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=clean_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with exit status {done.returncode}:\n{done.stderr}")
    return elapsed


def measure(runs: int) -> tuple[Timing, Timing]:
    """Alternate the two commands, after a warm-up that also compiles any stale .pyc."""
    for _ in range(WARMUP_RUNS):
        run_once(HELP)
        run_once(BASELINE)
    help_s: list[float] = []
    base_s: list[float] = []
    for _ in range(runs):
        help_s.append(run_once(HELP))
        base_s.append(run_once(BASELINE))
    return Timing("trialkit --help", help_s), Timing('python -c "import typer"', base_s)


def imported_while_helping() -> tuple[int, str, list[str]]:
    """(exit status, help text, every module imported) of one `trialkit --help`."""
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the import probe failed:\n{done.stderr}")
    report = json.loads(done.stdout)
    return int(report["exit"]), str(report["help"]), list(report["modules"])


def heavy_packages(modules: list[str]) -> dict[str, int]:
    """Heavy top-level packages among the imported modules, with how many modules of each."""
    found: dict[str, int] = {}
    for m in modules:
        top = m.split(".")[0]
        if top in HEAVY:
            found[top] = found.get(top, 0) + 1
    return dict(sorted(found.items()))


def import_times(cmd_tail: list[str]) -> dict[str, int]:
    """Self import time in microseconds per module, from `python -X importtime`."""
    done = subprocess.run([sys.executable, "-X", "importtime", *cmd_tail], cwd=ROOT,
                          env=clean_env(), capture_output=True, text=True)
    times: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line.removeprefix("import time:").split("|")
        times[name.strip()] = int(self_us)
    return times


def slowest_extra_imports(top: int = 8) -> list[tuple[str, int]]:
    """Modules `trialkit --help` imports beyond `import typer`, slowest first."""
    extra = import_times(["-m", "trialkit", "--help"])
    for name in import_times(["-c", "import typer"]):
        extra.pop(name, None)
    return sorted(extra.items(), key=lambda kv: kv[1], reverse=True)[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="samples of each command")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    print(f"python {sys.version.split()[0]} at {sys.executable}; {os.cpu_count()} CPUs; "
          f"{args.runs} alternating runs each after {WARMUP_RUNS} warm-up")
    trialkit_help, baseline = measure(args.runs)
    for t in (trialkit_help, baseline):
        print(f"  {t.label:<28} median {t.median_ms:6.1f} ms   min {t.min_ms:6.1f} ms")
    ratio = trialkit_help.median_ms / baseline.median_ms
    verdict = "within the goal" if ratio <= GOAL_RATIO else "OVER the goal"
    print(f"  ratio of medians {ratio:.2f}x (goal: at most {GOAL_RATIO}x) - {verdict}")
    # The fastest runs are the least disturbed by other load: a second opinion on the ratio.
    print(f"  ratio of minimums {trialkit_help.min_ms / baseline.min_ms:.2f}x")

    print("\nModules `trialkit --help` imports beyond `import typer` (self time):")
    for name, us in slowest_extra_imports():
        print(f"  {us / 1000:6.1f} ms  {name}")

    status, help_text, modules = imported_while_helping()
    heavy = heavy_packages(modules)
    shown = ", ".join(f"{name} ({n} modules)" for name, n in heavy.items()) or "none"
    print(f"\n`trialkit --help` imported {len(modules)} modules; heavy packages "
          f"({', '.join(HEAVY)}): {shown}")
    failed = False
    if status != 0 or "Usage:" not in help_text:
        print(f"FAIL: --help exited {status} or printed no usage line")
        failed = True
    if heavy:
        print("FAIL: --help must not import heavy modules; import them inside the commands "
              "that need them")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
