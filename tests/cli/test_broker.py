"""`powerbridge broker ...`: output a person can follow, no secrets printed, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.broker.directory import BrokerDirectory
from bridge.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_init_prints_snippets_for_every_role_and_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "broker"
    code, out, _ = run(
        capsys,
        "broker",
        "init",
        str(d),
        "--host",
        "pi.example",
        "--bridge",
        "rack-a",
        "--client",
        "office",
    )
    assert code == 0
    store = BrokerDirectory(d)
    for user in ("homeassistant", "archiver", "bridge-rack-a", "client-office"):
        password = store.password(user)
        assert password is not None
        assert password not in out, f"{user}'s password was printed"
        assert str(store.credential_file(user).resolve()) in out
    # Bridge on the same Pi: loopback, no TLS; PC and Home Assistant: TLS with the CA.
    assert "username: bridge-rack-a" in out
    assert "host: localhost" in out
    assert "username: client-office" in out
    assert "host: pi.example" in out
    assert "ca_file: /etc/powerbridge/ca.crt" in out
    assert "Port: 8883" in out
    assert "Username: homeassistant" in out
    assert f"upload {(d / 'ca.crt').resolve()}" in out
    assert "/etc/mosquitto/conf.d/powerbridge.conf" in out
    assert "Nothing that existed was rotated" in out


def test_rerun_reports_kept_and_rotates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(tmp_path / "broker")
    assert run(capsys, "broker", "init", d, "--host", "pi.example", "--client", "office")[0] == 0
    password = BrokerDirectory(Path(d)).password("client-office")
    code, out, _ = run(capsys, "broker", "init", d, "--host", "pi.example", "--client", "office")
    assert code == 0
    assert "kept  password: client-office: not rotated" in out
    assert "created" not in out
    assert "Nothing that existed was rotated" in out
    assert BrokerDirectory(Path(d)).password("client-office") == password


def test_add_client_then_rotate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path / "broker")
    run(capsys, "broker", "init", d, "--host", "pi.example")
    code, out, _ = run(capsys, "broker", "add-client", "lab", "--dir", d)
    assert code == 0
    assert "added  acl: user client-lab" in out
    assert "host: pi.example" in out  # taken from the server certificate
    assert "systemctl reload mosquitto" in out
    first = BrokerDirectory(Path(d)).password("client-lab")
    code, out, _ = run(capsys, "broker", "add-client", "lab", "--dir", d, "--rotate")
    assert code == 0
    assert "Rotated on request: password: client-lab" in out
    assert BrokerDirectory(Path(d)).password("client-lab") != first


def test_add_bridge_snippet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path / "broker")
    run(capsys, "broker", "init", d, "--no-tls")
    code, out, _ = run(capsys, "broker", "add-bridge", "rack-b", "--dir", d)
    assert code == 0
    assert "id: rack-b" in out
    assert "username: bridge-rack-b" in out
    assert not (Path(d) / "ca.crt").exists()


def test_add_nut_gives_the_facade_its_own_role(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(tmp_path / "broker")
    run(capsys, "broker", "init", d, "--no-tls")
    code, out, _ = run(capsys, "broker", "add-nut", "nut", "--dir", d)
    assert code == 0
    assert "added  acl: user nut-nut" in out
    assert "username: nut-nut" in out
    block = (Path(d) / "acl").read_text().split("user nut-nut\n")[1].split("\n\n")[0]
    assert block.splitlines() == [
        "topic read powerbridge/+/status",
        "topic read powerbridge/+/mains",
        "topic read powerbridge/+/state",
        "topic read powerbridge/+/ups",
        "topic readwrite powerbridge/clients/nut/status",
        "topic read powerbridge/clients/nut/cmd/#",
        "topic read powerbridge/clients/all/cmd/#",
    ]
    assert BrokerDirectory(Path(d)).password("nut-nut")


def test_reserved_id_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path / "broker")
    run(capsys, "broker", "init", d, "--no-tls")
    code, _, err = run(capsys, "broker", "add-client", "all", "--dir", d)
    assert code == 2
    assert "reserved" in err


def test_bad_base_topic_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "broker", "init", str(tmp_path / "b"), "--base-topic", "a/#")
    assert code == 2
    assert "base topic" in err
    assert not (tmp_path / "b").exists()


def test_add_without_init_is_a_runtime_failure_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "broker", "add-bridge", "rack-a", "--dir", str(tmp_path / "none"))
    assert code == 1
    assert "powerbridge broker init" in err
    assert "Traceback" not in err


def test_broker_without_action_shows_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "broker")
    assert code == 2
    assert "add-bridge" in out
    assert "add-client" in out
