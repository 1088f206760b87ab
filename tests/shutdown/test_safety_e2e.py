"""Shutdown safety end to end: the real bridge daemon, a real Mosquitto, the real client.

Each test replays one of the failure sequences of the shutdown-safety review (a
bridge that restarts after the outage ended, a broker restored from its
persistence file with nothing live behind it, a Pi whose clock is an hour off,
messages re-sent out of order, a second client with one identity, a client id
taken over by another user) and counts the shutdowns the client really runs
(a recorder script).  A control outage shows that the same setup still shuts down
exactly once, at the deadline ± 1 s.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from bridge.broker.runner import BrokerSetup, Mosquitto
from bridge.config.bridge import parse_bridge_config
from bridge.daemon import Daemon
from bridge.mqtt.contract import CommandPayload
from tests.daemon.bridge_process import BridgeProcess, persist_broker, write_config
from tests.helpers.mqtt import TestClient
from tests.shutdown.test_integration import CLIENT, DEVICE, TOLERANCE, FakeBridge, Harness, wait_for

pytestmark = pytest.mark.integration

MAINS = f"powerbridge/{DEVICE}/mains"
STATUS = f"powerbridge/{DEVICE}/status"
KEY = b"0123456789abcdef-shared-test-key"


@pytest.fixture
def broker_setup() -> BrokerSetup:
    return BrokerSetup(bridges=(DEVICE,), clients=(CLIENT,))


@pytest.fixture
def harness(broker: Mosquitto, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(broker, tmp_path)
    yield h
    h.close()


class ShiftedClock:
    """The real clocks, with the wall clock ``offset`` off (a Pi without RTC or NTP)."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def monotonic(self) -> float:
        return time.monotonic()

    def utcnow(self) -> datetime:
        return datetime.now(UTC) + self.offset


class InProcessBridge:
    """The bridge daemon in a thread, with a mock mains pin the test drives."""

    def __init__(self, broker: Mosquitto, directory: Path, *, signed: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        secret = directory / "bridge.pass"
        secret.write_text(broker.bridge(DEVICE).password + "\n")
        key_line = ""
        if signed:
            key_file = directory / "key"
            key_file.write_bytes(KEY)
            key_line = f"signing: {{key_file: {key_file}}}"
        self.config = parse_bridge_config(
            f"""
device: {{id: {DEVICE}, data_dir: {directory / "data"}}}
mqtt: {{host: 127.0.0.1, port: {broker.port}, password_file: {secret}, reconnect_min: 200ms}}
mains: {{pin: 17, pull: none, confirm_off: 200ms, confirm_on: 200ms}}
leds: {{enabled: false}}
health: {{interval: 5s}}
{key_line}
"""
        )
        self.daemon: Daemon | None = None
        self.thread: threading.Thread | None = None
        self.factory: MockFactory | None = None

    def start(self, *, mains_on: bool = True, clock: ShiftedClock | None = None) -> None:
        self.factory = MockFactory()
        pin = self.factory.pin(17)
        pin.drive_high() if mains_on else pin.drive_low()
        self.daemon = Daemon(
            self.config, clock=clock, pin_factory=self.factory, install_signals=False
        )
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)
        self.thread.start()
        assert self.daemon.started.wait(10)

    def mains(self, on: bool) -> float:
        assert self.factory is not None
        pin = self.factory.pin(17)
        at = time.monotonic()
        pin.drive_high() if on else pin.drive_low()
        return at

    def stop(self) -> None:
        if self.daemon is not None and self.thread is not None:
            self.daemon.request_stop()
            self.thread.join(10)
        if self.factory is not None:
            self.factory.close()
        self.daemon = self.thread = self.factory = None


@pytest.fixture
def pi(broker: Mosquitto, tmp_path: Path) -> Iterator[InProcessBridge]:
    bridge = InProcessBridge(broker, tmp_path / "bridge")
    yield bridge
    bridge.stop()


