"""Service installation: the exact files and commands per OS, the CLI's dry run, execution."""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.errors import PowerbridgeError
from bridge.shutdown.service import (
    LAUNCHD_LABEL,
    Plan,
    Step,
    execute,
    install_plan,
    launchd_plist,
    status_argv,
    systemd_unit,
    uninstall_plan,
    windows_task_xml,
)

WIN_PY = r"C:\Program Files\Python311\python.exe"
WIN_CONFIG = r"C:\ProgramData\powerbridge\client.yaml"
NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}


def parse_task(xml: str) -> ET.Element:
    # our own generated text, not untrusted input
    return ET.fromstring(xml.split("\n", 1)[1])  # noqa: S314 - parsing our own output


def test_windows_install_plan_exact_commands() -> None:
    plan = install_plan("windows", python=WIN_PY, config_path=WIN_CONFIG)
    (write,) = plan.writes
    assert write.path == r"C:\ProgramData\powerbridge\powerbridge-client-task.xml"
    assert write.content.startswith(b"\xff\xfe")  # UTF-16 with a byte order mark
    assert write.text() == windows_task_xml(WIN_PY, WIN_CONFIG)
    assert [s.argv for s in plan.steps] == [
        (
            "schtasks", "/Create", "/TN", "powerbridge-client",
            "/XML", r"C:\ProgramData\powerbridge\powerbridge-client-task.xml", "/F",
        ),
        ("schtasks", "/Run", "/TN", "powerbridge-client"),
    ]  # fmt: skip
    assert not any(s.may_fail for s in plan.steps)


def test_windows_task_definition() -> None:
    root = parse_task(windows_task_xml(WIN_PY, WIN_CONFIG))

    def text(path: str) -> str | None:
        return root.findtext(path, namespaces=NS)

    assert root.find("t:Triggers/t:BootTrigger", NS) is not None
    assert text("t:Principals/t:Principal/t:UserId") == "S-1-5-18"  # SYSTEM
    assert text("t:Principals/t:Principal/t:RunLevel") == "HighestAvailable"
    # a UPS can look like a battery: the defaults would keep the task from running
    assert text("t:Settings/t:DisallowStartIfOnBatteries") == "false"
    assert text("t:Settings/t:StopIfGoingOnBatteries") == "false"
    assert text("t:Settings/t:ExecutionTimeLimit") == "PT0S"  # never stopped (default: 3 days)
    assert text("t:Settings/t:RestartOnFailure/t:Interval") == "PT1M"
    assert text("t:Actions/t:Exec/t:Command") == WIN_PY
    assert text("t:Actions/t:Exec/t:Arguments") == (
        r"-m bridge client run --config C:\ProgramData\powerbridge\client.yaml "
        r"--log-file C:\ProgramData\powerbridge\client.log"
    )


def test_windows_arguments_with_spaces_are_quoted() -> None:
    xml = windows_task_xml(WIN_PY, r"C:\Users\Jo Doe\client.yaml")
    root = parse_task(xml)
    assert root.findtext("t:Actions/t:Exec/t:Arguments", namespaces=NS) == (
        r'-m bridge client run --config "C:\Users\Jo Doe\client.yaml" '
        r'--log-file "C:\Users\Jo Doe\client.log"'
    )


def test_windows_task_escapes_xml_characters() -> None:
    root = parse_task(windows_task_xml(WIN_PY, r"C:\R&D <lab>\client.yaml"))
    assert root.findtext("t:Actions/t:Exec/t:Arguments", namespaces=NS) == (
        r'-m bridge client run --config "C:\R&D <lab>\client.yaml" '
        r'--log-file "C:\R&D <lab>\client.log"'
    )


def test_windows_uninstall_plan() -> None:
    plan = uninstall_plan("windows", config_path=WIN_CONFIG)
    assert [(s.argv, s.may_fail) for s in plan.steps] == [
        (("schtasks", "/End", "/TN", "powerbridge-client"), True),
        (("schtasks", "/Delete", "/TN", "powerbridge-client", "/F"), False),
    ]
    assert plan.removes == (r"C:\ProgramData\powerbridge\powerbridge-client-task.xml",)
    assert status_argv("windows") == (
        "schtasks", "/Query", "/TN", "powerbridge-client", "/V", "/FO", "LIST",
    )  # fmt: skip


def test_macos_install_plan_exact_files() -> None:
    plan = install_plan("darwin", python="/usr/local/bin/python3", config_path="/etc/pb.yaml")
    (write,) = plan.writes
    assert write.path == "/Library/LaunchDaemons/org.powerbridge.client.plist"
    assert write.mode == 0o644
    assert plistlib.loads(write.content) == {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": [
            "/usr/local/bin/python3", "-m", "bridge", "client", "run", "--config", "/etc/pb.yaml",
        ],
        "RunAtLoad": True,
        "KeepAlive": True,
        "ProcessType": "Interactive",
        "StandardOutPath": "/var/log/powerbridge-client.log",
        "StandardErrorPath": "/var/log/powerbridge-client.log",
    }  # fmt: skip
    assert write.content == launchd_plist("/usr/local/bin/python3", "/etc/pb.yaml")
    assert [(s.argv, s.may_fail) for s in plan.steps] == [
        (("launchctl", "bootout", "system/org.powerbridge.client"), True),
        (
            (
                "launchctl", "bootstrap", "system",
                "/Library/LaunchDaemons/org.powerbridge.client.plist",
            ),
            False,
        ),
        (("launchctl", "enable", "system/org.powerbridge.client"), False),
    ]  # fmt: skip


