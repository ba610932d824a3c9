"""How fast `trialkit --db X tui` gives a usable sign-in form, against a bare Textual app
with one Input.

Run with the project's interpreter:  .venv/bin/python bench/tui_startup.py [--runs N]

Each sample is a fresh interpreter (cold process, warm file cache) timed from just before
the process is spawned until its form is usable: painted, the cursor in the first field,
and (trialkit) the trial's title read from the database and shown (after its first glance
at a SQLite file, ``TrialHeadingRead``, which the sign-in screen now makes while composing
its first frame, or the full read, ``TrialLoaded``, whichever comes first). The first paint
is recorded too, as a phase.

- trialkit: the real CLI path, `trialkit.__main__.main()` with `--db X tui` (Typer, then
  `open_tui`, then the app), on a KetHead trial made by `trialkit init` in a temporary
  SQLite file. The probe only makes the app headless and, once the sign-in screen has
  shown the trial it read (``call_after_refresh`` from either handler), checks the
  user-name field has the focus, reports and exits.
- baseline: an App with one focused Input, run headless and reported the same way after
  its first paint.

The two alternate, after warm-up runs, so that machine noise hits both alike. Prints the
median, minimum and maximum, the ratio of the medians against the goal (at most 1.5x), and
where trialkit's time goes: interpreter and CLI, Textual and the TUI modules, the CLI's
database work before the app starts, the app up to the first paint, and from there until
the trial is read.

`--what-if` also times, in the same alternation, two variants of the trialkit probe: the
start-up as it was (engine opened, schema checked and trial read before the app, as
`open_tui` did until the database moved into the first worker), and the app started
without Typer (what a `tui` fast path in `trialkit.__main__` would give).

Exit status: 1 if a probe fails (say the sign-in screen never shows); the ratio never
fails the run (timings on shared machines are too noisy to gate on), it is only reported."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.5
WARMUP_RUNS = 2
TIMEOUT_S = 60.0

# Both probes print one JSON line of marks (seconds since the parent spawned the process,
# from BENCH_T0) as soon as their first screen has painted, then exit.
_MARKS = """
import json, os, sys, time
T0 = float(os.environ["BENCH_T0"])
MARKS = {"python": time.time() - T0}
def mark(name):
    MARKS[name] = time.time() - T0
def painted(app):
    mark("painted")
def usable(app):
    # The form is up with the cursor in its first field and (trialkit) the trial is read.
    if "usable" in MARKS:
        return  # the glance and the full read both report: the first counts
    assert app.focused is not None and app.focused.id in ("user-name", "one-input"), app.focused
    mark("usable")
    print(json.dumps(MARKS), flush=True)
    app.exit()
"""

TRIALKIT_PROBE = _MARKS + """
from trialkit.__main__ import main
mark("cli parsed")
from textual.app import App
from trialkit.tui.app import TrialkitApp
from trialkit.tui.screens.login import LoginScreen
mark("tui imported")

def run(self, **options):
    mark("app starts")
    return App.run(self, headless=True, **options)

real_mount = LoginScreen.on_mount
real_loaded = LoginScreen.on_trial_loaded
real_heading = LoginScreen.on_trial_heading_read

def on_mount(self):
    # Queued first, so it runs before the trial read the screen starts after painting.
    self.call_after_refresh(painted, self.app)
    real_mount(self)

def on_trial_loaded(self, message):
    real_loaded(self, message)
    self.call_after_refresh(usable, self.app)

def on_trial_heading_read(self, message):
    real_heading(self, message)
    self.call_after_refresh(usable, self.app)

TrialkitApp.run = run
LoginScreen.on_mount = on_mount
LoginScreen.on_trial_loaded = on_trial_loaded
LoginScreen.on_trial_heading_read = on_trial_heading_read
sys.argv = ["trialkit", "--db", os.environ["BENCH_DB"], "tui"]
#BEFORE
main()
"""

# What-if: open the engine, check the schema and read the trial before the app (as the CLI
# did at first).
BEFORE_PROBE = TRIALKIT_PROBE.replace(
    "#BEFORE",
    "from trialkit.cli.context import Cli\nc = Cli(db=os.environ['BENCH_DB'])\n"
    "c.engine(); c.trial()",
)

# What-if: no Typer, no command modules: straight to the app as `open_tui` starts it.
NO_TYPER_PROBE = _MARKS + """
from trialkit.cli.context import Cli
mark("cli parsed")
from textual.app import App
from trialkit.domain.clock import SystemClock
from trialkit.tui.app import make_app
from trialkit.tui.screens.login import LoginScreen
mark("tui imported")
real_mount = LoginScreen.on_mount
real_loaded = LoginScreen.on_trial_loaded
real_heading = LoginScreen.on_trial_heading_read

def on_mount(self):
    self.call_after_refresh(painted, self.app)
    real_mount(self)

def on_trial_loaded(self, message):
    real_loaded(self, message)
    self.call_after_refresh(usable, self.app)

def on_trial_heading_read(self, message):
    real_heading(self, message)
    self.call_after_refresh(usable, self.app)

LoginScreen.on_mount = on_mount
LoginScreen.on_trial_loaded = on_trial_loaded
LoginScreen.on_trial_heading_read = on_trial_heading_read
c = Cli(db=os.environ["BENCH_DB"])
app = make_app(c.engine, clock=SystemClock(), db_label=c.db, training=False)
mark("app starts")
App.run(app, headless=True)
"""

BASELINE_PROBE = _MARKS + """
from textual.app import App
from textual.widgets import Input
mark("tui imported")

