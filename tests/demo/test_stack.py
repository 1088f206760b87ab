"""The demo's stack on its own: generated configurations, the broker, stopping children."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from bridge.config import parse_bridge_config, parse_client_config
from bridge.demo.scenario import Timings
from bridge.demo.stack import BRIDGE_ID, CLIENT_ID, Child, DemoStack, StackOptions
from bridge.tui.observer import BrokerAddress, FleetObserver

pytestmark = pytest.mark.integration


def test_generated_configurations_and_a_broker_on_every_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    timings = Timings(delay=7.0, confirm_off=1.0)
    stack = DemoStack(StackOptions(timings=timings, listen="0.0.0.0"))  # noqa: S104 - the test binds it
    try:
        broker = stack.start_broker()
        assert f"listener {broker.port} 0.0.0.0" in broker.config_file.read_text()
        bridge_path, client_path = stack.write_configs()
        bridge = parse_bridge_config(bridge_path.read_text(), "bridge.yaml")
        client = parse_client_config(client_path.read_text(), "client.yaml")
        assert bridge.device.id == BRIDGE_ID
        assert bridge.meter.type == "simulated"
        assert bridge.simulation.enabled
        assert bridge.mains.confirm_off == timings.confirm_off
        assert timings.blip < bridge.mains.confirm_off
        assert client.client.id == CLIENT_ID
        assert client.bridges == (BRIDGE_ID,)
        assert client.shutdown.dry_run
        assert client.shutdown.delay == 7.0
        assert client.shutdown.command is not None
        assert "poweroff" not in " ".join(client.shutdown.command)
        for secret in ("bridge.password", "client.password", "ha.password"):
            assert (stack.workdir / secret).stat().st_mode & 0o077 == 0
        ha = broker.homeassistant
        observer = FleetObserver(
            BrokerAddress("127.0.0.1", broker.port, ha.username, ha.password), "powerbridge"
        )
        observer.start()
        observer.stop()
    finally:
        stack.close()
    assert not stack.workdir.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_child_that_ignores_sigterm_is_killed_with_its_process_group(tmp_path: Path) -> None:
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = Child("stubborn", [sys.executable, "-c", script], tmp_path / "log")
    child.start()
    deadline = time.monotonic() + 10
    while "ready" not in child.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.exit_code() is None
    started = time.monotonic()
    child.stop(timeout=0.5)
    assert time.monotonic() - started < 5
    assert child.exit_code() is not None
    assert child.pid is not None
    from tests.demo.test_demo import processes_mentioning

    assert processes_mentioning("time.sleep(60)") == []
