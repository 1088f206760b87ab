"""Real processes for the NUT integration tests: the facade, Debian's NUT clients, a bridge.

The facade runs as ``powerbridge nut serve`` in a child process; the bridge is played by an
MQTT client with the bridge's own broker credentials publishing what a bridge publishes.
NUT's programs come from Debian's ``nut-client``/``nut-server``; a missing one fails the
test with the install instruction (never a skip).  Every process writes
``time.monotonic()`` stamps (one ``CLOCK_MONOTONIC`` for the whole machine), so the
shutdown time is compared with the policy's deadline without any clock synchronisation.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.broker.runner import Mosquitto, free_port
from bridge.mqtt.contract import BridgeTopics, nut_user
from tests.helpers.mqtt import TestClient
from tests.nut._wire import BridgeMessages

NUT_DIRS = ("/lib/nut", "/usr/lib/nut", "/usr/libexec/nut", "/usr/bin", "/usr/sbin", "/sbin")
USER, PASSWORD = "monuser", "secret"
RECORDER = """\
import sys, time
with open(sys.argv[1], "a") as f:
    f.write(f"{time.monotonic()}\\n")
"""


def nut_program(name: str) -> str:
    """The real binary (Debian's /usr/sbin/upsmon is a wrapper that needs /etc/nut)."""
    for directory in NUT_DIRS:
        path = Path(directory) / name
        if path.is_file() and os.access(path, os.X_OK):
            with contextlib.suppress(OSError):
                if path.read_bytes()[:2] == b"#!":
                    continue  # a wrapper script
            return str(path)
    pytest.fail(
        f"{name} not found: install Debian's nut-client and nut-server "
        "(`apt-get install -y nut-client nut-server`)",
        pytrace=False,
    )


class FakeBridge:
    """Publishes ``status``, ``mains`` and ``state`` as the bridge does, with its credentials."""

    def __init__(self, broker: Mosquitto, device: str) -> None:
        self.topics = BridgeTopics("powerbridge", device)
        self.messages = BridgeMessages(device)
        self.mqtt = TestClient(
            broker,
            broker.bridge(device),
            client_id=f"powerbridge-bridge-{device}",
            will=(self.topics.status, b"offline"),
        )
        self.mqtt.connect()
        self.mqtt.publish(self.topics.status, b"online", retain=True)

    def announce(self, state: str) -> float:
        """Announce ``state`` now (elapsed 0); returns the monotonic time of the edge."""
        edge = time.monotonic()
        self.mqtt.publish(self.topics.mains, self.messages.announce(state), retain=True)
        return edge

    def reading(self, **values: float) -> None:
        self.mqtt.publish(self.topics.state, self.messages.reading(**values), retain=True)

    def ups(self, status: str, *, charge: float, runtime: float) -> None:
        """Publish what a UPS behind the bridge says (the ``ups`` topic)."""
        payload = self.messages.ups(status, charge=charge, runtime=runtime, load=25.0)
        self.mqtt.publish(self.topics.ups, payload, retain=True)

    def offline(self) -> None:
        self.mqtt.publish(self.topics.status, b"offline", retain=True)

    def close(self) -> None:
        self.mqtt.disconnect()


class Facade:
    """``powerbridge nut serve`` against ``broker``, on a free port."""

    def __init__(
        self,
        broker: Mosquitto,
        directory: Path,
        *,
        delay: float,
        ups: str,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.port = free_port()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        password = directory / "mqtt-password"
        password.write_text(broker.credentials[nut_user("nut")].password)
        password.chmod(0o600)
        users = directory / "nut-users"
        users.write_text(f"[{USER}]\n  password = {PASSWORD}\n")
        self.config = directory / "nut.yaml"
        self.config.write_text(
            f"nut:\n  listen: [127.0.0.1]\n  port: {self.port}\n  users_file: {users}\n"
            "  mdns: false\n  client_id: nut\n"
            + (f"  cert_file: {tls[0]}\n  key_file: {tls[1]}\n" if tls else "")
            + f"ups:\n  - bridge: rack-a\n    name: {ups}\n"
            f"mqtt:\n  host: 127.0.0.1\n  port: {broker.port}\n  password_file: {password}\n"
            f"shutdown:\n  delay: {delay}\n"
        )
        self.log = directory / "facade.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; from bridge.cli import main; sys.exit(main(sys.argv[1:]))",
                    "-v",
                    "nut",
                    "serve",
                    "-c",
                    str(self.config),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
                start_new_session=True,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"facade exited: {self.log.read_text()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise AssertionError(f"facade did not listen: {self.log.read_text()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


class Upsmon:
    """upsmon as a NUT **secondary** of the facade, with a SHUTDOWNCMD that stamps a file."""

    def __init__(self, directory: Path, target: str, *, pollfreq: int = 1, deadtime: int = 3):
        self.directory = directory
        etc, state = directory / "etc", directory / "state"
        etc.mkdir(parents=True)
        state.mkdir(mode=0o700)
        recorder = directory / "record.py"
        recorder.write_text(RECORDER)
        self.shutdowns = directory / "shutdowns"
        self.notify = directory / "notify.log"
        notify = etc / "notify.sh"
        notify.write_text(f'#!/bin/sh\necho "$NOTIFYTYPE $*" >> {self.notify}\n')
        notify.chmod(0o755)
        (etc / "nut.conf").write_text("MODE=netclient\n")
        (etc / "upsmon.conf").write_text(
            "RUN_AS_USER root\n"
            f"MONITOR {target} 1 {USER} {PASSWORD} secondary\n"
            "MINSUPPLIES 1\n"
            f'SHUTDOWNCMD "{sys.executable} {recorder} {self.shutdowns}"\n'
            f"POLLFREQ {pollfreq}\nPOLLFREQALERT {pollfreq}\n"
            f"DEADTIME {deadtime}\nFINALDELAY 0\nHOSTSYNC 1\n"
            f"NOTIFYCMD {notify}\n"
            + "".join(
                f"NOTIFYFLAG {kind} EXEC\n"
                for kind in ("ONLINE", "ONBATT", "LOWBATT", "FSD", "COMMOK", "COMMBAD", "NOCOMM")
            )
        )
        for conf in etc.iterdir():
            if conf.suffix != ".sh":
                conf.chmod(0o640)
        self._env = {
            **os.environ,
            "NUT_CONFPATH": str(etc),
            "NUT_STATEPATH": str(state),
            "NUT_ALTPIDPATH": str(state),
        }
        self._process: subprocess.Popen[bytes] | None = None
        self.log = directory / "upsmon.log"

    def start(self) -> None:
        # upsmon 2.8.0 keeps its PID file in the compiled-in /run/nut, whatever the
        # environment says, and refuses to start while the process named there lives: wait
        # for the previous test's upsmon to be gone.
        wait_until(lambda: not _alive(Path("/run/nut/upsmon.pid")), 10)
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [nut_program("upsmon"), "-F", "-u", "root"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,
            )

    def shutdown_times(self) -> list[float]:
        try:
            return [float(x) for x in self.shutdowns.read_text().split()]
        except FileNotFoundError:
            return []

    def notifications(self) -> list[str]:
        try:
            return [line.split()[0] for line in self.notify.read_text().splitlines() if line]
        except FileNotFoundError:
            return []

    def stop(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        # upsmon forks: its other half may outlive the process we started by a moment.
        group = self._process.pid
        if not wait_until(lambda: not _group_alive(group), 5):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self._process = None


def _alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(condition: object, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(step)
    return bool(condition())  # type: ignore[operator]


def which(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        return nut_program(name)
    return path