class OneInput(App[None]):
    def compose(self):
        yield Input(placeholder="User name", id="one-input")

    def on_mount(self):
        self.query_one(Input).focus()
        self.call_after_refresh(painted, self)
        self.call_after_refresh(lambda: self.call_after_refresh(usable, self))

app = OneInput()
mark("app starts")
app.run(headless=True)
"""

# Phases of a trialkit start, as (label, from mark, to mark).
PHASES = (
    ("interpreter start", None, "python"),
    ("CLI imports and Typer", "python", "cli parsed"),
    ("Textual and TUI imports", "cli parsed", "tui imported"),
    ("CLI database work before the app", "tui imported", "app starts"),
    ("app start to first paint", "app starts", "painted"),
    ("first paint to usable (trial read)", "painted", "usable"),
)


@dataclass(frozen=True)
class Timing:
    label: str
    runs: list[dict[str, float]]

    @property
    def seconds(self) -> list[float]:
        return [r["usable"] for r in self.runs]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def min_ms(self) -> float:
        return min(self.seconds) * 1000

    def phase_ms(self, start: str | None, end: str) -> float:
        """Median length of one phase across the runs."""
        return statistics.median(r[end] - (r[start] if start else 0.0) for r in self.runs) * 1000


def clean_env(db: str) -> dict[str, str]:
    """The caller's environment without trialkit settings or anything that slows Python
    (TRIALKIT_CLOCK would be refused by a live trial anyway). PYTHONDONTWRITEBYTECODE goes
    too: the warm-up runs write trialkit's bytecode cache, as installing it does, where the
    baseline's Textual already has its own."""
    drop = ("TRIALKIT_", "PYTHONPROFILEIMPORTTIME", "PYTHONDEVMODE", "PYTHONTRACEMALLOC",
            "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["BENCH_DB"] = db
    env.setdefault("TERM", "xterm-256color")
    return env


def run_once(probe: str, env: dict[str, str]) -> dict[str, float]:
    """Spawn one probe and return its marks; a probe that fails stops the benchmark."""
    env = dict(env, BENCH_T0=repr(time.time()))
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"probe failed (exit status {done.returncode}):\n{done.stdout}\n{done.stderr}")
    marks: dict[str, float] = json.loads(lines[-1])
    return marks


def measure(runs: int, env: dict[str, str], probes: dict[str, str]) -> list[Timing]:
    """Alternate the probes, after warm-up runs that also compile any stale .pyc."""
    for _ in range(WARMUP_RUNS):
        for probe in probes.values():
            run_once(probe, env)
    marks: dict[str, list[dict[str, float]]] = {label: [] for label in probes}
    for _ in range(runs):
        for label, probe in probes.items():
            marks[label].append(run_once(probe, env))
    return [Timing(label, runs) for label, runs in marks.items()]


def new_database(folder: Path) -> str:
    """The KetHead trial (live, not training) in a fresh SQLite file."""
    db = str(folder / "bench-tui.db")
    cmd = [sys.executable, "-m", "trialkit", "--db", db, "init", "protocols/kethead.toml",
           "--admin", "alice"]
    env = dict(clean_env(db), TRIALKIT_NEW_PASSWORD="bench-password")
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"could not create the trial database:\n{done.stderr}")
    return db


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="samples of each app")
    parser.add_argument("--db", help="time against this database instead of a fresh one")
    parser.add_argument("--what-if", action="store_true",
                        help="also time the old start-up and a start without Typer")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    probes = {"trialkit --db X tui": TRIALKIT_PROBE}
    if args.what_if:
        probes |= {"as before (db first)": BEFORE_PROBE, "without Typer": NO_TYPER_PROBE}
    probes["bare App + Input"] = BASELINE_PROBE

    with tempfile.TemporaryDirectory() as folder:
        db = args.db or new_database(Path(folder))
        print(f"python {sys.version.split()[0]} at {sys.executable}; {os.cpu_count()} CPUs; "
              f"{args.runs} alternating runs each after {WARMUP_RUNS} warm-up; database {db}")
        timings = measure(args.runs, clean_env(db), probes)

    ours, base = timings[0], timings[-1]
    for t in timings:
        print(f"  {t.label:<22} median {t.median_ms:6.1f} ms   min {t.min_ms:6.1f} ms   "
              f"max {max(t.seconds) * 1000:6.1f} ms   {t.median_ms / base.median_ms:4.2f}x")
    ratio = ours.median_ms / base.median_ms
    verdict = "within the goal" if ratio <= GOAL_RATIO else "OVER the goal"
    print(f"  ratio of medians {ratio:.2f}x (goal: at most {GOAL_RATIO}x) - {verdict}")
    print(f"  ratio of minimums {ours.min_ms / base.min_ms:.2f}x")

    print("\nWhere trialkit's time goes (median of each phase):")
    for label, start, end in PHASES:
        print(f"  {ours.phase_ms(start, end):6.1f} ms  {label}")
    print("Bare app, for comparison:")
    print(f"  {base.phase_ms(None, 'python'):6.1f} ms  interpreter start")
    print(f"  {base.phase_ms('python', 'tui imported'):6.1f} ms  Textual imports")
    print(f"  {base.phase_ms('tui imported', 'painted'):6.1f} ms  app start to first paint")
    print(f"  {base.phase_ms('painted', 'usable'):6.1f} ms  first paint to usable")
    for t in timings[1:-1]:
        print(f"{t.label}: CLI {t.phase_ms('python', 'cli parsed'):.1f} ms, database work "
              f"before the app {t.phase_ms('tui imported', 'app starts'):.1f} ms, app start to "
              f"first paint {t.phase_ms('app starts', 'painted'):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
