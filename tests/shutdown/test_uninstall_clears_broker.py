"""`powerbridge client uninstall` removes the PC from the broker too: once the service is stopped,
it publishes empty retained messages on the client's ``state``, ``status`` and Home Assistant
discovery topics, so that neither the broker nor Home Assistant keeps a PC that is gone.
Best effort: an unreachable broker is reported, and the service is still uninstalled."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.broker.runner import BrokerSetup, Mosquitto
from bridge.cli import main
from bridge.config import parse_client_config
from bridge.mqtt.contract import ClientTopics
from bridge.shutdown.app import retained_topics
from bridge.shutdown.service import Plan
from tests.helpers.mqtt import TestClient

pytestmark = pytest.mark.integration

CLIENT = "office-pc"


@pytest.fixture
def broker_setup() -> BrokerSetup:
    return BrokerSetup(bridges=("rack-a",), clients=(CLIENT,))


@pytest.fixture
def uninstalled(monkeypatch: pytest.MonkeyPatch) -> list[Plan]:
    """The service plan is recorded instead of run (no systemctl here)."""
    done: list[Plan] = []
    monkeypatch.setattr("bridge.shutdown.service.execute", lambda plan, **_k: done.append(plan))
    monkeypatch.setattr("bridge.cli.client._require_admin", lambda _system: None)
    return done


def write_config(tmp_path: Path, host: str, port: int, password: str) -> Path:
    secret = tmp_path / "client.password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    config = tmp_path / "client.yaml"
    config.write_text(
        f"client:\n  id: {CLIENT}\n  name: Office PC\n"
        f"mqtt:\n  host: {host}\n  port: {port}\n  password_file: {secret}\n"
        "bridges: [rack-a]\n"
    )
    return config


def retained(broker: Mosquitto, topics: list[str]) -> dict[str, bytes]:
    """The retained messages the broker holds on ``topics`` (as a new subscriber sees them)."""
    watcher = TestClient(broker, broker.homeassistant).connect()
    try:
        seen: dict[str, bytes] = {}
        for topic in topics:
            watcher.subscribe(topic)
        for message in watcher.drain(0.8):
            if message.retain:
                seen[message.topic] = message.payload
        return seen
    finally:
        watcher.disconnect()


def test_uninstall_clears_state_status_and_discovery(
    broker: Mosquitto,
    tmp_path: Path,
    uninstalled: list[Plan],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config_path = write_config(tmp_path, broker.host, broker.port, broker.client(CLIENT).password)
    topics = retained_topics(parse_client_config(config_path.read_text()))
    client_topics = ClientTopics("powerbridge", CLIENT)
    assert topics[:2] == [client_topics.state, client_topics.status]
    assert len(topics) == 4
    assert all(t.startswith("homeassistant/") for t in topics[2:])
    # What a client that ran leaves behind: its retained messages, published as itself.
    pc = TestClient(broker, broker.client(CLIENT)).connect()
    for topic in topics:
        pc.publish(topic, b'{"v": 1}', retain=True)
    pc.disconnect()
    assert set(retained(broker, topics)) == set(topics)

    assert main(["client", "uninstall", "-c", str(config_path)]) == 0

    assert [plan.action for plan in uninstalled] == ["uninstall"]
    assert retained(broker, topics) == {}
    out = capsys.readouterr().out
    assert "uninstalled: the shutdown client no longer starts at boot" in out
    assert "cleared on the broker" in out
    assert "2 Home Assistant discovery configs" in out


def test_uninstall_with_the_broker_down_says_what_stays(
    broker: Mosquitto,
    tmp_path: Path,
    uninstalled: list[Plan],
    capsys: pytest.CaptureFixture[str],
) -> None:
    broker.stop()
    config_path = write_config(tmp_path, broker.host, broker.port, "whatever")

    assert main(["client", "uninstall", "-c", str(config_path)]) == 0

    assert [plan.action for plan in uninstalled] == ["uninstall"]
    captured = capsys.readouterr()
    assert "uninstalled: the shutdown client no longer starts at boot" in captured.out
    assert "not cleared on the broker: cannot connect to" in captured.err
    assert "run `powerbridge client uninstall` again once the broker is reachable" in captured.err
    assert f"powerbridge/clients/{CLIENT}/state" in captured.err


def test_uninstall_preview_for_another_system_touches_no_broker(
    uninstalled: list[Plan], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["client", "uninstall", "--dry-run", "--system", "windows"]) == 0
    captured = capsys.readouterr()
    assert "broker" not in captured.out + captured.err
    assert uninstalled == []
