"""The real-Mosquitto harness: retained round trip, last will on SIGKILL, restarts, auth."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bridge.broker import runner
from bridge.broker.runner import Mosquitto
from tests.helpers.mqtt import TestClient

pytestmark = pytest.mark.integration


def test_retained_round_trip(broker: Mosquitto) -> None:
    pub = TestClient(broker, broker.bridge()).connect()
    pub.publish("powerbridge/test-bridge/state", b'{"v":1}', retain=True)
    pub.disconnect()
    sub = TestClient(broker, broker.observer).connect()
    sub.subscribe("powerbridge/test-bridge/state")
    msg = sub.expect("powerbridge/test-bridge/state")
    assert msg.payload == b'{"v":1}'
    assert msg.retain
    sub.disconnect()


def test_last_will_offline_when_client_is_sigkilled(broker: Mosquitto, tmp_path: Path) -> None:
    creds = broker.bridge()
    script = tmp_path / "holder.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            import paho.mqtt.client as mqtt
            from paho.mqtt.enums import CallbackAPIVersion
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="holder")
            c.username_pw_set({creds.username!r}, {creds.password!r})
            c.will_set("powerbridge/test-bridge/status", "offline", qos=1, retain=True)
            c.connect("127.0.0.1", {broker.port}, keepalive=5)
            c.loop_start()
            topic = "powerbridge/test-bridge/status"
            c.publish(topic, "online", qos=1, retain=True).wait_for_publish()
            print("ready", flush=True)
            time.sleep(60)
            """
        )
    )
    observer = TestClient(broker, broker.observer).connect()
    observer.subscribe("powerbridge/test-bridge/status")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert observer.expect("powerbridge/test-bridge/status").payload == b"online"
        killed_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        msg = observer.expect("powerbridge/test-bridge/status", timeout=5 * 1.5)
        assert msg.payload == b"offline"
        assert time.monotonic() - killed_at < 7.5
    finally:
        proc.kill()
        proc.wait()
        observer.disconnect()


def test_restart_on_same_port_keeps_retained(broker: Mosquitto) -> None:
    port = broker.port
    pub = TestClient(broker, broker.bridge()).connect()
    pub.publish("powerbridge/test-bridge/mains", b"kept", retain=True)
    pub.disconnect()
    broker.restart()
    assert broker.port == port
    sub = TestClient(broker, broker.observer).connect()
    sub.subscribe("powerbridge/test-bridge/mains")
    assert sub.expect("powerbridge/test-bridge/mains").payload == b"kept"
    sub.disconnect()


def test_sigkill_and_start_again(broker: Mosquitto) -> None:
    pid = broker.pid
    broker.kill()
    assert not broker.running
    with pytest.raises(ConnectionError):
        TestClient(broker, broker.observer).connect(timeout=1)
    broker.start()
    assert broker.pid != pid
    TestClient(broker, broker.observer).connect().disconnect()


def test_anonymous_and_wrong_password_refused(broker: Mosquitto) -> None:
    with pytest.raises(ConnectionError):
        TestClient(broker, None).connect(timeout=2)
    wrong = runner.Credentials(broker.observer.username, "wrong")
    with pytest.raises(ConnectionError):
        TestClient(broker, wrong).connect(timeout=2)


def test_missing_mosquitto_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(runner, "SEARCH_PATH", ())
    with pytest.raises(runner.MosquittoNotFoundError, match="apt-get install -y mosquitto"):
        runner.find_mosquitto()
