"""Installing the client as a boot-time service: systemd (Linux), launchd (macOS), Task Scheduler.

Each operation is first a *plan* — the exact files and commands, built by pure
functions — then executed.  ``--dry-run`` prints the plan and does nothing else,
and the tests check the plans byte for byte.
"""

from __future__ import annotations

import os
import plistlib
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Final

from bridge.errors import PowerbridgeError, UsageError
from bridge.shutdown.actions import LINUX, MACOS, WINDOWS

SYSTEMD_UNIT: Final = "powerbridge-client.service"
SYSTEMD_PATH: Final = Path("/etc/systemd/system") / SYSTEMD_UNIT
LAUNCHD_LABEL: Final = "org.powerbridge.client"
LAUNCHD_PATH: Final = Path("/Library/LaunchDaemons") / f"{LAUNCHD_LABEL}.plist"
LAUNCHD_LOG: Final = "/var/log/powerbridge-client.log"
WINDOWS_TASK: Final = "powerbridge-client"
DOCS_URL: Final = "https://github.com/powerbridge/powerbridge/blob/main/docs/shutdown-client.md"
DESCRIPTION: Final = (
    "powerbridge shutdown client: shuts this computer down after a sustained mains outage"
)


def default_config_path(system: str) -> str:
    if system == WINDOWS:
        return r"C:\ProgramData\powerbridge\client.yaml"
    return "/etc/powerbridge/client.yaml"


def windows_log_path(config_path: str) -> str:
    return str(PureWindowsPath(config_path).with_name("client.log"))


def windows_task_file(config_path: str) -> str:
    return str(PureWindowsPath(config_path).with_name("powerbridge-client-task.xml"))


@dataclass(frozen=True, slots=True)
class FileWrite:
    path: str
    content: bytes
    mode: int = 0o644

    def text(self) -> str:
        if self.content.startswith((b"\xff\xfe", b"\xfe\xff")):
            return self.content.decode("utf-16")
        return self.content.decode("utf-8")


@dataclass(frozen=True, slots=True)
class Step:
    argv: tuple[str, ...]
    may_fail: bool = False
    """Best-effort step (e.g. unloading a service that may not be loaded)."""


@dataclass(frozen=True, slots=True)
class Plan:
    system: str
    action: str
    writes: tuple[FileWrite, ...] = ()
    steps: tuple[Step, ...] = ()
    removes: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """Exactly what :func:`execute` would do, as text (the ``--dry-run`` output)."""
        lines: list[str] = []
        for write in self.writes:
            mode = "" if self.system == WINDOWS else f" (mode {write.mode:04o})"
            lines.append(f"would write {write.path}{mode}:")
            lines += [f"    {line}" for line in write.text().splitlines()]
        for step in self.steps:
            suffix = "   (a failure here is ignored)" if step.may_fail else ""
            lines.append(f"would run: {_show(step.argv)}{suffix}")
        lines += [f"would remove {path}" for path in self.removes]
        lines += self.notes
        return "\n".join(lines) + "\n"


def _show(argv: Sequence[str]) -> str:
    return " ".join(a if a and not any(c in a for c in " \"'") else repr(a) for a in argv)


def client_argv(python: str, config_path: str, *, log_file: str | None = None) -> list[str]:
    argv = [python, "-m", "bridge", "client", "run", "--config", config_path]
    if log_file:
        argv += ["--log-file", log_file]
    return argv


# --------------------------------------------------------------------------- Linux


