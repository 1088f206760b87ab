"""The shutdown client against a real Mosquitto, with a harmless shutdown command.

The "shutdown command" is a small script that appends ``time.monotonic()`` to a
file, so each test can check exactly how many shutdowns happened and when.
Delays are 1.5–4 s; every expectation allows ±1 s.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.broker.runner import BrokerSetup, Mosquitto
from bridge.config import parse_client_config
from bridge.config.client import ClientConfig
from bridge.model import MainsState
from bridge.mqtt import signing
from bridge.mqtt.contract import BridgeTopics, ClientTopics, MainsPayload, client_node_id, dumps
from bridge.shutdown.app import RunningClient, start_client
from tests.helpers.mqtt import TestClient
from tests.helpers.process import another_thread, signal_thread
from tests.shutdown.payloads import KEY, command
from tests.shutdown.test_fuzz import mutate

pytestmark = pytest.mark.integration

DEVICE = "test-bridge"
CLIENT = "test-client"
TOLERANCE = 1.0

RECORDER = """\
import sys, time
with open(sys.argv[1], "a") as f:
    f.write(f"{time.monotonic()}\\n")
"""


@pytest.fixture
def broker_setup() -> BrokerSetup:
    return BrokerSetup(bridges=(DEVICE,), clients=(CLIENT,))


class OffsetClock:
    """The real clocks, with a wall clock the test can make jump."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def monotonic(self) -> float:
        return time.monotonic()

    def utcnow(self) -> datetime:
        return datetime.now(UTC) + self.offset


class FakeBridge:
    """Publishes ``status`` and ``mains`` as a bridge does, with the bridge's credentials."""

    def __init__(
        self, broker: Mosquitto, key: bytes | None = None, *, instance: str = "main"
    ) -> None:
        self.topics = BridgeTopics("powerbridge", DEVICE)
        self.key = key
        self.wall_offset = timedelta(0)
        self.mqtt = TestClient(
            broker,
            broker.bridge(DEVICE),
            client_id=f"powerbridge-bridge-{DEVICE}-{instance}",
            will=(self.topics.status, b"offline"),
        ).connect()
        self.announced: tuple[MainsState, int, float] | None = None
        self.boot = secrets.token_hex(8)
        """This run's id; :meth:`restart_run` starts another (a restarted bridge)."""
        self.n = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def online(self) -> None:
        self.mqtt.publish(self.topics.status, b"online", retain=True)

    def restart_run(self) -> None:
        with self._lock:
            self.boot, self.n = secrets.token_hex(8), 0

    def payload(self, state: MainsState, seq: int, started: float) -> bytes:
        now = datetime.now(UTC) + self.wall_offset
        with self._lock:
            self.n += 1
            boot, n = self.boot, self.n
        data = MainsPayload(
            device=DEVICE,
            state=state,
            since=now,
            seq=seq,
            ts=now,
            elapsed_s=max(0.0, time.monotonic() - started),
            boot=boot,
            n=n,
        ).to_dict()
        if self.key is not None:
            data = signing.sign(self.key, data)
        return dumps(data)

    def announce(self, state: str, seq: int, *, started: float | None = None) -> float:
        """Publish a new announcement; returns the monotonic start of the state."""
        start = time.monotonic() if started is None else started
        self.announced = (MainsState(state), seq, start)
        self.mqtt.publish(
            self.topics.mains, self.payload(MainsState(state), seq, start), retain=True
        )
        return start

    def refresh_every(self, interval: float) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                if self.announced is not None:
                    state, seq, start = self.announced
                    self.mqtt.publish(
                        self.topics.mains, self.payload(state, seq, start), retain=True
                    )

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        self.mqtt.disconnect()


@pytest.fixture
def bridge(broker: Mosquitto) -> Iterator[FakeBridge]:
    fake = FakeBridge(broker)
    fake.online()
    yield fake
    fake.close()


