"""The systemd unit, udev rules and service user of a bridge, and the tools that install them.

Everything is rendered from files shipped in the package (``templates/``,
``files/``) and written under a *root* prefix: ``/`` on a real bridge, a scratch
directory with ``--root`` (then no host tool is run: the files can be inspected,
copied into an image, or tested).  ``systemctl``, ``systemd-sysusers`` and
``udevadm`` are called through :class:`Host`, which is the one place that knows
how to find and run them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from bridge.config import BridgeConfig

UNIT_NAME = "powerbridge.service"
POWERMETER_LINK = "/dev/powermeter"
"""The stable link the shipped udev rules create for a known meter or adapter."""
METER_RULES = "99-powerbridge-meter.rules"
SERVICE_USER = "powerbridge"
STATE_DIRECTORY = "/var/lib/powerbridge"
WATCHDOG_SEC = 30
"""``WatchdogSec=``: the daemon must ping at least every 15 s (half of it)."""

UNIT_PATH = PurePosixPath("/etc/systemd/system") / UNIT_NAME
WANTS_LINK = PurePosixPath("/etc/systemd/system/multi-user.target.wants") / UNIT_NAME
SYSUSERS_PATH = PurePosixPath("/etc/sysusers.d/powerbridge.conf")
UDEV_DIR = PurePosixPath("/etc/udev/rules.d")
UNIT_SEARCH_PATH = (
    PurePosixPath("/etc/systemd/system"),
    PurePosixPath("/run/systemd/system"),
    PurePosixPath("/usr/local/lib/systemd/system"),
    PurePosixPath("/usr/lib/systemd/system"),
    PurePosixPath("/lib/systemd/system"),
)

TOOL_PATH_ENV = "POWERBRIDGE_TOOL_PATH"
"""Directories (``PATH`` syntax) holding ``systemctl``, ``systemd-sysusers`` and ``udevadm``
instead of ``PATH``; when set, the host counts as running systemd if ``systemctl`` is
there.  For tests and for unusual installations."""

# Kernel device classes (names in /proc/devices) for DeviceAllow=, by tty name prefix.
_TTY_CLASSES = (
    ("ttyUSB", "char-ttyUSB"),
    ("ttyACM", "char-ttyACM"),
    ("ttyAMA", "char-ttyAMA"),
    ("ttyS", "char-ttyS"),
)
_PLACEHOLDER = re.compile(r"@[A-Z_]+@")
_SAFE_ARG = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def under(root: Path, path: PurePosixPath | str) -> Path:
    """``path`` (absolute) placed under ``root`` (``/`` leaves it unchanged)."""
    relative = str(path).lstrip("/")
    return root / relative if relative else root


def quote_arg(arg: str) -> str:
    """Quote one ExecStart= argument for systemd (double quotes; ``%`` and ``$`` escaped)."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _SAFE_ARG.match(arg):
        return escaped
    escaped = escaped.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def default_exec() -> list[str]:
    """The command that runs this installation's ``powerbridge``.

    The console script next to the running interpreter when there is one (a venv
    or a system install), else ``<python> -m bridge``.
    """
    script = Path(sys.executable).with_name("powerbridge")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "bridge"]


def exec_problem(argv: Sequence[str]) -> str | None:
    """Why the service user could not run ``argv`` under the unit's hardening, if it cannot."""
    program = argv[0]
    if not program.startswith("/"):
        return f"{program} is not an absolute path"
    for hidden, why in (
        ("/home/", "ProtectHome=yes hides /home"),
        ("/root/", "ProtectHome=yes hides /root"),
        ("/tmp/", "PrivateTmp=yes gives the service its own /tmp"),  # noqa: S108 - a path we warn about, not one we use
        ("/var/tmp/", "PrivateTmp=yes gives the service its own /var/tmp"),  # noqa: S108 - idem
    ):
        if program.startswith(hidden):
            return f"{program} is under {hidden.rstrip('/')}: {why}"
    return None