def last_mains(broker: Mosquitto) -> dict[str, object]:
    """The retained ``mains`` message as a new subscriber gets it."""
    observer = TestClient(broker, broker.observer).connect()
    try:
        observer.subscribe(MAINS)
        data: dict[str, object] = json.loads(observer.expect(MAINS, 5).payload)
        return data
    finally:
        observer.disconnect()


def announced(broker: Mosquitto, state: str, timeout: float = 10.0) -> bool:
    return wait_for(lambda: last_mains(broker).get("state") == state, timeout)


# --------------------------------------------------------------------------- control


def test_control_outage_shuts_down_exactly_once_at_the_deadline(
    harness: Harness, pi: InProcessBridge
) -> None:
    pi.start()
    client = harness.start("delay: 2s")
    assert wait_for(lambda: client.runtime.tracker.view().bridges[0].seen_alive, 10)
    cut = pi.mains(False)
    assert wait_for(harness.shutdowns, 2 + 3 * TOLERANCE)
    time.sleep(1.5)
    (at,) = harness.shutdowns()
    assert abs(at - (cut + 2)) <= TOLERANCE


# --------------------------------------------------------------------------- reproductions


def test_a_bridge_restarted_after_the_outage_ended_causes_no_shutdown(
    harness: Harness, pi: InProcessBridge, broker: Mosquitto
) -> None:
    """Outage announced; bridge stopped; mains back; the PC boots; the bridge restarts."""
    pi.start()
    assert announced(broker, "on")
    pi.mains(False)
    assert announced(broker, "off")
    time.sleep(1.0)  # the outage has lasted a while (longer than the client's delay)
    pi.stop()  # SIGTERM: "offline"; the retained "off" stays on the broker
    client = harness.start("delay: 500ms")  # the PC boots: its client starts
    time.sleep(1.0)
    assert client.runtime.phase_name == "idle"
    pi.start(mains_on=True)  # the bridge comes back; the mains has returned meanwhile
    assert announced(broker, "on")
    time.sleep(2.0)
    assert harness.shutdowns() == []
    notices = client.runtime.decision.notices if client.runtime.decision else ()
    assert client.runtime.phase_name == "idle", notices


def test_a_fresh_data_dir_bridge_never_revives_an_old_retained_outage(
    harness: Harness, pi: InProcessBridge, broker: Mosquitto, tmp_path: Path
) -> None:
    stale = FakeBridge(broker, instance="old")
    stale.online()
    stale.announce("off", 2)  # an old retained "off" of an earlier installation
    stale.mqtt.disconnect()
    client = harness.start("delay: 500ms")
    other = InProcessBridge(broker, tmp_path / "fresh")  # a fresh data_dir: seq from 1
    try:
        other.start(mains_on=True)
        assert announced(broker, "on")
        time.sleep(2.0)
    finally:
        other.stop()
    assert harness.shutdowns() == []
    assert client.runtime.phase_name == "idle"


def test_broker_and_bridge_dying_together_leave_no_shutdown_at_boot(
    harness: Harness, broker: Mosquitto, tmp_path: Path
) -> None:
    """The Pi hosting the broker loses power: its persistence restores online + off."""
    bridge = BridgeProcess(write_config(broker, tmp_path / "b"), tmp_path / "b.log").start()
    try:
        assert announced(broker, "on", 20)
        ha = TestClient(broker, broker.homeassistant).connect()
        cmd = CommandPayload("simulate", {"mains": "off"}, datetime.now(UTC), "cut")
        ha.publish(f"powerbridge/{DEVICE}/cmd/simulate", cmd.encode())
        ha.disconnect()
        assert announced(broker, "off")
        persist_broker(broker)  # what autosave_interval does every 60 s
        bridge.kill()
        broker.kill()  # both die at once: no last will is ever sent
    finally:
        bridge.cleanup()
    broker.start()
    observer = TestClient(broker, broker.observer).connect()
    observer.subscribe(STATUS)
    assert observer.expect(STATUS, 5).payload == b"online"  # the broker's memory
    observer.disconnect()
    client = harness.start("delay: 500ms")  # a PC boots; the bridge is still down
    time.sleep(3.0)
    assert harness.shutdowns() == []
    assert client.runtime.phase_name == "idle"
    assert "stale" in {n.code for n in client.runtime.decision.notices}  # type: ignore[union-attr]


