"""The real bridge daemon: against a fake ``$NOTIFY_SOCKET`` (READY, periodic WATCHDOG, no
WATCHDOG while its main loop is stalled), and as `deployment status` and `check` see it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.broker.runner import Mosquitto
from bridge.config import load_bridge_config
from bridge.deployment.notify import Notifier
from tests.deployment.conftest import ConfigWriter, FakeSystemd

pytestmark = pytest.mark.integration

FAST_METER = "{type: simulated, interval: 100ms}"


class Listener:
    """The receiving end of ``$NOTIFY_SOCKET``, collecting datagrams with their times."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def next(self, timeout: float) -> list[str] | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode().split("\n")
        except TimeoutError:
            return None

    def wait_for(self, line: str, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.next(left)
            if message is not None and line in message:
                return message
        raise AssertionError(f"no {line} within {timeout} s")

    def count(self, line: str, seconds: float) -> int:
        """How many datagrams containing ``line`` arrive in the next ``seconds``."""
        deadline = time.monotonic() + seconds
        seen = 0
        while (left := deadline - time.monotonic()) > 0:
            message = self.next(left)
            if message is not None and line in message:
                seen += 1
        return seen

    def drain(self) -> None:
        while self.next(0.01) is not None:
            pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    fake = Listener(tmp_path / "notify.sock")
    yield fake
    fake.close()


def test_daemon_pings_only_while_its_main_loop_turns(
    write_config: ConfigWriter, broker: Mosquitto, listener: Listener
) -> None:
    from bridge.daemon import Daemon

    del broker  # running: the daemon connects to it
    config = load_bridge_config(write_config(meter=FAST_METER))
    notifier = Notifier(str(listener.path), watchdog_timeout=0.8)  # ping every 0.2 s
    daemon = Daemon(config, notifier=notifier, install_signals=False)
    runner = threading.Thread(target=daemon.run, name="daemon-under-test")
    release = threading.Event()
    runner.start()
    try:
        assert "READY=1" in listener.wait_for("READY=1", timeout=15)
        assert listener.count("WATCHDOG=1", 1.5) >= 4

        # Stall the real main loop with work that does not return; every other thread
        # (paho, meter, mains sensor) goes on.
        daemon.loop.post(lambda: release.wait(10))
        time.sleep(0.3)
        listener.drain()
        assert listener.count("WATCHDOG=1", 1.5) == 0

        release.set()
        listener.wait_for("WATCHDOG=1", timeout=2)
    finally:
        release.set()
        daemon.request_stop()
        runner.join(15)
    assert not runner.is_alive()
    listener.wait_for("STOPPING=1", timeout=2)


def test_powerbridge_run_under_a_fake_systemd(
    write_config: ConfigWriter, broker: Mosquitto, listener: Listener, tmp_path: Path
) -> None:
    """``python -m bridge run`` as systemd starts it: environment in, datagrams out."""
    del broker
    config = write_config(meter=FAST_METER)
    env = dict(os.environ)
    env.update({"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000"})
    env.pop("WATCHDOG_PID", None)
    log = (tmp_path / "daemon.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "-c", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        ready = listener.wait_for("READY=1", timeout=20)
        assert f"MAINPID={process.pid}" in ready
        assert listener.count("WATCHDOG=1", 1.5) >= 3  # every 0.25 s: a quarter of 1 s

        process.send_signal(signal.SIGSTOP)  # the whole process hangs
        time.sleep(0.2)
        listener.drain()
        assert listener.count("WATCHDOG=1", 1.0) == 0
        process.send_signal(signal.SIGCONT)
        listener.wait_for("WATCHDOG=1", timeout=2)

        process.send_signal(signal.SIGTERM)
        listener.wait_for("STOPPING=1", timeout=10)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def test_status_and_check_of_a_running_daemon(
    write_config: ConfigWriter,
    broker: Mosquitto,
    fake_systemd: FakeSystemd,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`deployment status` and `check` read what the real daemon publishes and stores."""
    from bridge.cli import main
    from bridge.daemon import Daemon

    del broker
    path = write_config(meter=FAST_METER)
    daemon = Daemon(load_bridge_config(path), install_signals=False)
    runner = threading.Thread(target=daemon.run, name="daemon-under-test")
    runner.start()
    try:
        assert daemon.started.wait(15)
        deadline = time.monotonic() + 20
        while True:  # until its reports say the meter answers and all is well (or time is up)
            assert main(["deployment", "status", "-c", str(path), "--json"]) in (0, 1)
            doc = json.loads(capsys.readouterr().out)
            settled = (
                doc["meter"]["link"] is True
                and doc["healthy"] is True
                and doc["last_sample"]["source"] == "broker"  # its retained state was read
            )
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert doc["healthy"] is True, doc["problems"]
        assert doc["service"]["state"] == "active"
        assert doc["broker"]["bridge_status"] == "online"
        assert doc["meter"]["link"] is True
        assert doc["last_sample"]["source"] == "broker"
        assert doc["last_sample"]["age_s"] < 5
        assert doc["spool"]["source"] == "database"
        assert isinstance(doc["spool"]["depth"], int)

        code = main(["check", "-c", str(path), "--skip", "clock"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "✓ meter            read by the running service" in out
        assert "✓ mains pin        mains on (announced by the running service" in out
        assert out.rstrip().endswith("Health checks passed (1 skipped)")
    finally:
        daemon.request_stop()
        runner.join(15)
    assert not runner.is_alive()

    # Stopped: the broker has its last will, and status says so.
    fake_systemd.set(active="inactive")
    assert main(["deployment", "status", "-c", str(path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["broker"]["bridge_status"] == "offline"
    assert "service inactive" in doc["problems"]
