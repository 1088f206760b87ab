"""An archive against a real broker: its configuration file, the service or its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bridge.broker.runner import Mosquitto

ROOT = Path(__file__).resolve().parents[2]


def write_config(
    directory: Path,
    broker: Mosquitto,
    database: str,
    *,
    http_port: int = 0,
    extra: str = "",
    client_id: str = "archive-test",
) -> Path:
    password = directory / "archiver.password"
    password.write_text(broker.archiver.password + "\n", encoding="utf-8")
    config = directory / "archive.yaml"
    config.write_text(
        f"""\
archive:
  database: {database}
  flush_interval: 0.05
  retry_max: 1s
gaps:
  resend_after: 2s
  resend_every: 2s
http:
  host: 127.0.0.1
  port: {http_port}
mqtt:
  host: {broker.host}
  port: {broker.port}
  username: archiver
  password_file: {password}
  reconnect_min: 0.2
  reconnect_max: 1
  client_id: {client_id}
{extra}""",
        encoding="utf-8",
    )
    return config


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class ArchiveProcess:
    """``powerbridge archive run`` as a child process (so that it can be SIGKILLed)."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def _urls(self) -> list[str]:
        if not self.log.exists():
            return []
        return [
            line.removeprefix("management view: ").strip()
            for line in self.log.read_text(errors="replace").splitlines()
            if line.startswith("management view: ")
        ]

    def start(self) -> None:
        self._before = len(self._urls())
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "-v", "archive", "run", "-c", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def url(self, timeout: float = 15.0) -> str:
        """The management view's URL printed by the process started last."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            urls = self._urls()
            if len(urls) > self._before:
                return urls[-1]
            time.sleep(0.05)
        raise AssertionError(f"no URL printed; log:\n{self.log.read_text(errors='replace')}")
