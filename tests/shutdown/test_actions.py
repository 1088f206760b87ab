"""Actions: the exact commands per OS, hooks with time limits, user warnings, dry run."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest

from bridge.config import parse_client_config
from bridge.config.client import ShutdownConfig
from bridge.shutdown.actions import (
    SHUTDOWN_COMMENT,
    Actions,
    Invocation,
    RunResult,
    format_duration,
    notify_invocations,
    run_invocation,
    session_users,
    shutdown_commands,
)


def shutdown_config(text: str = "") -> ShutdownConfig:
    return parse_client_config(
        "bridges: [rack-a]\nshutdown:\n" + (text or "  delay: 10m\n")
    ).shutdown


def argvs(invocations: list[Invocation] | tuple[Invocation, ...]) -> list[tuple[str, ...]]:
    return [i.argv for i in invocations]


# -- what would run --------------------------------------------------------------------------


def test_default_shutdown_commands_per_os() -> None:
    assert argvs(shutdown_commands("linux")) == [
        ("systemctl", "poweroff"),
        ("shutdown", "-h", "now"),
    ]
    assert argvs(shutdown_commands("darwin")) == [("shutdown", "-h", "now")]
    assert argvs(shutdown_commands("windows")) == [
        ("shutdown", "/s", "/t", "0", "/c", SHUTDOWN_COMMENT)
    ]
    assert SHUTDOWN_COMMENT == "powerbridge: shutting down after a sustained mains outage"


def test_configured_command_replaces_the_defaults_on_every_os() -> None:
    for system in ("linux", "darwin", "windows"):
        assert argvs(shutdown_commands(system, ("/usr/local/bin/halt-all", "--now"))) == [
            ("/usr/local/bin/halt-all", "--now")
        ]


def test_config_rejects_a_shell_string_command() -> None:
    with pytest.raises(Exception, match="list of arguments"):
        shutdown_config("  command: 'shutdown -h now; rm -rf /'\n")


def test_windows_warning_uses_msg() -> None:
    for method in ("auto", "msg", "wall", "desktop"):
        assert argvs(notify_invocations("windows", method, "hello", root=True)) == [
            ("msg", "*", "/TIME:60", "hello")
        ]
    assert notify_invocations("windows", "none", "hello", root=True) == []


def test_macos_warnings() -> None:
    (wall,) = notify_invocations("darwin", "auto", "bye", root=True)
    assert wall.argv == ("wall",)
    assert wall.stdin == "bye"
    (desktop,) = notify_invocations("darwin", "desktop", 'say "hi" \\ now', root=False)
    assert desktop.argv == (
        "osascript",
        "-e",
        'display notification "say \\"hi\\" \\\\ now" with title "powerbridge"',
    )


def test_linux_warnings_as_root_reach_every_desktop_session() -> None:
    invocations = notify_invocations(
        "linux", "auto", "msg", root=True, sessions=[("alice", 1000), ("bob", 1001)]
    )
    assert [i.argv for i in invocations] == [
        ("wall",),
        (
            "runuser", "-u", "alice", "--", "env",
            "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus",
            "notify-send", "--urgency=critical", "--app-name=powerbridge", "powerbridge", "msg",
        ),
        (
            "runuser", "-u", "bob", "--", "env",
            "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1001/bus",
            "notify-send", "--urgency=critical", "--app-name=powerbridge", "powerbridge", "msg",
        ),
    ]  # fmt: skip
    as_user = notify_invocations("linux", "desktop", "m", root=False)
    assert argvs(as_user) == [
        ("notify-send", "--urgency=critical", "--app-name=powerbridge", "powerbridge", "m")
    ]
    without = notify_invocations("linux", "auto", "m", root=False, available=lambda _n: False)
    assert argvs(without) == [("wall",)]
    assert argvs(notify_invocations("linux", "wall", "m", root=True, sessions=[("a", 1)])) == [
        ("wall",)
    ]
    assert notify_invocations("linux", "none", "m", root=True) == []


def test_session_users(tmp_path: Path) -> None:
    import os

    uid = os.getuid()
    (tmp_path / str(uid)).mkdir()
    (tmp_path / str(uid) / "bus").touch()
    (tmp_path / "99999").mkdir()  # no bus: no session
    (tmp_path / "notanumber").mkdir()
    users = session_users(tmp_path)
    assert [u[1] for u in users] == [uid]
    assert session_users(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59.6, "60 s"), (90, "1 min 30 s"), (300, "5 min"), (7200, "2.0 h")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# -- running ---------------------------------------------------------------------------------


@pytest.mark.realtime
def test_run_invocation_real_process(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = "import sys; open(sys.argv[1], 'w').write(sys.stdin.read())"
    ok = run_invocation(Invocation((sys.executable, "-c", script, str(out)), 10, stdin="hi"))
    assert ok.ok
    assert out.read_text() == "hi"
    failed = run_invocation(Invocation((sys.executable, "-c", "raise SystemExit(3)"), 10))
    assert (failed.ok, failed.returncode) == (False, 3)
    missing = run_invocation(Invocation(("/nonexistent/powerbridge-cmd",), 10))
    assert missing.returncode is None
    assert missing.error is not None
    assert "cannot start" in missing.error


@pytest.mark.realtime
def test_run_invocation_kills_the_process_group_on_timeout(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild-survived"
    grandchild = tmp_path / "grandchild.py"
    grandchild.write_text(f"import time\ntime.sleep(1.5)\nopen({str(marker)!r}, 'w').write('x')\n")
    child = tmp_path / "child.py"
    child.write_text(
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, {str(grandchild)!r}])\n"
        "time.sleep(30)\n"
    )
    code = str(child)
    started = time.monotonic()
    result = run_invocation(Invocation((sys.executable, code), 0.5))
    assert time.monotonic() - started < 5
    assert result.returncode is None
    assert result.error is not None
    assert "timed out" in result.error
    time.sleep(1.5)
    assert not marker.exists()


class FakeRunner:
    def __init__(self, fail: set[tuple[str, ...]] | None = None) -> None:
        self.calls: list[Invocation] = []
        self.fail = fail or set()

    def __call__(self, invocation: Invocation) -> RunResult:
        self.calls.append(invocation)
        code = 1 if invocation.argv in self.fail else 0
        return RunResult(invocation, code, None, "")


def test_shutdown_runs_hooks_then_the_first_command_that_works() -> None:
    config = shutdown_config(
        "  hooks:\n    - command: [virsh, shutdown, vm1]\n      timeout: 2m\n"
        "    - command: [sync]\n"
    )
    runner = FakeRunner(fail={("virsh", "shutdown", "vm1"), ("systemctl", "poweroff")})
    outcome = Actions(config, system="linux", runner=runner).shutdown("test")
    assert [(c.argv, c.timeout) for c in runner.calls] == [
        (("virsh", "shutdown", "vm1"), 120.0),
        (("sync",), 60.0),
        (("systemctl", "poweroff"), 60.0),
        (("shutdown", "-h", "now"), 60.0),
    ]
    assert outcome.ok


def test_shutdown_stops_at_the_first_successful_command() -> None:
    runner = FakeRunner()
    Actions(shutdown_config(), system="linux", runner=runner).shutdown("test")
    assert argvs(runner.calls) == [("systemctl", "poweroff")]


def test_failed_shutdown_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    runner = FakeRunner(fail={("shutdown", "/s", "/t", "0", "/c", SHUTDOWN_COMMENT)})
    with caplog.at_level(logging.CRITICAL):
        outcome = Actions(shutdown_config(), system="windows", runner=runner).shutdown("test")
    assert not outcome.ok
    assert "NOT shutting down" in caplog.text


def test_dry_run_runs_nothing_and_says_what_it_would_do(caplog: pytest.LogCaptureFixture) -> None:
    config = shutdown_config("  dry_run: true\n  hooks: [{command: [virsh, shutdown, vm1]}]\n")
    runner = FakeRunner()
    actions = Actions(config, system="linux", runner=runner)
    with caplog.at_level(logging.WARNING):
        outcome = actions.shutdown("outage at rack-a")
        actions.warn_users(60, "outage at rack-a")
    assert runner.calls == []
    assert outcome.ok
    assert outcome.dry_run
    assert "would shut down now (outage at rack-a) with: systemctl poweroff or else shutdown" in (
        caplog.text
    )
    assert "would run hook virsh shutdown vm1" in caplog.text
    assert "would warn users with: wall" in caplog.text


def test_warn_users_runs_the_notifier(caplog: pytest.LogCaptureFixture) -> None:
    runner = FakeRunner(fail={("msg", "*", "/TIME:60", "x")})
    actions = Actions(shutdown_config(), system="windows", runner=runner)
    with caplog.at_level(logging.WARNING):
        results = actions.warn_users(300, "outage at rack-a")
    assert len(runner.calls) == 1
    (call,) = runner.calls
    assert call.argv[:3] == ("msg", "*", "/TIME:60")
    assert call.argv[3] == (
        "powerbridge: this computer will shut down in 5 min (outage at rack-a). Save your work."
    )
    assert results[0].ok
