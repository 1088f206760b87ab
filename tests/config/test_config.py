"""Configuration: every mistake located by file, line and key; examples pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli import main
from bridge.cli.config_cmd import example_text, reference_markdown
from bridge.config import (
    load_bridge_config,
    parse_bridge_config,
    parse_client_config,
    parse_duration,
)
from bridge.errors import ConfigError

THREE_MISTAKES = """\
device:
  id: rack-a
mqtt:
  host: localhost
  port: abc
  keepalive: 10x
meter:
  typ: pzem004t
"""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("1h", 3600),
        ("2d", 172800),
        ("250ms", 0.25),
        (45, 45),
        (1.5, 1.5),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10x", "", "-5s", "ten minutes", True, None, [1]])
def test_bad_durations(text: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        parse_duration(text)


def test_three_mistakes_give_three_located_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(THREE_MISTAKES)
    code = main(["config", "check", str(path)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    located = [line for line in err if line.startswith(f"{path}:")]
    assert located == [
        f"{path}:5: mqtt.port: expected an integer 1–65535, got 'abc'",
        f"{path}:6: mqtt.keepalive: expected a duration such as 90s, 10m, 1h or a number of "
        "seconds, got '10x'",
        f"{path}:8: meter.typ: unknown key 'typ'; did you mean 'type'?",
    ]
    assert "Traceback" not in "\n".join(err)


def test_error_names_nested_list_item() -> None:
    text = (
        "bridges: [rack-a]\nshutdown:\n  hooks:\n"
        "    - command: [virsh, shutdown]\n      timeout: x\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_client_config(text, "client.yaml")
    assert [str(p) for p in info.value.problems] == [
        "client.yaml:5: shutdown.hooks[0].timeout: expected a duration such as 90s, 10m, 1h or "
        "a number of seconds, got 'x'"
    ]


def test_yaml_syntax_error_is_located() -> None:
    with pytest.raises(ConfigError) as info:
        parse_bridge_config("mqtt:\n  host: [unclosed\n", "b.yaml")
    (problem,) = info.value.problems
    assert problem.file == "b.yaml"
    assert problem.line is not None
    assert "not valid YAML" in problem.message


def test_cross_field_checks_name_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_bridge_config("meter:\n  type: pzem004t\n", "b.yaml")
    assert [str(p) for p in info.value.problems] == [
        "b.yaml:1: meter.port: required for meter type pzem004t"
    ]


def test_client_requires_bridges() -> None:
    with pytest.raises(ConfigError) as info:
        parse_client_config("shutdown:\n  delay: 5m\n", "c.yaml")
    assert [p.key for p in info.value.problems] == ["bridges"]
    assert info.value.problems[0].message == "required key missing"


def test_defaults_and_types() -> None:
    config = parse_bridge_config("")
    assert config.mqtt.effective_port == 1883
    assert config.mains.confirm_off == 0.5
    assert config.meter.channels == (1,)
    client = parse_client_config("bridges: [a, b]\nshutdown: {delay: 90s, min_supplies: 2}\n")
    assert client.shutdown.delay == 90
    assert client.bridges == ("a", "b")
    assert client.shutdown.command is None
    with pytest.raises(AttributeError):
        client.shutdown.delay = 1  # type: ignore[misc]


def test_secrets_come_from_files_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    config = parse_bridge_config(f"mqtt:\n  password_file: {secret}\n")
    assert config.mqtt.password() == "s3cret"
    assert "s3cret" not in repr(config)
    monkeypatch.setenv("PB_PW", "fromenv")
    assert parse_bridge_config("mqtt:\n  password_env: PB_PW\n").mqtt.password() == "fromenv"
    monkeypatch.delenv("PB_PW")
    with pytest.raises(ConfigError, match="PB_PW is not set"):
        parse_bridge_config("mqtt:\n  password_env: PB_PW\n").mqtt.password()


@pytest.mark.parametrize("client", [False, True])
def test_init_output_passes_check(
    tmp_path: Path, client: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "example.yaml"
    args = ["config", "init", *(["--client"] if client else []), str(path)]
    assert main(args) == 0
    code = main(["config", "check", str(path)])
    err = capsys.readouterr().err
    if client:
        assert code == 0, err
    else:
        # The bridge example names the password file `broker add-bridge` writes; `config
        # check` reads the files a configuration refers to, and that one is not here.
        assert code == 2
        assert [line for line in err.splitlines() if line.startswith(str(path))] == [
            f"{path}:24: mqtt.password_file: password file /etc/powerbridge/mqtt.password "
            "cannot be read: No such file or directory"
        ]
        text = path.read_text().replace("/etc/powerbridge/mqtt.password", str(tmp_path / "pw"))
        path.write_text(text)
        (tmp_path / "pw").write_text("secret\n")
        assert main(["config", "check", str(path)]) == 0
    assert main(["config", "init", str(path)]) == 2  # never overwrites silently


@pytest.mark.parametrize("client", [False, True])
def test_examples_mention_every_key(client: bool) -> None:
    from bridge.config import BridgeConfig, ClientConfig
    from bridge.config._schema import reference

    text = example_text(client=client)
    for key, _default, _doc in reference(ClientConfig if client else BridgeConfig):
        leaf = key.split(".")[-1].removesuffix("[]")
        assert f"{leaf}:" in text, f"{key} missing from the example"


def test_docs_reference_is_current() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert doc.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/configuration.md is stale: run `powerbridge config reference > docs/configuration.md`"
    )


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_bridge_config(tmp_path / "nope.yaml")
