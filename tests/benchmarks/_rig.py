"""What the end-to-end benchmarks share: a private Mosquitto, the real bridge daemon in this
process with its mains pin on gpiozero's MockFactory, and shutdown clients in child processes
that report the moment their decision changes (``probe_clients``).

Times are ``time.monotonic()`` (``CLOCK_MONOTONIC``), which is one clock for every process
on a Linux machine, so an edge stamped here and a decision stamped in a child compare directly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from gpiozero.pins.mock import MockFactory

from bridge.broker.runner import BrokerSetup, Mosquitto, prepare
from bridge.config.bridge import parse_bridge_config
from bridge.daemon import Daemon

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "bench-bridge"
PIN = 4


# --------------------------------------------------------------------------- figures


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100): a value that was actually measured."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    """``count``, ``p50``, ``p99``, ``max`` and ``min`` in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "count": len(ms),
        "min": round(min(ms), 3),
        "p50": round(percentile(ms, 50), 3),
        "p99": round(percentile(ms, 99), 3),
        "max": round(max(ms), 3),
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (the machine is shared; say how busy it was)."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


# --------------------------------------------------------------------------- logging


@contextlib.contextmanager
def logs_to(path: Path, level: int = logging.INFO) -> Iterator[None]:
    """Send the bridge's log (as a real one writes its journal) to a file, not the terminal."""
    root = logging.getLogger()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


# --------------------------------------------------------------------------- the rig


def work_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def start_broker(work: Path, clients: Sequence[str]) -> Mosquitto:
    broker = prepare(work / "mosquitto", BrokerSetup(bridges=(DEVICE,), clients=tuple(clients)))
    broker.start()
    return broker


class InProcessBridge:
    """The real bridge daemon on a thread of this process; its mains pin is a mock pin.

    ``edge(on)`` drives the pin and returns the monotonic time just before the change, the
    moment a real charger's output would have dropped or come back.
    """

    def __init__(
        self, broker: Mosquitto, work: Path, *, confirm_off: float, confirm_on: float
    ) -> None:
        secret = work / "bridge.pass"
        secret.write_text(broker.bridge(DEVICE).password + "\n")
        self.config = parse_bridge_config(
            f"""
device: {{id: {DEVICE}, data_dir: {work / "bridge-data"}}}
mqtt: {{host: 127.0.0.1, port: {broker.port}, password_file: {secret}, reconnect_min: 200ms}}
meter: {{type: none}}
mains: {{pin: {PIN}, pull: none, confirm_off: {confirm_off}, confirm_on: {confirm_on}}}
leds: {{enabled: false}}
"""
        )
        self.factory = MockFactory()
        self.pin = self.factory.pin(PIN)
        self.pin.drive_high()  # mains present when the bridge starts
        self.daemon = Daemon(self.config, pin_factory=self.factory, install_signals=False)
        self._result: list[int] = []
        self._thread = threading.Thread(
            target=lambda: self._result.append(self.daemon.run()), name="bench-bridge", daemon=True
        )

    def start(self, timeout: float = 15.0) -> InProcessBridge:
        self._thread.start()
        if not self.daemon.started.wait(timeout):
            raise RuntimeError("the bridge daemon did not start")
        return self

    def edge(self, *, on: bool) -> float:
        at = time.monotonic()
        if on:
            self.pin.drive_high()
        else:
            self.pin.drive_low()
        return at

    def stop(self) -> None:
        self.daemon.request_stop()
        self._thread.join(15)
        self.factory.close()


# --------------------------------------------------------------------------- probe clients


class Decisions:
    """Decision changes reported by every probe process, per client and phase, in order."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.ready: set[str] = set()
        self.errors: list[str] = []

    def add(self, kind: str, client: str, at: float) -> None:
        with self._cond:
            if kind == "ready":
                self.ready.add(client)
            else:
                self.times[kind][client].append(at)
            self._cond.notify_all()

    def fail(self, text: str) -> None:
        with self._cond:
            self.errors.append(text)
            self._cond.notify_all()

    def count(self, phase: str, client: str) -> int:
        with self._cond:
            return len(self.times[phase][client])

    def wait(self, clients: Sequence[str], phase: str, n: int, timeout: float) -> list[float]:
        """The time of each client's ``n``-th change to ``phase`` (waits for all of them)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self.errors:
                    raise RuntimeError("probe client failed: " + "; ".join(self.errors))
                if all(len(self.times[phase][c]) >= n for c in clients):
                    return [self.times[phase][c][n - 1] for c in clients]
                left = deadline - time.monotonic()
                if left <= 0:
                    late = [c for c in clients if len(self.times[phase][c]) < n]
                    raise TimeoutError(
                        f"{len(late)} client(s) did not reach {phase} #{n} in {timeout} s: "
                        + ", ".join(late[:5])
                    )
                self._cond.wait(left)

    def wait_ready(self, clients: Sequence[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.ready.issuperset(clients):
                if self.errors:
                    raise RuntimeError("probe client failed: " + "; ".join(self.errors))
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(set(clients) - self.ready)
                    raise TimeoutError(
                        f"{len(missing)} client(s) not ready in {timeout} s: {missing[:5]}"
                    )
                self._cond.wait(left)


class ProbeProcess:
    """``python -m tests.benchmarks.probe_clients SPEC``: real client runtimes in a child."""

    def __init__(
        self,
        broker: Mosquitto,
        work: Path,
        clients: Sequence[str],
        decisions: Decisions,
        *,
        name: str,
    ) -> None:
        spec = {
            "host": broker.host,
            "port": broker.port,
            "bridges": [DEVICE],
            "clients": [{"id": c, "password": broker.client(c).password} for c in clients],
            "log": str(work / f"{name}.log"),
        }
        self.spec_file = work / f"{name}.json"
        self.spec_file.write_text(json.dumps(spec))
        self.spec_file.chmod(0o600)
        self.clients = list(clients)
        self._decisions = decisions
        self._stderr = (work / f"{name}.stderr").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks.probe_clients", str(self.spec_file)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        stdout: IO[bytes] | None = self.process.stdout
        assert stdout is not None
        for raw in stdout:
            parts = raw.decode().split()
            if len(parts) == 3:
                self._decisions.add(parts[0], parts[1], float(parts[2]))
        if self.process.wait() not in (0, None):
            self._decisions.fail(f"probe exited with {self.process.returncode}")

    def stop(self) -> None:
        stdin = self.process.stdin
        if stdin is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                stdin.close()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        self._stderr.close()


def cleanup(work: Path, *, keep: bool = False) -> None:
    if not keep:
        shutil.rmtree(work, ignore_errors=True)


def stderr_tail(work: Path, name: str, limit: int = 2000) -> str:
    try:
        return (work / f"{name}.stderr").read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2)
