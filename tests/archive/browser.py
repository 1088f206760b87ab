"""Headless Chromium (Debian's ``chromium`` package) as a test browser: DOM and screenshots.

Nothing is downloaded at run time: the browser is the system's.  Chromium renders the
page (layout, inline SVG, styles) and gives back the DOM it built (``--dump-dom``) or
a PNG of the window (``--screenshot``).  Missing, it skips the test with an install
instruction, or fails it under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.archive.postgres import unavailable

INSTALL = "Chromium is needed: sudo apt-get install -y chromium"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        unavailable(INSTALL)
        raise AssertionError("unreachable")
    return found


def _run(*args: str, timeout: float = 60.0) -> str:
    with tempfile.TemporaryDirectory(prefix="pb-chromium-") as profile:
        argv = [
            chromium(), "--headless", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
            "--disable-extensions", "--disable-background-networking", "--no-default-browser-check",
            f"--user-data-dir={profile}", *args,
        ]  # fmt: skip
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.insert(2, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def dump_dom(url: str) -> str:
    """The DOM Chromium built for ``url``, serialised."""
    return _run("--dump-dom", url)


def screenshot(url: str, path: Path, size: tuple[int, int] = (1500, 700)) -> Path:
    _run(f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", url)
    if not path.is_file():
        raise AssertionError(f"chromium made no screenshot of {url}")
    return path