@pytest.mark.parametrize("offset_h", [-1, 3])
def test_a_pi_whose_clock_is_hours_off_still_drives_a_signed_client(
    harness: Harness, broker: Mosquitto, tmp_path: Path, offset_h: int
) -> None:
    pi = InProcessBridge(broker, tmp_path / "signed", signed=True)
    try:
        pi.start(clock=ShiftedClock(timedelta(hours=offset_h)))
        client = harness.start("delay: 2s", signed=True)
        assert wait_for(lambda: client.runtime.tracker.view().bridges[0].seen_alive, 10)
        cut = pi.mains(False)
        assert wait_for(harness.shutdowns, 2 + 3 * TOLERANCE)
        (at,) = harness.shutdowns()
        assert abs(at - (cut + 2)) <= TOLERANCE
        assert client.runtime.rejections.total == 0
    finally:
        pi.stop()


def test_old_messages_re_sent_out_of_order_are_not_accepted(
    harness: Harness, broker: Mosquitto
) -> None:
    """Paho re-sends an unacknowledged `on` (seq 1) after `off` (seq 2) and an `offline`."""
    bridge = FakeBridge(broker)
    try:
        bridge.online()
        old_on = bridge.payload(*_on(1))
        bridge.announce("on", 1)
        client = harness.start("delay: 2s")
        assert wait_for(lambda: client.runtime.tracker.view().bridges[0].heard, 5)
        bridge.refresh_every(0.3)
        start = bridge.announce("off", 2)
        time.sleep(0.5)
        bridge.mqtt.publish(STATUS, b"offline", retain=True)
        bridge.mqtt.publish(STATUS, b"online", retain=True)
        bridge.mqtt.publish(bridge.topics.mains, old_on)  # the re-sent old message
        assert wait_for(harness.shutdowns, 2 + 3 * TOLERANCE)
        (at,) = harness.shutdowns()
        assert abs(at - (start + 2)) <= TOLERANCE
    finally:
        bridge.close()


def _on(seq: int) -> tuple[object, int, float]:
    from bridge.model import MainsState

    return MainsState.ON, seq, time.monotonic()


def test_two_clients_with_one_identity_do_not_fight(
    harness: Harness, pi: InProcessBridge, caplog: pytest.LogCaptureFixture
) -> None:
    """The installed service and a foreground `client run` of the same client.yaml."""
    pi.start()
    with caplog.at_level(logging.WARNING):
        first = harness.start("delay: 1h")
        second = harness.start("delay: 1h")
        time.sleep(3.0)
    assert first.listener.connected
    assert second.listener.connected
    assert "connection to the broker lost" not in caplog.text
    assert "another shutdown client with the id test-client is running" in caplog.text


def test_another_user_cannot_take_over_the_bridges_connection(
    harness: Harness, pi: InProcessBridge, broker: Mosquitto
) -> None:
    pi.start()
    assert announced(broker, "on")
    observer = TestClient(broker, broker.observer).connect()
    observer.subscribe(STATUS)
    for _ in range(5):  # a PC's user, connecting with the bridge's conventional client id
        intruder = TestClient(
            broker, broker.client(CLIENT), client_id=f"powerbridge-bridge-{DEVICE}"
        ).connect()
        intruder.disconnect()
    time.sleep(1.0)
    flaps = [m for m in observer.drain() if m.topic == STATUS and m.payload == b"offline"]
    observer.disconnect()
    assert flaps == []
    assert pi.daemon is not None
    assert pi.daemon.publisher is not None
    assert pi.daemon.publisher.reconnects == 0


