"""Fixtures: a bridge configuration pointing at the test broker, fake host tools."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.broker.runner import BrokerSetup, Mosquitto

DEVICE = "test-bridge"


@pytest.fixture
def broker_setup() -> BrokerSetup:
    return BrokerSetup(bridges=(DEVICE,), clients=())


ConfigWriter = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path, broker: Mosquitto) -> ConfigWriter:
    """Write a bridge configuration for the test broker; keyword arguments change it.

    ``login``: the MQTT password to write (default: the right one).
    """

    def write(
        *,
        device_id: str = DEVICE,
        login: str | None = None,
        meter: str = "{type: simulated}",
        username: str | None = None,
        port: int | None = None,
        name: str = "bridge.yaml",
    ) -> Path:
        password_file = tmp_path / f"{name}.password"
        password_file.write_text((login or broker.bridge(DEVICE).password) + "\n")
        password_file.chmod(0o600)
        user = f", username: {username}" if username else ""
        text = (
            f"device: {{id: {device_id}, data_dir: {tmp_path / 'data'}}}\n"
            f"mqtt: {{host: 127.0.0.1, port: {port or broker.port}, "
            f"password_file: {password_file}{user}}}\n"
            f"meter: {meter}\n"
            "simulation: {enabled: true}\n"
        )
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@dataclass
class FakeSystemd:
    """``systemctl`` & co. as scripts that log their arguments and answer from files."""

    directory: Path
    log: Path

    def set(self, *, active: str = "active", enabled: str = "enabled") -> None:
        (self.directory / "active").write_text(active + "\n")
        (self.directory / "enabled").write_text(enabled + "\n")

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def fake_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSystemd:
    tools = tmp_path / "tools"
    tools.mkdir()
    log = tmp_path / "tools.log"
    script = f"""#!/bin/sh
echo "$(basename "$0") $*" >> {log}
case "$1" in
  is-active) cat {tools}/active; [ "$(cat {tools}/active)" = active ] ;;
  is-enabled)
    if [ "$(cat {tools}/enabled)" = not-found ]; then
      echo "Failed to get unit file state for $2: No such file or directory" >&2; exit 1
    fi
    cat {tools}/enabled; [ "$(cat {tools}/enabled)" = enabled ] ;;
  *) exit 0 ;;
esac
"""
    for name in ("systemctl", "systemd-sysusers", "udevadm"):
        path = tools / name
        path.write_text(script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("POWERBRIDGE_TOOL_PATH", str(tools))
    fake = FakeSystemd(tools, log)
    fake.set()
    return fake


@pytest.fixture
def no_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without systemd, whatever machine the tests run on."""
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("POWERBRIDGE_TOOL_PATH", str(empty))
    assert not os.access(empty / "systemctl", os.X_OK)
