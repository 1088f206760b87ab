"""Configuration mistakes that passed `config check` or crashed: now exit 2 with FILE:LINE."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli import main


def check(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["config", "check", *extra, str(path)])
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def test_base_topic_equal_to_the_discovery_prefix_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "client.yaml"
    path.write_text("mqtt:\n  base_topic: homeassistant\nbridges: [rack-a]\n")
    code, out = check(path, capsys, "--client")
    assert code == 2
    assert "mqtt.discovery.prefix" in out
    assert "both 'homeassistant'" in out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    "options",
    [
        ("--discovery-prefix", "powerbridge"),
        ("--base-topic", "homeassistant"),
    ],
)
def test_broker_init_refuses_overlapping_roots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: tuple[str, str]
) -> None:
    code = main(["broker", "init", str(tmp_path / "broker"), "--bridge", "mains", *options])
    err = capsys.readouterr().err
    assert code == 2
    assert "choose two different roots" in err
    assert not (tmp_path / "broker").exists()


def test_a_spool_batch_beyond_the_brokers_packet_limit_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text("device: {id: rack-a}\nspool:\n  batch_size: 6500\n")
    code, out = check(path, capsys)
    assert code == 2
    assert f"{path}:3: spool.batch_size: 6500 samples may not fit" in out
    assert "max_packet_size of 1048576 bytes" in out
    path.write_text("device: {id: rack-a}\nspool:\n  batch_size: 2000\n")
    assert check(path, capsys)[0] == 0