def serial_device_allow(port: str | None) -> list[str]:
    """``DeviceAllow=`` values for a meter on ``port``: its device class and the path."""
    if not port:
        return []
    names = {Path(port).name}
    # Not plugged in now: fall back to the kinds USB meters appear as.
    with contextlib.suppress(OSError):
        names.add(Path(port).resolve(strict=True).name)
    classes = [cls for prefix, cls in _TTY_CLASSES if any(n.startswith(prefix) for n in names)]
    if not classes:
        classes = ["char-ttyUSB", "char-ttyACM"]
    return [f"{cls} rw" for cls in classes] + [f"{port} rw"]


@dataclass(frozen=True, slots=True)
class UnitOptions:
    """What varies between bridges' units."""

    config_path: Path
    exec_argv: tuple[str, ...] = field(default_factory=lambda: tuple(default_exec()))
    user: str = SERVICE_USER
    watchdog_sec: int = WATCHDOG_SEC
    device_allow: tuple[str, ...] = ()
    read_write_paths: tuple[str, ...] = ()

    @classmethod
    def for_config(
        cls, config: BridgeConfig, config_path: Path, exec_argv: Sequence[str] | None = None
    ) -> UnitOptions:
        """Device access and writable paths derived from the bridge's configuration."""
        allow: list[str] = []
        if config.meter.type == "simulated":
            allow += ["/dev/ptmx rw", "char-pts rw"]  # the simulator sits behind a pty
        elif config.meter.type != "none":
            allow += serial_device_allow(config.meter.port)
        uses_pin = config.mains.source != "meter" and not config.simulation.enabled
        if uses_pin or (config.leds.enabled and config.leds.backend == "gpio"):
            allow.append("char-gpiochip rw")
        writable: list[str] = []
        if os.path.normpath(config.device.data_dir) != STATE_DIRECTORY:
            writable.append(config.device.data_dir)
        return cls(
            config_path=config_path.absolute(),
            exec_argv=tuple(exec_argv) if exec_argv else tuple(default_exec()),
            device_allow=tuple(dict.fromkeys(allow)),
            read_write_paths=tuple(writable),
        )


def _shipped(*parts: str) -> str:
    return resources.files("bridge.deployment").joinpath(*parts).read_text(encoding="utf-8")


def render_unit(options: UnitOptions) -> str:
    """The text of ``powerbridge.service``."""
    argv = [*options.exec_argv, "run", "--config", str(options.config_path)]
    allow = "\n".join(f"DeviceAllow={a}" for a in options.device_allow)
    writable = "\n".join(f"ReadWritePaths={p}" for p in options.read_write_paths)
    values = {
        "@EXEC_START@": " ".join(quote_arg(a) for a in argv),
        "@WATCHDOG_SEC@": f"{options.watchdog_sec}s",
        "@USER@": options.user,
        "@DEVICE_ALLOW@\n": f"{allow}\n" if allow else "",
        "@READ_WRITE_PATHS@\n": f"{writable}\n" if writable else "",
    }
    text = _shipped("templates", "powerbridge.service.tmpl")
    for key, value in values.items():
        text = text.replace(key, value)
    leftover = _PLACEHOLDER.search(text)
    if leftover:
        raise ValueError(f"unit template placeholder {leftover.group(0)} was not filled")
    return text


def shipped_rules() -> dict[str, str]:
    """Every udev rules file shipped in ``bridge/deployment/files`` (name → text)."""
    folder = resources.files("bridge.deployment").joinpath("files")
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".rules")
    }


_USB_ID = re.compile(
    r'ATTRS\{idVendor\}=="([0-9a-fA-F]{4})", ATTRS\{idProduct\}=="([0-9a-fA-F]{4})"'
)


def meter_usb_ids() -> frozenset[str]:
    """``vid:pid`` (lowercase hex) of every device the shipped meter rules link."""
    text = shipped_rules()[METER_RULES]
    return frozenset(f"{v}:{p}".lower() for v, p in _USB_ID.findall(text))


def sysusers_text() -> str:
    return _shipped("files", "powerbridge.sysusers.conf")


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """A file to write during installation (``path`` is absolute on the target system)."""

    path: PurePosixPath
    text: str
    mode: int = 0o644


