"""The TUI on a large trial against a small one: the participants list, its search and the
dashboard, driven by Textual's Pilot.

Run with the project's interpreter:  .venv/bin/python bench/tui_scale.py [--runs N]

Set-up (not timed): two trials in SQLite files, ``--participants`` (20,000) and ``--small``
(56) participants. ``trialkit demo --participants N`` builds them when this trialkit has it;
otherwise bench/export.py's builder does (randomized participants with 112 diary days each,
bulk-inserted). Pass ``--keep DIR`` to build them once into DIR and reuse them.

Timed, in this one process, the two sizes alternating after a warm-up round, each run on a
fresh app (``make_app`` over a new engine), signed in as an investigator:

- list open: from pressing ``p`` on the home screen until the participants table shows its
  first rows (and the screen has refreshed);
- search keystroke: with the whole list read, ``SHS-0`` typed into the search box; from the
  last key (``1``) until every row the table shows contains ``SHS-01`` and the page line
  counts them;
- dashboard open: from pressing ``i`` on the home screen until the enrolment table and the
  CONSORT counts are filled in.

Prints min/median/max of each, the ratio of the medians (large / small) against the goals
(at most 1.5x, 2x and 2x). Exit status 1 only if a probe never sees what it waits for; the
ratios are reported, never gated on."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"list open": 1.5, "search keystroke": 2.0, "dashboard open": 2.0}
SEARCH = "SHS-01"
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Trial:
    """A trial database and the investigator who signs in to it."""

    path: Path
    participants: int
    user: str
    password: str


@dataclass
class Figures:
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, what: str, s: float) -> None:
        self.seconds.setdefault(what, []).append(s)


def _demo_has_sizes() -> bool:
    done = subprocess.run([sys.executable, "-m", "trialkit", "demo", "--help"], cwd=ROOT,
                          capture_output=True, text=True)
    return "--participants" in done.stdout


def build(folder: Path, n: int) -> Trial:
    """A trial of ``n`` participants in ``folder`` (kept if it is there already)."""
    if _demo_has_sizes():
        path = folder / f"demo-{n}.db"
        if not path.exists():
            done = subprocess.run(
                [sys.executable, "-m", "trialkit", "demo", "--participants", str(n),
                 "--db", str(path)], cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"could not build the demo of {n}:\n{done.stderr}")
        from trialkit.demo import DEMO_PASSWORD

        return Trial(path, n, "ivan", DEMO_PASSWORD)
    spec = importlib.util.spec_from_file_location("bench_export", ROOT / "bench" / "export.py")
    assert spec is not None and spec.loader is not None
    export: Any = importlib.util.module_from_spec(spec)
    sys.modules["bench_export"] = export  # its dataclasses look their module up
    spec.loader.exec_module(export)
    path = folder / f"bulk-{n}.db"
    if not path.exists():
        export.create_trial(str(path))
        export.fill_sqlite(path, n)
    return Trial(path, n, "iris", export.PASSWORD)


async def _until(pilot: Any, done: Callable[[], bool], what: str) -> None:
    """Let the app run until ``done()``, then until the screen has been refreshed (painted)
    with it. Polls with ``asyncio.sleep``, not ``pilot.pause()``: that waits for the whole
    process to go idle, so it would also wait for whatever the screen goes on reading in the
    background after painting."""
    deadline = time.monotonic() + TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            sys.exit(f"{what}: not seen within {TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.001)
    painted = asyncio.Event()
    pilot.app.screen.call_after_refresh(painted.set)
    await painted.wait()


async def _timed(pilot: Any, key: str, done: Callable[[], bool], what: str) -> float:
    """Seconds from pressing ``key`` until ``done()`` is painted. The key is pressed in a
    task of its own: ``pilot.press`` returns only once the process is idle (see above)."""
    start = time.perf_counter()
    pressing = asyncio.create_task(pilot.press(key))
    await _until(pilot, done, what)
    took = time.perf_counter() - start
    await pressing
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    return took


async def measure(trial: Trial, figures: Figures) -> None:
    """One run of every probe on a fresh app over ``trial``."""
    from textual.widgets import DataTable, Input, Static

    from trialkit.domain.clock import SystemClock
    from trialkit.store.db import make_engine
    from trialkit.tui.app import make_app
    from trialkit.tui.screens.dashboard import DashboardScreen
    from trialkit.tui.screens.home import HomeScreen
    from trialkit.tui.screens.participants import ParticipantsScreen

    engine = make_engine(str(trial.path))
    app = make_app(engine, clock=SystemClock(), db_label=str(trial.path), training=True)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await app.workers.wait_for_complete()
            app.screen.query_one("#user-name", Input).value = trial.user
            app.screen.query_one("#password", Input).value = trial.password
            app.screen.query_one("#password", Input).focus()
            await pilot.press("enter")
            await _until(pilot, lambda: isinstance(app.screen, HomeScreen), "home screen")
            await app.workers.wait_for_complete()

            def rows() -> list[str]:
                if not isinstance(app.screen, ParticipantsScreen):
                    return []
                found = app.screen.query("#participants").results(DataTable)
                table = next(found, None)
                if table is None:  # pushed, not composed yet
                    return []
                return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]

            figures.add("list open", await _timed(pilot, "p", lambda: bool(rows()), "list"))
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press("slash", *SEARCH[:-1])
            await app.workers.wait_for_complete()
            await pilot.pause()
            page = app.screen.query_one("#participant-page", Static)

            def filtered() -> bool:
                shown = rows()
                return bool(shown) and all(SEARCH in pid for pid in shown) and str(
                    page.render()).startswith("1–")

            figures.add("search keystroke",
                        await _timed(pilot, SEARCH[-1], filtered, "filtered rows"))
            await pilot.press("escape", "escape")
            await _until(pilot, lambda: isinstance(app.screen, HomeScreen), "home again")

            def counted() -> bool:
                found = app.screen.query("#enrolment").results(DataTable)
                table = next(found, None) if isinstance(app.screen, DashboardScreen) else None
                return table is not None and table.row_count > 0

            figures.add("dashboard open", await _timed(pilot, "i", counted, "dashboard"))
    finally:
        engine.dispose()


def report(trials: list[Trial], figures: dict[int, Figures]) -> None:
    small, large = trials[0].participants, trials[1].participants
    for what, goal in GOALS.items():
        print(f"{what}:")
        for t in trials:
            s = figures[t.participants].seconds[what]
            print(f"  {t.participants:>6,} participants  min {min(s) * 1000:7.1f} ms  median "
                  f"{statistics.median(s) * 1000:7.1f} ms  max {max(s) * 1000:7.1f} ms")
        ratio = (statistics.median(figures[large].seconds[what])
                 / statistics.median(figures[small].seconds[what]))
        verdict = "within the goal" if ratio <= goal else "OVER the goal"
        print(f"  {large:,} vs {small:,}: {ratio:.2f}x (goal: at most {goal}x) - {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=20_000)
    parser.add_argument("--small", type=int, default=56)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each size")
    parser.add_argument("--keep", type=Path, help="build the trials here once and reuse them")
    args = parser.parse_args()
    if args.runs < 3 and args.participants >= 1000:
        print("note: fewer than 3 runs give no min/median/max worth recording")
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        trials = [build(folder, args.small), build(folder, args.participants)]
        print(f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; trials of "
              f"{args.small:,} and {args.participants:,} participants ready in "
              f"{time.perf_counter() - start:.1f} s; {args.runs} runs each after a warm-up")
        figures = {t.participants: Figures() for t in trials}
        warmup = {t.participants: Figures() for t in trials}
        for run in range(args.runs + 1):
            for t in trials:
                asyncio.run(measure(t, figures[t.participants] if run else warmup[
                    t.participants]))
        report(trials, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
