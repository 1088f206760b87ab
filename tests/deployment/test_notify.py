"""sd_notify over a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.deployment.notify import Heartbeat, Notifier, socket_address, watchdog_seconds


class FakeSystemd:
    """The receiving end of ``$NOTIFY_SOCKET``."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(socket_address(address))
        self.sock.settimeout(2.0)

    def receive(self) -> list[str]:
        return self.sock.recv(4096).decode().split("\n")

    def pending(self) -> list[list[str]]:
        out: list[list[str]] = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode().split("\n"))
        except BlockingIOError:
            return out
        finally:
            self.sock.settimeout(2.0)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(str(tmp_path / "notify.sock"))
    yield fake
    fake.close()


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_not_under_systemd_everything_is_a_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.status("x") is False
    assert notifier.stopping() is False
    assert Heartbeat(notifier).tick() is False


def test_ready_status_stopping_arrive_on_a_path_socket(systemd: FakeSystemd) -> None:
    with Notifier.from_env({"NOTIFY_SOCKET": systemd.address}) as notifier:
        assert notifier.enabled
        assert notifier.ready("reading pzem004t on /dev/powermeter")
        lines = systemd.receive()
        assert lines[0] == "READY=1"
        assert f"MAINPID={os.getpid()}" in lines
        assert "STATUS=reading pzem004t on /dev/powermeter" in lines
        assert notifier.status("broker\nunreachable")
        assert systemd.receive() == ["STATUS=broker unreachable"]
        assert notifier.stopping()
        assert systemd.receive() == ["STOPPING=1"]
        # no watchdog configured: no pings
        assert notifier.watchdog() is False
        assert systemd.pending() == []


def test_abstract_socket() -> None:
    name = f"@powerbridge-test-{uuid.uuid4().hex}"
    fake = FakeSystemd(name)
    try:
        notifier = Notifier.from_env({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "4000000"})
        assert notifier.watchdog_interval == 2.0
        assert notifier.watchdog()
        assert fake.receive() == ["WATCHDOG=1"]
    finally:
        fake.close()


def test_watchdog_env_parsing() -> None:
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "abc"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "2"}, pid=2) == 1.0
    assert socket_address("relative/path") is None
    assert socket_address("@") is None


def test_from_env_can_unset_for_children(
    systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.address)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    notifier = Notifier.from_env(unset=True)
    assert notifier.watchdog_interval == 1.0
    assert "NOTIFY_SOCKET" not in os.environ
    assert "WATCHDOG_USEC" not in os.environ


def test_a_vanished_manager_does_not_raise(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone.sock"), 2.0)
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_heartbeat_pings_at_half_the_timeout_and_stops_when_a_part_stalls(
    systemd: FakeSystemd,
) -> None:
    clock = Ticks()
    notifier = Notifier(systemd.address, 20.0)
    beat = Heartbeat(notifier, clock=clock)
    assert notifier.watchdog_interval == 10.0
    assert beat.interval == 5.0  # a quarter of the timeout: margin for a loop that wakes late
    assert beat.deadline() == clock.now
    beat.expect("meter", within=3.0)

    pinged = []
    for _ in range(20):  # 10 s of a main loop ticking every 0.5 s, meter reporting
        beat.alive("meter")
        pinged.append(beat.tick())
        clock.now += 0.5
    assert pinged.count(True) == 2  # at t=0 and t=5: rate-limited to the interval
    assert beat.deadline() == 100.0 + 10.0
    assert systemd.pending() == [["WATCHDOG=1"], ["WATCHDOG=1"]]

    # The meter thread hangs: after its allowance the pings are withheld.
    for _ in range(20):
        beat.tick()
        clock.now += 0.5
    assert beat.stalled() == ["meter"]
    # One ping was due (t=10) before the 3 s allowance ran out (t=12.5), none after.
    assert systemd.pending() == [["WATCHDOG=1"], ["STATUS=unhealthy: no progress from meter"]]

    # It recovers: pings resume.
    beat.alive("meter")
    assert beat.tick()
    assert systemd.pending() == [["STATUS=running"], ["WATCHDOG=1"]]