def install_plan(options: UnitOptions) -> list[PlannedFile]:
    """The files a deployment installs: unit, service user, udev rules."""
    plan = [
        PlannedFile(UNIT_PATH, render_unit(options)),
        PlannedFile(SYSUSERS_PATH, sysusers_text()),
    ]
    plan += [PlannedFile(UDEV_DIR / name, text) for name, text in shipped_rules().items()]
    return plan


def write_file(root: Path, planned: PlannedFile) -> Path:
    """Write one planned file under ``root`` atomically; returns where it went."""
    target = under(root, planned.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(planned.text, encoding="utf-8")
    tmp.chmod(planned.mode)
    tmp.replace(target)
    return target


def enable_offline(root: Path) -> Path:
    """What ``systemctl enable`` does, for a unit installed under ``root``: the wants link."""
    link = under(root, WANTS_LINK)
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(str(UNIT_PATH))
    return link


def disable_offline(root: Path) -> bool:
    link = under(root, WANTS_LINK)
    if link.is_symlink() or link.exists():
        link.unlink()
        return True
    return False


def installed_unit(root: Path) -> Path | None:
    """The unit file under ``root``, wherever systemd would find it."""
    for directory in UNIT_SEARCH_PATH:
        candidate = under(root, directory / UNIT_NAME)
        if candidate.is_file():
            return candidate
    return None


def enabled_offline(root: Path) -> bool:
    return under(root, WANTS_LINK).is_symlink()


class HostToolError(Exception):
    """A host tool failed; the message carries its output."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    argv: tuple[str, ...]
    returncode: int
    output: str


class Host:
    """systemd and udev on this machine."""

    def __init__(self, tool_path: str | None = None, timeout: float = 90.0) -> None:
        self._tool_path = tool_path if tool_path is not None else os.environ.get(TOOL_PATH_ENV)
        self._timeout = timeout

    @property
    def systemd_running(self) -> bool:
        """sd_booted(): was this machine booted with systemd (and can we reach it)?"""
        if self._tool_path:
            return self.which("systemctl") is not None
        return Path("/run/systemd/system").is_dir() and self.which("systemctl") is not None

    @property
    def udev_running(self) -> bool:
        """Can ``udevadm control`` reach udevd?  Not in containers, where udev does not run."""
        if self._tool_path:
            return self.which("udevadm") is not None
        return self.which("udevadm") is not None and Path("/run/udev/control").exists()

    def which(self, tool: str) -> str | None:
        """The tool's path; with a tool path set, only that directory is searched."""
        if self._tool_path:
            return shutil.which(tool, path=self._tool_path)
        return shutil.which(tool)

    def run(self, tool: str, *args: str) -> ToolResult:
        """Run a tool; never raises for a non-zero exit (see :meth:`check`)."""
        program = self.which(tool)
        if program is None:
            return ToolResult((tool, *args), 127, f"{tool}: not found")
        try:
            done = subprocess.run(
                [program, *args],
                capture_output=True,
                text=True,
                timeout=self._timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return ToolResult((tool, *args), 126, str(exc))
        output = (done.stdout + done.stderr).strip()
        return ToolResult((tool, *args), done.returncode, output)

    def check(self, tool: str, *args: str) -> ToolResult:
        result = self.run(tool, *args)
        if result.returncode != 0:
            raise HostToolError(
                f"`{' '.join(result.argv)}` failed ({result.returncode}): {result.output}"
            )
        return result

    # -- systemctl --------------------------------------------------------------------
    def active_state(self, unit: str = UNIT_NAME) -> str:
        """``active``, ``inactive``, ``failed``, ``activating``, … or ``unknown``."""
        result = self.run("systemctl", "is-active", unit)
        state = result.output.splitlines()[-1].strip() if result.output else ""
        return state if re.fullmatch(r"[a-z-]+", state) else "unknown"

    def enabled_state(self, unit: str = UNIT_NAME) -> str:
        """``enabled``, ``disabled``, ``not-found``, … or ``unknown``."""
        result = self.run("systemctl", "is-enabled", unit)
        state = result.output.splitlines()[-1].strip() if result.output else ""
        if "No such file" in result.output or "not-found" in state:
            return "not-found"
        return state if re.fullmatch(r"[a-z-]+", state) else "unknown"