class Harness:
    def __init__(self, broker: Mosquitto, tmp_path: Path) -> None:
        self.broker = broker
        self.tmp = tmp_path
        self.record = tmp_path / "shutdowns.txt"
        self.script = tmp_path / "record.py"
        self.script.write_text(RECORDER)
        self.password = tmp_path / "client.password"
        self.password.write_text(broker.client(CLIENT).password + "\n")
        self.password.chmod(0o600)
        self.key_file = tmp_path / "key"
        self.key_file.write_bytes(KEY)
        self.clients: list[RunningClient] = []
        self.clock = OffsetClock()

    def yaml(self, shutdown: str, *, signed: bool = False) -> str:
        lines = [
            "client:",
            f"  id: {CLIENT}",
            "mqtt:",
            f"  host: {self.broker.host}",
            f"  port: {self.broker.port}",
            f"  password_file: {self.password}",
            "  reconnect_min: 1s",
            "  reconnect_max: 2s",
            f"bridges: [{DEVICE}]",
            "shutdown:",
            f"  command: [{sys.executable}, {self.script}, {self.record}]",
            "  notify: none",
            *(f"  {line}" for line in shutdown.splitlines()),
        ]
        if signed:
            lines += ["signing:", f"  key_file: {self.key_file}", "  max_age: 30s"]
        return "\n".join(lines) + "\n"

    def config(self, shutdown: str, *, signed: bool = False) -> ClientConfig:
        return parse_client_config(self.yaml(shutdown, signed=signed))

    def start(self, shutdown: str, *, signed: bool = False) -> RunningClient:
        client = start_client(
            self.config(shutdown, signed=signed),
            host=self.broker.host,
            port=self.broker.port,
            clock=self.clock,
            key=KEY if signed else None,
        )
        self.clients.append(client)
        assert wait_for(lambda: client.listener.connected, 5), "client did not connect"
        return client

    def shutdowns(self) -> list[float]:
        if not self.record.exists():
            return []
        return [float(line) for line in self.record.read_text().split()]

    def close(self) -> None:
        for client in self.clients:
            client.stop()


def wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return bool(condition())  # type: ignore[operator]


