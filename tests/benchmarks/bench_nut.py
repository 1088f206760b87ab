"""Network UPS Tools side by side: how late NUT notifies of an outage with its default timing.

A private NUT (``tests/benchmarks/nut.py``): ``upsd`` with the ``dummy-ups`` driver and
``upsmon`` with their **default** timing (driver ``pollinterval`` 2 s, upsmon ``POLLFREQ`` and
``POLLFREQALERT`` 5 s) and a ``NOTIFYCMD`` that timestamps ONBATT and ONLINE.  The dummy UPS's
``ups.status`` is flipped OB/OL at random phases; the latency is from the rewrite of its
status to the notification.  NUT's figure is "status edge → upsmon notifies"; ours (the
``latency`` benchmark) is "mains edge → client decision", which has more hops (bridge, broker,
client) — the comparison favours NUT.

Debian's ``nut-server`` and ``nut-client`` are installed with apt when missing and this runs
as root.  If NUT cannot run, the result says exactly why (``available: false``, ``reason``)
instead of a figure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.benchmarks import nut
from tests.benchmarks._rig import load_average, summary_ms

FLIPS = 40
PACKAGES = ("nut-server", "nut-client")
BINARIES = ("dummy-ups", "upsd", "upsmon")
INSTALL_HINT = "install Debian's NUT as root: apt-get install -y nut-server nut-client"


def missing_binaries() -> list[str]:
    found = {
        name
        for name in BINARIES
        for directory in nut.NUT_LIBEXEC
        if os.access(Path(directory) / name, os.X_OK)
    }
    return [name for name in BINARIES if name not in found]


def ensure_installed() -> str:
    """Install NUT with apt when missing (as root); returns how it came to be there.

    Raises :class:`~tests.benchmarks.nut.NutUnavailableError` saying why it cannot be.
    """
    missing = missing_binaries()
    if not missing:
        return "already installed"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise nut.NutUnavailableError(
            f"NUT is not installed ({', '.join(missing)}): {INSTALL_HINT}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
    done = subprocess.run(
        ["apt-get", "install", "-y", "-qq", *PACKAGES],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    still = missing_binaries()
    if done.returncode != 0 or still:
        raise nut.NutUnavailableError(
            f"apt-get install {' '.join(PACKAGES)} failed (exit {done.returncode}; still missing "
            f"{', '.join(still) or 'nothing'}): {done.stderr.strip()[-500:]}"
        )
    return "installed by the benchmark (apt-get install nut-server nut-client)"


def version() -> str | None:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "nut-server"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def one_outage() -> dict[str, list[float]]:
    """One OL→OB edge and its ONBATT notification (the smoke run: a few seconds, not minutes)."""
    instance = nut.start()
    try:
        edge = instance.set_status("OB")
        seen = instance.wait_for("ONBATT", 1, timeout=30)
    finally:
        instance.stop()
    return {"onbatt_s": [seen - edge], "online_s": []}


def run(smoke: bool) -> dict[str, Any]:
    base: dict[str, Any] = {
        "timing": ("defaults: dummy-ups pollinterval 2 s; upsmon POLLFREQ 5 s, POLLFREQALERT 5 s"),
        "path": (
            "ups.status rewritten -> dummy-ups poll -> upsd -> upsmon poll -> NOTIFYCMD "
            "(shell script stamps date +%s.%N)"
        ),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        base["installed"] = ensure_installed()
        base["version"] = version()
        data = one_outage() if smoke else nut.measure(FLIPS)
    except (nut.NutUnavailableError, TimeoutError, OSError) as exc:
        return {**base, "available": False, "reason": f"{type(exc).__name__}: {exc}"}
    result = {
        **base,
        "available": True,
        "flips": len(data["onbatt_s"]),
        "onbatt_ms": summary_ms(data["onbatt_s"]),
        "load_average": load_average(),
    }
    if data["online_s"]:
        result["online_ms"] = summary_ms(data["online_s"])
    return result