def test_macos_uninstall_plan() -> None:
    plan = uninstall_plan("darwin")
    assert [s.argv for s in plan.steps] == [
        ("launchctl", "bootout", "system/org.powerbridge.client"),
        ("rm", "-f", "/Library/LaunchDaemons/org.powerbridge.client.plist"),
    ]
    assert status_argv("darwin") == ("launchctl", "print", "system/org.powerbridge.client")


def test_linux_unit() -> None:
    unit = systemd_unit("/opt/pb venv/bin/python", "/etc/powerbridge/client.yaml")
    assert (
        'ExecStart="/opt/pb venv/bin/python" -m bridge client run '
        "--config /etc/powerbridge/client.yaml\n" in unit
    )
    assert "Restart=always\n" in unit
    assert "WantedBy=multi-user.target\n" in unit
    assert "After=network-online.target\n" in unit
    plan = install_plan("linux", python="/usr/bin/python3", config_path="/etc/pb.yaml")
    assert plan.writes[0].path == "/etc/systemd/system/powerbridge-client.service"
    assert [s.argv for s in plan.steps] == [
        ("systemctl", "daemon-reload"),
        ("systemctl", "enable", "--now", "powerbridge-client.service"),
    ]
    assert [s.argv for s in uninstall_plan("linux").steps] == [
        ("systemctl", "disable", "--now", "powerbridge-client.service"),
        ("rm", "-f", "/etc/systemd/system/powerbridge-client.service"),
        ("systemctl", "daemon-reload"),
    ]


def test_unknown_system_is_a_usage_error() -> None:
    with pytest.raises(PowerbridgeError):
        install_plan("plan9", python="p", config_path="c")


def test_execute_writes_then_runs_and_stops_at_a_failure(tmp_path: Path) -> None:
    calls: list[tuple[str, ...]] = []

    def run(argv: object) -> tuple[int, str]:
        calls.append(tuple(argv))  # type: ignore[arg-type]
        return (1, "no such unit") if "bad" in argv else (0, "")  # type: ignore[operator]

    target = tmp_path / "sub" / "unit.service"
    leftover = tmp_path / "old.xml"
    leftover.write_text("x")
    plan = Plan(
        "linux",
        "install",
        writes=(),
        steps=(Step(("ok",)), Step(("bad", "ignored"), may_fail=True), Step(("ok", "2"))),
        removes=(str(leftover),),
    )
    from bridge.shutdown.service import FileWrite

    plan = Plan("linux", "install", (FileWrite(str(target), b"[Unit]\n", 0o600),), plan.steps,
                plan.removes)  # fmt: skip
    lines: list[str] = []
    execute(plan, run=run, echo=lines.append)
    assert target.read_text() == "[Unit]\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert calls == [("ok",), ("bad", "ignored"), ("ok", "2")]
    assert not leftover.exists()
    failing = Plan("linux", "install", steps=(Step(("bad",)), Step(("never",))))
    calls.clear()
    with pytest.raises(PowerbridgeError, match="bad failed"):
        execute(failing, run=run, echo=lines.append)
    assert calls == [("bad",)]


# -- the command line ---------------------------------------------------------------------------


def client_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "client.yaml"
    path.write_text("bridges: [rack-a]\nmqtt:\n  host: 127.0.0.1\n")
    return path


def test_cli_install_dry_run_prints_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = client_yaml(tmp_path)
    code = main(["client", "install", "--dry-run", "-c", str(config), "--python", "/usr/bin/py"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("would write ")
    assert f"--config {config.resolve()}" in out
    assert "would run: " in out


def test_cli_install_dry_run_for_another_system(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["client", "install", "--dry-run", "--system", "windows", "-c", WIN_CONFIG,
         "--python", WIN_PY]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "would run: schtasks /Create /TN powerbridge-client /XML" in out
    assert "<DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>" in out


def test_cli_install_refuses_a_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "client.yaml"
    bad.write_text("bridges: []\n")
    assert main(["client", "install", "--dry-run", "-c", str(bad)]) == 2
    assert "bridges" in capsys.readouterr().err


def test_cli_system_needs_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["client", "uninstall", "--system", "darwin"]) == 2
    assert "--dry-run" in capsys.readouterr().err


def test_cli_uninstall_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["client", "uninstall", "--dry-run", "--system", "darwin"]) == 0
    assert "would run: launchctl bootout system/org.powerbridge.client" in capsys.readouterr().out


def test_cli_client_without_action_shows_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["client"]) == 2
    assert "install" in capsys.readouterr().err
