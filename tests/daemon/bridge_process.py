"""Run ``python -m bridge run -c FILE`` as a real process against a test broker."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bridge.broker.runner import Mosquitto
from tests.helpers.process import stop_service

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "test-bridge"


def write_config(
    broker: Mosquitto,
    directory: Path,
    extra: str = "",
    *,
    mains: str = "{source: gpio, confirm_off: 100ms, confirm_on: 100ms}",
    **mqtt: str,
) -> Path:
    """A bridge configuration with a simulated meter at 10 Hz and simulated mains."""
    directory.mkdir(parents=True, exist_ok=True)
    secret = directory / "bridge.pass"
    secret.write_text(broker.bridge(DEVICE).password + "\n")
    secret.chmod(0o600)
    settings = {"keepalive": "5s", "reconnect_min": "200ms", "reconnect_max": "1s"} | mqtt
    mqtt_lines = "\n".join(f"  {k}: {v}" for k, v in settings.items())
    path = directory / "bridge.yaml"
    path.write_text(
        f"""
device: {{id: {DEVICE}, name: Test bridge, data_dir: {directory / "data"}}}
mqtt:
  host: 127.0.0.1
  port: {broker.port}
  password_file: {secret}
{mqtt_lines}
meter: {{type: simulated, interval: 100ms}}
mains: {mains}
leds: {{enabled: false}}
health: {{interval: 5s}}
simulation: {{enabled: true}}
{extra}
"""
    )
    return path


@dataclass
class BridgeProcess:
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    runs: list[int] = field(default_factory=list)

    def start(self) -> BridgeProcess:
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "-v", "run", "-c", str(self.config)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.runs.append(self.process.pid)
        return self

    @property
    def data_dir(self) -> Path:
        return self.config.parent / "data"

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; the exit code and how long the bridge took to exit."""
        assert self.process is not None
        started = time.monotonic()
        code = stop_service(self.process, self.log, timeout)
        self.process = None
        return code, time.monotonic() - started

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self.process = None

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def last_seq(self) -> int:
        """The spool's highest sequence number, read from the database (bridge stopped)."""
        conn = sqlite3.connect(self.data_dir / "bridge.db")
        try:
            row = conn.execute("SELECT MAX(seq) FROM spool_items").fetchone()
        finally:
            conn.close()
        return int(row[0] or 0)

    def undelivered(self) -> int:
        conn = sqlite3.connect(self.data_dir / "bridge.db")
        try:
            row = conn.execute("SELECT COUNT(*) FROM spool_items WHERE delivered = 0").fetchone()
        finally:
            conn.close()
        return int(row[0])


def persist_broker(broker: Mosquitto, timeout: float = 5.0) -> None:
    """Make Mosquitto write its persistence file now (SIGUSR1), as its autosave would."""
    assert broker.pid is not None
    db = broker.directory / "mosquitto.db"
    before = db.stat().st_mtime_ns if db.exists() else 0
    os.kill(broker.pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists() and db.stat().st_mtime_ns != before:
            time.sleep(0.2)
            return
        time.sleep(0.05)
    raise AssertionError("mosquitto did not save its persistence file")
