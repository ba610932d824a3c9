"""What both browser tests stand up: Debian's Chromium, and `trialkit serve` behind an nginx
started on a free port with its own configuration (no root needed)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.web.served import Served, serving

CHROMIUM = "/usr/bin/chromium"


@contextmanager
def served_behind_nginx(demo_db: Path, folder: Path, conf: str, public: str,
                        app_port: int) -> Iterator[Served]:
    """nginx run with ``conf`` (its configuration file's text) in ``folder``, in front of
    `trialkit serve --public-url PUBLIC` on ``app_port``; stopped afterwards."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conf_path = folder / "nginx.conf"
    conf_path.write_text(conf)
    proxy = subprocess.Popen([nginx, "-e", str(folder / "error.log"), "-p", str(folder),
                              "-c", str(conf_path)], stdin=subprocess.DEVNULL)
    try:
        with serving(demo_db, "--public-url", public, port=app_port) as served:
            served.url = public
            yield served
    finally:
        proxy.terminate()
        proxy.wait(timeout=20)
