"""`trialkit status` on a large trial against a small one, whole process, as a user runs it.

Run with the project's interpreter:  .venv/bin/python bench/status.py [--runs N]

Set-up (not timed): the two trials of bench/tui_scale.py (``trialkit demo --participants N``,
``--participants`` 20,000 and ``--small`` 56; ``--keep DIR`` builds them once and reuses
them, the same folder tui_scale.py's ``--keep`` uses).

Timed: ``python -m trialkit --db FILE status`` signed in as the investigator (password from
the environment), from start to exit, the two sizes alternating after a warm-up round.
Prints min/median/max of each and the ratio of the medians (goal: at most 2x). The status
counts in the database (services.diary.window_summary), so the ratio measures what still grows
with the trial. Exit status 1 only if a run fails; the ratio is reported, never gated on."""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOAL = 2.0


def _tui_scale() -> Any:
    spec = importlib.util.spec_from_file_location("bench_tui_scale", ROOT / "bench" /
                                                  "tui_scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_tui_scale"] = module
    spec.loader.exec_module(module)
    return module


def run_status(trial: Any) -> float:
    env = os.environ | {"TRIALKIT_USER": trial.user, "TRIALKIT_PASSWORD": trial.password}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "trialkit", "--db", str(trial.path),
                           "status"], cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"status on {trial.participants} failed:\n{done.stderr}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=20_000)
    parser.add_argument("--small", type=int, default=56)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each size")
    parser.add_argument("--keep", type=Path, help="build the trials here once and reuse them")
    args = parser.parse_args()
    scale = _tui_scale()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        trials = [scale.build(folder, args.small), scale.build(folder, args.participants)]
        print(f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; trials of "
              f"{args.small:,} and {args.participants:,} participants; {args.runs} runs "
              "each after a warm-up")
        seconds: dict[int, list[float]] = {t.participants: [] for t in trials}
        for run in range(args.runs + 1):
            for t in trials:
                took = run_status(t)
                if run:
                    seconds[t.participants].append(took)
        print("trialkit status (whole process):")
        for t in trials:
            s = seconds[t.participants]
            print(f"  {t.participants:>6,} participants  min {min(s) * 1000:7.1f} ms  median "
                  f"{statistics.median(s) * 1000:7.1f} ms  max {max(s) * 1000:7.1f} ms")
        small, large = (statistics.median(seconds[t.participants]) for t in trials)
        ratio = large / small
        verdict = "within the goal" if ratio <= GOAL else "OVER the goal"
        print(f"  {args.participants:,} vs {args.small:,}: {ratio:.2f}x (goal: at most "
              f"{GOAL}x) - {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
