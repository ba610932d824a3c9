"""`make bench` runs every benchmark to the end, and each has quick sizes for
`make bench QUICK=1` (a smoke run). The diary-import bench checks its own result: it stopped
`make bench` while it still expected one audit event per imported row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_every_bench_has_quick_sizes_in_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    benches = sorted(p.name for p in (ROOT / "bench").glob("*.py"))
    assert benches
    for name in benches:
        assert f"bench/{name}" in makefile, f"{name} has no quick sizes for `make bench QUICK=1`"
    assert "|| exit 1; done" not in makefile  # one failing bench no longer stops the rest


def test_the_diary_import_bench_runs_to_the_end(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "diary_import.py"), "--rows", "120",
         "--rounds", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "check: stored 120 rows, 1 diary audit event(s), audit verify OK" in done.stdout