def test_a_shutdown_command_that_returns_is_no_silent_latch(
    harness: Harness, pi: InProcessBridge, caplog: pytest.LogCaptureFixture
) -> None:
    """The harmless test command of the docs: every outage runs it, each logged."""
    pi.start()
    client = harness.start("delay: 1s")
    assert wait_for(lambda: client.runtime.tracker.view().bridges[0].seen_alive, 10)
    with caplog.at_level(logging.WARNING):
        first = pi.mains(False)
        assert wait_for(lambda: len(harness.shutdowns()) == 1, 1 + 3 * TOLERANCE)
        pi.mains(True)
        assert wait_for(lambda: client.runtime.phase_name == "idle", 5)
        assert wait_for(client.runtime.armed, 5)
        second = pi.mains(False)
        assert wait_for(lambda: len(harness.shutdowns()) == 2, 1 + 3 * TOLERANCE)
        # The result is logged when the command has returned, just after it was seen run.
        assert wait_for(lambda: caplog.text.count("has returned with exit 0") == 2, 5)
    at1, at2 = harness.shutdowns()
    assert abs(at1 - (first + 1)) <= TOLERANCE
    assert abs(at2 - (second + 1)) <= TOLERANCE
    assert caplog.text.count("has returned with exit 0") == 2
    assert "watching again" in caplog.text


def test_an_outage_that_goes_on_across_a_bridge_restart_is_one_outage(
    harness: Harness, pi: InProcessBridge, broker: Mosquitto
) -> None:
    """The restarted bridge confirms "off" afresh; the outage record and its deadline stay."""
    observer = TestClient(broker, broker.observer).connect()
    observer.subscribe(f"powerbridge/{DEVICE}/#")
    try:
        pi.start()
        client = harness.start("delay: 4s")
        assert wait_for(lambda: client.runtime.tracker.view().bridges[0].seen_alive, 10)
        cut = pi.mains(False)
        assert announced(broker, "off")
        time.sleep(0.3)
        seen = observer.drain()
        since = next(
            json.loads(m.payload)["since"]
            for m in reversed(seen)
            if m.topic.endswith("/outage") and not m.retain
        )
        pi.stop()
        pi.start(mains_on=False)  # back 1 s later, the mains still off
        assert wait_for(harness.shutdowns, 4 + 3 * TOLERANCE)
        (at,) = harness.shutdowns()
        assert abs(at - (cut + 4)) <= TOLERANCE  # the original deadline
        pi.mains(True)
        assert announced(broker, "on")
        time.sleep(0.5)
        seen += observer.drain()
    finally:
        observer.disconnect()
    states = [json.loads(m.payload)["state"] for m in seen if m.topic == MAINS]
    assert "unknown" in states  # the restarted bridge confirmed before announcing
    outages = [json.loads(m.payload) for m in seen if m.topic.endswith("/outage")]
    assert {o["since"] for o in outages if o["since"] is not None} == {since}
    events = [json.loads(m.payload)["type"] for m in seen if m.topic.endswith("/events")]
    assert events == ["outage_started", "outage_ended"]  # one outage, not two


def test_a_pi_clock_stepped_back_while_running_still_drives_a_signed_client(
    harness: Harness, broker: Mosquitto, tmp_path: Path
) -> None:
    pi = InProcessBridge(broker, tmp_path / "stepped", signed=True)
    clock = ShiftedClock()
    try:
        pi.start(clock=clock)
        client = harness.start("delay: 2s", signed=True)
        assert wait_for(lambda: client.runtime.tracker.view().bridges[0].seen_alive, 10)
        clock.offset = timedelta(hours=-1)  # NTP steps the Pi's clock back an hour
        cut = pi.mains(False)
        assert wait_for(harness.shutdowns, 2 + 3 * TOLERANCE)
        (at,) = harness.shutdowns()
        assert abs(at - (cut + 2)) <= TOLERANCE
        assert client.runtime.rejections.total == 0
    finally:
        pi.stop()