@pytest.fixture
def harness(broker: Mosquitto, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(broker, tmp_path)
    yield h
    h.close()


def settle_retained(h: Harness, client: RunningClient) -> None:
    """Wait until the client has the retained announcement (its view knows the bridge)."""
    assert wait_for(lambda: client.runtime.tracker.view().bridges[0].heard, 5)


# --------------------------------------------------------------------------- outage timing


def test_outage_longer_than_the_delay_shuts_down_exactly_once(
    harness: Harness, bridge: FakeBridge
) -> None:
    bridge.announce("on", 1)
    client = harness.start("delay: 2s")
    settle_retained(harness, client)
    start = bridge.announce("off", 2)
    assert wait_for(harness.shutdowns, 2 + 3 * TOLERANCE)
    time.sleep(1)
    (at,) = harness.shutdowns()
    assert abs(at - (start + 2)) <= TOLERANCE
    assert client.runtime.shutdowns == 1


def test_restore_before_the_deadline_cancels(harness: Harness, bridge: FakeBridge) -> None:
    bridge.announce("on", 1)
    client = harness.start("delay: 2s")
    settle_retained(harness, client)
    bridge.announce("off", 2)
    time.sleep(1.2)
    bridge.announce("on", 3)
    time.sleep(1.8)  # a second past the deadline
    assert harness.shutdowns() == []
    assert client.runtime.phase_name == "idle"


def test_a_hundred_short_flaps_never_shut_down(harness: Harness, bridge: FakeBridge) -> None:
    bridge.announce("on", 1)
    client = harness.start("delay: 1500ms")
    settle_retained(harness, client)
    seq = 1
    for _ in range(100):
        bridge.announce("off", seq := seq + 1)
        time.sleep(0.01)
        bridge.announce("on", seq := seq + 1)
    time.sleep(2)
    assert harness.shutdowns() == []
    assert wait_for(lambda: client.runtime.tracker.view().bridges[0].seq == seq, 3)


# --------------------------------------------------------------------------- lost broker


def test_broker_killed_mid_outage_keeps_the_original_deadline(
    harness: Harness, bridge: FakeBridge, broker: Mosquitto
) -> None:
    bridge.announce("on", 1)
    client = harness.start("delay: 2500ms")
    settle_retained(harness, client)
    start = bridge.announce("off", 2)
    time.sleep(0.5)
    broker.kill()
    assert wait_for(lambda: not client.listener.connected, 2)
    assert wait_for(harness.shutdowns, 2.5 + 2 * TOLERANCE)
    (at,) = harness.shutdowns()
    assert abs(at - (start + 2.5)) <= TOLERANCE


def test_reconnects_after_a_broker_restart_and_hears_the_restore(
    harness: Harness, bridge: FakeBridge, broker: Mosquitto
) -> None:
    bridge.announce("on", 1)
    client = harness.start("delay: 4s")
    settle_retained(harness, client)
    bridge.announce("off", 2)
    broker.restart()  # clean stop: retained messages and sessions are saved
    assert wait_for(lambda: client.listener.connected and bridge.mqtt.paho.is_connected(), 8)
    bridge.announce("on", 3)
    assert wait_for(lambda: client.runtime.tracker.view().bridges[0].seq == 3, 5)
    time.sleep(3)
    assert harness.shutdowns() == []
    assert client.runtime.phase_name == "idle"


def test_broker_killed_on_mains_never_shuts_down(
    harness: Harness, bridge: FakeBridge, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    bridge.announce("on", 1)
    client = harness.start("delay: 1s\nlost_warning_after: 1s\non_lost_during_outage: shutdown_now")
    settle_retained(harness, client)
    with caplog.at_level(logging.WARNING):
        broker.kill()
        time.sleep(3)
    assert harness.shutdowns() == []
    assert "(last known: mains on) is unreachable" in caplog.text


# --------------------------------------------------------------------------- mid-outage start


def test_client_started_mid_outage_shuts_down_at_the_original_deadline(
    harness: Harness, bridge: FakeBridge
) -> None:
    start = bridge.announce("off", 5)
    bridge.refresh_every(0.25)
    time.sleep(2.5)
    harness.start("delay: 4s")
    assert wait_for(harness.shutdowns, 1.5 + 2 * TOLERANCE)
    (at,) = harness.shutdowns()
    assert abs(at - (start + 4)) <= TOLERANCE  # not client start + 4 s


# --------------------------------------------------------------------------- clocks


@pytest.mark.parametrize("jump_hours", [1, -1])
def test_wall_clock_jump_does_not_move_the_deadline(
    harness: Harness, broker: Mosquitto, jump_hours: int
) -> None:
    signed = FakeBridge(broker, key=KEY)
    try:
        signed.online()
        signed.announce("on", 1)
        signed.refresh_every(0.3)
        client = harness.start("delay: 3s", signed=True)
        settle_retained(harness, client)
        start = signed.announce("off", 2)
        time.sleep(1)
        harness.clock.offset = timedelta(hours=jump_hours)  # this computer's clock steps
        time.sleep(0.5)
        signed.wall_offset = timedelta(hours=jump_hours)  # ...then the bridge's too
        assert wait_for(harness.shutdowns, 1.5 + 2 * TOLERANCE)
        (at,) = harness.shutdowns()
        assert abs(at - (start + 3)) <= TOLERANCE
        assert client.runtime.rejections.total == 0
    finally:
        signed.close()


# --------------------------------------------------------------------------- authenticity


def test_forged_and_replayed_messages_are_rejected(harness: Harness, broker: Mosquitto) -> None:
    genuine = FakeBridge(broker, key=KEY)
    forger = FakeBridge(broker, key=b"not the shared key, but long enough", instance="forger")
    try:
        genuine.online()
        old_outage = genuine.payload(MainsState.OFF, 1, time.monotonic() - 1000)
        genuine.restart_run()  # the outage was announced by an earlier run of the bridge
        genuine.announce("on", 2)
        client = harness.start("delay: 1s", signed=True)
        settle_retained(harness, client)
        forger.announce("off", 3)  # forged: wrong key
        unsigned = FakeBridge(broker, instance="unsigned")
        unsigned.announce("off", 4)  # unsigned while a key is configured
        unsigned.close()
        genuine.mqtt.publish(genuine.topics.mains, old_outage)  # replay of a genuine message
        assert wait_for(lambda: client.runtime.rejections.total >= 3, 5)
        time.sleep(2)
        assert harness.shutdowns() == []
        assert client.runtime.rejections.counts == {
            "bad_signature": 1,
            "unsigned": 1,
            "replayed": 1,
        }
        # and a genuine announcement is obeyed
        start = genuine.announce("off", 5)
        assert wait_for(harness.shutdowns, 1 + 2 * TOLERANCE)
        assert abs(harness.shutdowns()[0] - (start + 1)) <= TOLERANCE
    finally:
        genuine.close()
        forger.close()


def test_a_few_hundred_mutated_payloads_through_the_broker(
    harness: Harness, broker: Mosquitto
) -> None:
    genuine = FakeBridge(broker, key=KEY)
    try:
        genuine.online()
        genuine.announce("on", 10)
        client = harness.start("delay: 1s", signed=True)
        settle_retained(harness, client)
        rng = random.Random(6)
        sources = [
            genuine.payload(MainsState.OFF, 9, time.monotonic() - 100),  # replayed sequence
            FakeBridge.payload(forger_like(genuine), MainsState.OFF, 11, time.monotonic()),
        ]
        for i in range(300):
            genuine.mqtt.paho.publish(genuine.topics.mains, mutate(rng, sources[i % 2]), qos=1)
        assert wait_for(lambda: client.runtime.rejections.total >= 300, 10)
        time.sleep(1.5)
        assert harness.shutdowns() == []
        assert client.runtime.rejections.total == 300
        assert "internal_error" not in client.runtime.rejections.counts
    finally:
        genuine.close()


def forger_like(genuine: FakeBridge) -> FakeBridge:
    """An object that signs like ``genuine`` but with another key (no connection needed)."""
    clone = object.__new__(FakeBridge)
    clone.key = b"a forger's key, sixteen bytes or more"
    clone.wall_offset = genuine.wall_offset
    clone.boot, clone.n, clone._lock = genuine.boot, 1000, threading.Lock()
    return clone


def test_signed_remote_shutdown_from_home_assistant(harness: Harness, bridge: FakeBridge) -> None:
    bridge.announce("on", 1)
    client = harness.start("delay: 10m\nallow_remote: true\nremote_cancel_window: 1s", signed=True)
    ha = TestClient(harness.broker, harness.broker.homeassistant).connect()
    try:
        topic = ClientTopics("powerbridge", CLIENT).cmd("shutdown_now")
        ha.publish(topic, command(topic, ts=datetime.now(UTC)), qos=1)
        requested = time.monotonic()
        assert wait_for(harness.shutdowns, 1 + 2 * TOLERANCE)
        assert abs(harness.shutdowns()[0] - (requested + 1)) <= TOLERANCE
        assert client.runtime.shutdowns == 1
    finally:
        ha.disconnect()


# --------------------------------------------------------------------------- visibility


def test_status_state_and_discovery_on_the_broker(
    harness: Harness, bridge: FakeBridge, broker: Mosquitto
) -> None:
    import json

    bridge.announce("on", 1)
    observer = TestClient(broker, broker.observer).connect()
    try:
        topics = ClientTopics("powerbridge", CLIENT)
        observer.subscribe(f"{topics.root}/#")
        observer.subscribe(f"homeassistant/+/{client_node_id(CLIENT)}/+/config")
        client = harness.start("delay: 10s")
        assert observer.expect(topics.status).payload == b"online"
        config = observer.expect(f"homeassistant/sensor/{client_node_id(CLIENT)}/+/config")
        assert json.loads(config.payload)["unique_id"] == f"{client_node_id(CLIENT)}_shutdown_in"
        settle_retained(harness, client)
        bridge.announce("off", 2)
        deadline = time.monotonic() + 5
        state: dict[str, object] = {}
        while time.monotonic() < deadline and state.get("state") != "counting":
            state = json.loads(observer.expect(topics.state).payload)
        assert state["state"] == "counting"
        assert 8 <= float(state["seconds_left"]) <= 10  # type: ignore[arg-type]
        assert state["armed"] is True
        client.stop()
        harness.clients.remove(client)
        msg = observer.expect(topics.status)
        assert (msg.payload, msg.retain) == (b"offline", False) or msg.payload == b"offline"
    finally:
        observer.disconnect()


# --------------------------------------------------------------------------- the command


@contextmanager
def client_process(
    harness: Harness, broker: Mosquitto, settings: str
) -> Iterator[subprocess.Popen[str]]:
    """`powerbridge -v client run` as a process, yielded once it says ``online``; killed
    afterwards if the test left it running."""
    config = harness.tmp / "client.yaml"
    config.write_text(harness.yaml(settings))
    status = ClientTopics("powerbridge", CLIENT).status
    observer = TestClient(broker, broker.observer).connect()
    observer.subscribe(status)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "-v", "client", "run", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        while observer.expect(status, 15).payload != b"online":
            pass
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        observer.disconnect()


def test_cli_client_run_end_to_end(harness: Harness, bridge: FakeBridge, broker: Mosquitto) -> None:
    """`powerbridge client run` as a process: outage → one shutdown; SIGTERM → exit 0."""
    bridge.announce("on", 1)
    with client_process(harness, broker, "delay: 1500ms") as process:
        time.sleep(0.3)
        start = bridge.announce("off", 2)
        assert wait_for(harness.shutdowns, 1.5 + 3 * TOLERANCE)
        assert abs(harness.shutdowns()[0] - (start + 1.5)) <= TOLERANCE
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output
    assert len(harness.shutdowns()) == 1
    assert "shutdown client test-client watching test-bridge" in output
    assert "Traceback" not in output


def test_cli_client_run_stops_when_sigterm_lands_on_another_thread(
    harness: Harness, bridge: FakeBridge, broker: Mosquitto
) -> None:
    """The kernel may deliver SIGTERM to any thread (paho's, here).  A quiet client, its
    main thread asleep until its next wake (up to a minute away), still stops at once."""
    bridge.announce("on", 1)
    with client_process(harness, broker, "delay: 10m") as process:
        time.sleep(1.0)  # nothing more arrives: the main thread waits in its queue
        signal_thread(process.pid, another_thread(process.pid), signal.SIGTERM)  # paho's
        output, _ = process.communicate(timeout=5)
    assert process.returncode == 0, output
    assert "received SIGTERM: stopping" in output
    assert "shutdown client stopped" in output


def test_client_status_reads_the_retained_state(
    harness: Harness, bridge: FakeBridge, capsys: pytest.CaptureFixture[str]
) -> None:
    from bridge.cli import main
    from bridge.shutdown.app import fetch_state

    bridge.announce("off", 2)
    bridge.refresh_every(0.3)  # a live bridge: a retained "off" alone is only history
    client = harness.start("delay: 10m")
    settle_retained(harness, client)
    config = harness.tmp / "client.yaml"
    config.write_text(harness.yaml("delay: 10m"))
    assert wait_for(lambda: (fetch_state(harness.config("delay: 10m"))[1] or {}).get("state")
                    == "counting", 5)  # fmt: skip
    status, state = fetch_state(harness.config("delay: 10m"))
    assert status == "online"
    assert state is not None
    assert state["bridges"] == [DEVICE]
    code = main(["client", "status", "-c", str(config)])
    out = capsys.readouterr().out
    assert code == 1  # no service manager runs the client here
    assert "service: not running" in out
    assert "client: online on the broker" in out
    assert "state: counting (outage at test-bridge" in out
    assert "shutdown in: " in out
