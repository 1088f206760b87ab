"""Files for Home Assistant's Mosquitto add-on, made from a broker directory."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bridge.broker.acl import acl_users
from bridge.broker.addon import addon_acl, write_addon_files
from bridge.broker.directory import BrokerDirectory, BrokerSetupError
from bridge.broker.runner import shipped_file
from bridge.cli import main


def make(path: Path) -> BrokerDirectory:
    store = BrokerDirectory(path)
    store.init(
        conf_template=shipped_file("powerbridge.conf"),
        acl_template=shipped_file("acl"),
        bridges=["rack-a"],
        clients=["office"],
        with_tls=False,
    )
    return store


def test_addon_acl_keeps_internal_users_and_our_blocks(tmp_path: Path) -> None:
    store = make(tmp_path / "b")
    text = addon_acl(store.acl.read_text())
    assert "user addons\ntopic readwrite #\n" in text
    assert "user homeassistant\ntopic readwrite #\n" in text
    assert text.count("user homeassistant") == 1  # our narrower block is replaced
    users = {"addons", "homeassistant", "archiver", "bridge-rack-a", "client-office"}
    assert acl_users(text) == users
    assert "user bridge-rack-a\ntopic readwrite powerbridge/rack-a/#\n" in text
    assert "topic write homeassistant/+/client-office/#" in text


def test_written_files_and_logins(tmp_path: Path) -> None:
    store = make(tmp_path / "b")
    store.acl.write_text(store.acl.read_text() + "\nuser zigbee\ntopic readwrite zigbee2mqtt/#\n")
    target, report = write_addon_files(store)
    assert (target / "acl.conf").read_text() == "acl_file /share/mosquitto/powerbridge.acl\n"
    logins = (target / "logins.yaml").read_text()
    assert stat.S_IMODE((target / "logins.yaml").stat().st_mode) == 0o600
    for user in ("archiver", "bridge-rack-a", "client-office"):
        assert f'  - username: {user}\n    password: "{store.password(user)}"\n' in logins
    assert "zigbee" not in logins
    assert report.outcome("password: zigbee") == "warning"
    assert "user zigbee\ntopic readwrite zigbee2mqtt/#" in (target / "powerbridge.acl").read_text()


def test_needs_an_initialised_directory(tmp_path: Path) -> None:
    with pytest.raises(BrokerSetupError, match="broker init"):
        write_addon_files(BrokerDirectory(tmp_path / "none"))


def test_cli_prints_the_steps_without_passwords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = make(tmp_path / "b")
    assert main(["broker", "ha-addon", "--dir", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "customize: {active: true, folder: mosquitto}" in out
    assert "/share/mosquitto/" in out
    password = store.password("client-office")
    assert password is not None
    assert password not in out
