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


def test_bridges_empty_says_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "client.yaml"
    path.write_text("bridges: []\n")
    code, out = check(path, capsys, "--client")
    assert code == 2
    assert f"{path}:1: bridges: expected a list of at least 1 item(s), got an empty list" in out


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\nbridges: [x]\n",  # recursive: was a RecursionError traceback
        "\n".join(  # an alias bomb: 9^9 items, was 1.6 GB
            ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
            + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
        )
        + "\nbridges: [x]\n",
        "bridges: [x]\nshutdown: &s {delay: 10}\n",  # even a harmless anchor
    ],
)
def test_yaml_anchors_and_aliases_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = tmp_path / "client.yaml"
    path.write_text(text)
    for extra in ((), ("--client",), ("--bridge",)):
        code, out = check(path, capsys, *extra)
        assert code == 2
        assert "anchors and aliases (&name, *name) are not allowed" in out
        assert f"{path}:" in out
        assert "Traceback" not in out


def test_config_check_reads_the_files_a_configuration_refers_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "client.yaml"
    missing = tmp_path / "nope.pass"
    empty = tmp_path / "empty.key"
    empty.write_text("")
    path.write_text(
        f"bridges: [rack-a]\nmqtt:\n  password_file: {missing}\nsigning:\n  key_file: {empty}\n"
    )
    code, out = check(path, capsys)
    assert code == 2
    assert f"{path}:3: mqtt.password_file: password file {missing} cannot be read" in out
    assert f"{path}:5: signing.key_file: signing key {empty} is shorter than 16 bytes" in out
    missing.write_text("secret\n")
    empty.write_text("0123456789abcdef0123\n")
    assert check(path, capsys)[0] == 0