def _systemd_quote(arg: str) -> str:
    if arg and not any(c.isspace() or c in "\"'\\;$%" for c in arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def systemd_unit(python: str, config_path: str) -> str:
    exec_start = " ".join(_systemd_quote(a) for a in client_argv(python, config_path))
    return f"""\
[Unit]
Description={DESCRIPTION}
Documentation={DOCS_URL}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={exec_start}
Restart=always
RestartSec=5
SyslogIdentifier=powerbridge-client
# Runs as root: powering off needs it, and pre-shutdown hooks may too.
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""


# --------------------------------------------------------------------------- macOS


def launchd_plist(python: str, config_path: str) -> bytes:
    return plistlib.dumps(
        {
            "Label": LAUNCHD_LABEL,
            "ProgramArguments": client_argv(python, config_path),
            "RunAtLoad": True,
            "KeepAlive": True,
            "ProcessType": "Interactive",
            "StandardOutPath": LAUNCHD_LOG,
            "StandardErrorPath": LAUNCHD_LOG,
        },
        sort_keys=True,
    )


# --------------------------------------------------------------------------- Windows


def escape(text: str) -> str:
    """XML character data (``xml.sax.saxutils`` would pull in ``urllib.request``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _windows_arguments(argv: Sequence[str]) -> str:
    return subprocess.list2cmdline(list(argv))


def windows_task_xml(python: str, config_path: str) -> str:
    """A Task Scheduler definition: at boot, as SYSTEM, never stopped, restarted on failure.

    The defaults of a task made with ``schtasks /Create /SC ONSTART`` would stop it after
    three days and would not start it — or would stop it — on battery power, which is
    exactly when it is needed (a UPS can show up as a battery), hence the XML.
    """
    arguments = _windows_arguments(
        client_argv(python, config_path, log_file=windows_log_path(config_path))[1:]
    )
    return f"""\
<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>{escape(DESCRIPTION)}</Description>
    <Documentation>{escape(DOCS_URL)}</Documentation>
  </RegistrationInfo>
  <Triggers>
    <BootTrigger>
      <Enabled>true</Enabled>
    </BootTrigger>
  </Triggers>
  <Principals>
    <Principal id="System">
      <UserId>S-1-5-18</UserId>
      <RunLevel>HighestAvailable</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <AllowHardTerminate>true</AllowHardTerminate>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <IdleSettings>
      <StopOnIdleEnd>false</StopOnIdleEnd>
      <RestartOnIdle>false</RestartOnIdle>
    </IdleSettings>
    <AllowStartOnDemand>true</AllowStartOnDemand>
    <Enabled>true</Enabled>
    <Hidden>false</Hidden>
    <RunOnlyIfIdle>false</RunOnlyIfIdle>
    <WakeToRun>false</WakeToRun>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <Priority>4</Priority>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>999</Count>
    </RestartOnFailure>
  </Settings>
  <Actions Context="System">
    <Exec>
      <Command>{escape(python)}</Command>
      <Arguments>{escape(arguments)}</Arguments>
    </Exec>
  </Actions>
</Task>
"""


# --------------------------------------------------------------------------- plans


def install_plan(system: str, *, python: str, config_path: str) -> Plan:
    """Write the service definition, register it and start it now."""
    if system == LINUX:
        return Plan(
            system,
            "install",
            writes=(FileWrite(str(SYSTEMD_PATH), systemd_unit(python, config_path).encode()),),
            steps=(
                Step(("systemctl", "daemon-reload")),
                Step(("systemctl", "enable", "--now", SYSTEMD_UNIT)),
            ),
            notes=(f"logs: journalctl -u {SYSTEMD_UNIT}",),
        )
    if system == MACOS:
        target = f"system/{LAUNCHD_LABEL}"
        return Plan(
            system,
            "install",
            writes=(FileWrite(str(LAUNCHD_PATH), launchd_plist(python, config_path)),),
            steps=(
                Step(("launchctl", "bootout", target), may_fail=True),
                Step(("launchctl", "bootstrap", "system", str(LAUNCHD_PATH))),
                Step(("launchctl", "enable", target)),
            ),
            notes=(f"logs: {LAUNCHD_LOG}",),
        )
    if system == WINDOWS:
        task_file = windows_task_file(config_path)
        return Plan(
            system,
            "install",
            writes=(FileWrite(task_file, windows_task_xml(python, config_path).encode("utf-16")),),
            steps=(
                Step(("schtasks", "/Create", "/TN", WINDOWS_TASK, "/XML", task_file, "/F")),
                Step(("schtasks", "/Run", "/TN", WINDOWS_TASK)),
            ),
            notes=(f"logs: {windows_log_path(config_path)}",),
        )
    raise UsageError(f"cannot install a service on {system!r}")


def uninstall_plan(system: str, *, config_path: str | None = None) -> Plan:
    """Stop and unregister the service and remove its definition."""
    if system == LINUX:
        return Plan(
            system,
            "uninstall",
            steps=(
                Step(("systemctl", "disable", "--now", SYSTEMD_UNIT), may_fail=True),
                Step(("rm", "-f", str(SYSTEMD_PATH))),
                Step(("systemctl", "daemon-reload")),
            ),
        )
    if system == MACOS:
        return Plan(
            system,
            "uninstall",
            steps=(
                Step(("launchctl", "bootout", f"system/{LAUNCHD_LABEL}"), may_fail=True),
                Step(("rm", "-f", str(LAUNCHD_PATH))),
            ),
        )
    if system == WINDOWS:
        config_path = config_path or default_config_path(WINDOWS)
        return Plan(
            system,
            "uninstall",
            steps=(
                Step(("schtasks", "/End", "/TN", WINDOWS_TASK), may_fail=True),
                Step(("schtasks", "/Delete", "/TN", WINDOWS_TASK, "/F")),
            ),
            removes=(windows_task_file(config_path),),
        )
    raise UsageError(f"cannot uninstall a service on {system!r}")


def status_argv(system: str) -> tuple[str, ...]:
    """A command that exits 0 when the service is installed (and, where known, running)."""
    if system == LINUX:
        return ("systemctl", "is-active", SYSTEMD_UNIT)
    if system == MACOS:
        return ("launchctl", "print", f"system/{LAUNCHD_LABEL}")
    return ("schtasks", "/Query", "/TN", WINDOWS_TASK, "/V", "/FO", "LIST")


# --------------------------------------------------------------------------- executing


Run = Callable[[Sequence[str]], tuple[int, str]]


def run_step(argv: Sequence[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)
    except FileNotFoundError:
        return 127, f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, f"{argv[0]}: timed out"
    return done.returncode, (done.stdout + done.stderr).strip()


def execute(plan: Plan, *, run: Run = run_step, echo: Callable[[str], None] = print) -> None:
    """Carry out a plan; the first failing step that may not fail raises."""
    for write in plan.writes:
        path = Path(write.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(write.content)
            if os.name == "posix":
                path.chmod(write.mode)
        except PermissionError:
            raise PowerbridgeError(
                f"cannot write {path}: permission denied (run as root/administrator)"
            ) from None
        echo(f"wrote {path}")
    for step in plan.steps:
        code, output = run(step.argv)
        if code != 0 and not step.may_fail:
            raise PowerbridgeError(f"{_show(step.argv)} failed (exit {code}): {output}")
        echo(f"ran: {_show(step.argv)}" + ("" if code == 0 else f" (exit {code}, ignored)"))
    for removed in plan.removes:
        Path(removed).unlink(missing_ok=True)
        echo(f"removed {removed}")
    for note in plan.notes:
        echo(note)
