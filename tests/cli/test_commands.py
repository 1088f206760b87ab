"""The command line: subcommands listed, exit codes documented, no pretending."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bridge.cli import COMMAND_MODULES, main

SUBCOMMANDS = (
    "run",
    "check",
    "deployment",
    "meter",
    "mains",
    "simulate",
    "client",
    "config",
    "demo",
    "watch",
    "version",
    "broker",
    "nut",
)


def test_help_lists_subcommands_and_exit_codes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bridge", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in SUBCOMMANDS:
        assert f"\n    {name} " in out or f"\n    {name}\n" in out, name
    assert "exit codes:" in out
    assert "2  usage or configuration error" in out


def test_every_module_registers() -> None:
    assert set(COMMAND_MODULES) >= {"config_cmd", "version"}


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("powerbridge ")


def test_no_command_is_a_usage_error() -> None:
    assert main([]) == 2


def test_unknown_option_exits_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["--no-such-option"])
    assert info.value.code == 2
