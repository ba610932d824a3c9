"""A `trialkit serve` started as a user starts it (a subprocess on a free port), and what
the tests need to see of it: its app processes, read from /proc, not from the server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trialkit.demo import DEMO_PASSWORD

PASSWORD = DEMO_PASSWORD


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def app_processes(pid: int) -> list[int]:
    """The app processes (`python -m trialkit tui`) a server started."""
    apps = []
    for child in descendants(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"trialkit" in cmd and b"tui" in cmd and b"python" in cmd[0]:
            apps.append(child)
    return apps


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    port: int

    @property
    def origin(self) -> str:
        return self.url.split("/", 3)[0] + "//" + self.url.split("/")[2]


@contextmanager
def serving(db: Path, *args: str, port: int | None = None) -> Iterator[Served]:
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trialkit", "--db", str(db), "serve", "--port", str(port),
         *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("trialkit serve: "), (line, proc.stderr.read() if
                                                      proc.stderr else "")
        url = line.split()[2].rstrip("/")
        yield Served(proc, url, port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(condition: object, timeout: float = 30.0) -> None:
    """Poll ``condition`` (a callable) until it is true; fail after ``timeout``."""
    assert callable(condition)
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.1)
