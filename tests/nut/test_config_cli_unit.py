"""``nut.yaml``, the users file, ``powerbridge nut`` and the shipped systemd unit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.errors import ConfigError
from bridge.nut.config import parse_nut_config, parse_users

UNIT = Path(__file__).parents[2] / "bridge" / "nut" / "powerbridge-nut.service"


def test_minimal_config_and_defaults() -> None:
    config = parse_nut_config("ups:\n  - bridge: rack-a\n    name: ups\n  - bridge: rack-b\n")
    assert [u.alias for u in config.ups] == ["ups", "rack-b"]
    assert config.nut.port == 3493
    assert config.nut.listen == ("127.0.0.1",)
    settings = config.shutdown.settings()
    assert settings.delay == 600.0
    assert settings.min_supplies == 1


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("ups: []\n", "ups"),
        ("ups:\n  - bridge: a\n    name: ups\n  - bridge: b\n    name: ups\n", "ups"),
        ("ups:\n  - bridge: a\n  - bridge: a\n    name: x\n", "ups"),
        ("ups:\n  - bridge: a\nnut:\n  cert_file: /x.crt\n", "nut.cert_file"),
        ("ups:\n  - bridge: a\nshutdown:\n  allow_remote: true\n", "shutdown.allow_remote"),
        ("ups:\n  - bridge: a\nnut:\n  port: 0\n", "nut.port"),
        ("ups:\n  - bridge: a/b\n", "ups"),
    ],
)
def test_config_errors_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_nut_config(text)
    assert any(p.key.startswith(key) for p in err.value.problems), err.value.problems


def test_users_file_in_upsd_users_format() -> None:
    users = parse_users('[monuser]\n  password = secret\n[admin]\npassword = "p w"\n')
    assert users == {"monuser": "secret", "admin": "p w"}
    with pytest.raises(ConfigError):
        parse_users("[nopass]\n  upsmon = secondary\n")
    with pytest.raises(ConfigError):
        parse_users("password = outside a section\n")


def test_nut_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    users = tmp_path / "users"
    users.write_text("[monuser]\n  password = secret\n")
    config = tmp_path / "nut.yaml"
    config.write_text(f"nut:\n  users_file: {users}\nups:\n  - bridge: rack-a\n    name: ups\n")
    assert main(["nut", "check", "-c", str(config)]) == 0
    assert "UPS ups: bridge rack-a" in capsys.readouterr().out
    config.write_text("ups: 3\n")
    assert main(["nut", "check", "-c", str(config)]) == 2


@pytest.mark.realtime
def test_serve_help_says_what_it_serves() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from bridge.cli import main; sys.exit(main())",
            "nut",
            "serve",
            "--help",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for words in ("--config", "3493", "users_file", "SET, INSTCMD, FSD, PRIMARY"):
        assert words in out


@pytest.mark.realtime
def test_the_shipped_unit_verifies(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert (
        "ExecStart=/opt/powerbridge/bin/powerbridge nut serve -c /etc/powerbridge/nut.yaml" in text
    )
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze not found (install systemd)", pytrace=False)
    copy = tmp_path / "powerbridge-nut.service"
    copy.write_text(text.replace("/opt/powerbridge/bin/powerbridge", "/bin/true"))
    done = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
