"""What the client *does*: the shutdown command per OS, pre-shutdown hooks and user warnings.

Every command is an argument list built from this module's defaults or from the
configuration file, never from a message's content and never through a shell.
The pure functions (:func:`shutdown_commands`, :func:`notify_invocations`) say what
would run; :class:`Actions` runs it through an injectable runner.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bridge.config.client import ShutdownConfig

log = logging.getLogger("bridge.shutdown.actions")

LINUX: Final = "linux"
MACOS: Final = "darwin"
WINDOWS: Final = "windows"
SYSTEMS: Final = (LINUX, MACOS, WINDOWS)

TITLE: Final = "powerbridge"
SHUTDOWN_COMMENT: Final = "powerbridge: shutting down after a sustained mains outage"
COMMAND_TIMEOUT: Final = 60.0
NOTIFY_TIMEOUT: Final = 15.0


def current_system() -> str:
    """``linux``, ``darwin`` or ``windows`` (other systems are treated as Linux-like)."""
    name = platform.system().lower()
    return name if name in SYSTEMS else LINUX


@dataclass(frozen=True, slots=True)
class Invocation:
    """One command to run: argument list, time limit, optional standard input."""

    argv: tuple[str, ...]
    timeout: float
    stdin: str | None = None

    def __str__(self) -> str:
        shown = " ".join(_quote(a) for a in self.argv)
        return f"{shown} < (message)" if self.stdin is not None else shown


def _quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "-_./:=@%+," for c in arg) else repr(arg)


@dataclass(frozen=True, slots=True)
class RunResult:
    invocation: Invocation
    returncode: int | None
    """``None`` when the command could not be started or timed out."""
    error: str | None = None
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


Runner = Callable[[Invocation], RunResult]


# --------------------------------------------------------------------------- what to run


def shutdown_commands(
    system: str, configured: Sequence[str] | None = None, *, comment: str = SHUTDOWN_COMMENT
) -> tuple[Invocation, ...]:
    """The shutdown commands to try, in order: the configured one, or the OS defaults."""
    if configured:
        return (Invocation(tuple(configured), COMMAND_TIMEOUT),)
    if system == WINDOWS:
        return (Invocation(("shutdown", "/s", "/t", "0", "/c", comment[:512]), COMMAND_TIMEOUT),)
    if system == MACOS:
        return (Invocation(("shutdown", "-h", "now"), COMMAND_TIMEOUT),)
    return (
        Invocation(("systemctl", "poweroff"), COMMAND_TIMEOUT),
        Invocation(("shutdown", "-h", "now"), COMMAND_TIMEOUT),
    )


def hook_invocations(config: ShutdownConfig) -> tuple[Invocation, ...]:
    return tuple(Invocation(tuple(h.command), h.timeout) for h in config.hooks)


def session_users(run_dir: Path = Path("/run/user")) -> list[tuple[str, int]]:
    """Users with a desktop session bus (``/run/user/<uid>/bus``) on Linux."""
    try:
        import pwd
    except ImportError:  # pragma: no cover - not on POSIX
        return []
    found: list[tuple[str, int]] = []
    try:
        entries = sorted(run_dir.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit() or not (entry / "bus").exists():
            continue
        try:
            found.append((pwd.getpwuid(int(entry.name)).pw_name, int(entry.name)))
        except KeyError:
            continue
    return found


def notify_invocations(  # noqa: PLR0911 - one return per operating system and method
    system: str,
    method: str,
    message: str,
    *,
    root: bool,
    sessions: Sequence[tuple[str, int]] = (),
    available: Callable[[str], bool] = lambda _name: True,
    display_seconds: int = 60,
) -> list[Invocation]:
    """How to warn logged-in users, per OS and ``shutdown.notify`` method.

    ``auto``: Linux ``wall`` plus a desktop notification in every session; macOS
    ``wall``; Windows ``msg *``.  ``desktop`` on macOS uses ``osascript``, which only
    reaches the desktop when the client runs as the logged-in user.
    """
    if method == "none":
        return []
    if system == WINDOWS:
        return [Invocation(("msg", "*", f"/TIME:{display_seconds}", message), NOTIFY_TIMEOUT)]
    wall = Invocation(("wall",), NOTIFY_TIMEOUT, stdin=message)
    if system == MACOS:
        if method == "desktop":
            text, title = _applescript(message), _applescript(TITLE)
            script = f"display notification {text} with title {title}"
            return [Invocation(("osascript", "-e", script), NOTIFY_TIMEOUT)]
        return [wall]
    if method in ("wall", "msg"):
        return [wall]
    desktop: list[Invocation] = []
    if available("notify-send"):
        send = ("notify-send", "--urgency=critical", f"--app-name={TITLE}", TITLE, message)
        if root:
            desktop = [
                Invocation(
                    (
                        "runuser",
                        "-u",
                        user,
                        "--",
                        "env",
                        f"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{uid}/bus",
                        *send,
                    ),
                    NOTIFY_TIMEOUT,
                )
                for user, uid in sessions
            ]
        else:
            desktop = [Invocation(send, NOTIFY_TIMEOUT)]
    if method == "desktop":
        return desktop
    return [wall, *desktop]


def _applescript(text: str) -> str:
    """An AppleScript string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 90:
        return f"{minutes} min" if rest == 0 else f"{minutes} min {rest} s"
    return f"{minutes / 60:.1f} h"


def warning_text(seconds_left: float, reason: str) -> str:
    return (
        f"powerbridge: this computer will shut down in {format_duration(seconds_left)} "
        f"({reason}). Save your work."
    )


# --------------------------------------------------------------------------- running


def run_invocation(invocation: Invocation) -> RunResult:
    """Run one command with its time limit; on timeout the whole process group is killed."""
    kwargs: dict[str, object] = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True
    else:  # pragma: no cover - Windows
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    try:
        process = subprocess.Popen(
            invocation.argv,
            stdin=subprocess.PIPE if invocation.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **kwargs,  # type: ignore[call-overload]
        )
    except OSError as exc:
        return RunResult(invocation, None, f"cannot start: {exc.strerror or exc}")
    try:
        output, _ = process.communicate(invocation.stdin, timeout=invocation.timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        output, _ = process.communicate()
        return RunResult(
            invocation, None, f"timed out after {invocation.timeout:g} s (killed)", output or ""
        )
    return RunResult(invocation, process.returncode, None, output or "")


def _kill_group(process: subprocess.Popen[str]) -> None:
    if os.name == "posix":
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            process.kill()
    else:  # pragma: no cover - Windows
        process.kill()


@dataclass(frozen=True, slots=True)
class ShutdownOutcome:
    dry_run: bool
    hooks: tuple[RunResult, ...]
    commands: tuple[RunResult, ...]

    @property
    def ok(self) -> bool:
        return self.dry_run or any(r.ok for r in self.commands)


class Actions:
    """Runs hooks, the shutdown command and user warnings for one client."""

    def __init__(
        self,
        config: ShutdownConfig,
        *,
        system: str | None = None,
        runner: Runner = run_invocation,
        dry_run: bool | None = None,
    ) -> None:
        self._config = config
        self.system = system or current_system()
        self._run = runner
        self.dry_run = config.dry_run if dry_run is None else dry_run

    @property
    def commands(self) -> tuple[Invocation, ...]:
        return shutdown_commands(self.system, self._config.command)

    @property
    def hooks(self) -> tuple[Invocation, ...]:
        return hook_invocations(self._config)

    def warn_users(self, seconds_left: float, reason: str) -> list[RunResult]:
        """Best effort: failures are logged, never raised."""
        message = warning_text(seconds_left, reason)
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        invocations = notify_invocations(
            self.system,
            self._config.notify,
            message,
            root=root,
            sessions=session_users() if self.system == LINUX and root else (),
            available=lambda name: shutil.which(name) is not None,
        )
        log.warning("%s", message)
        results: list[RunResult] = []
        for invocation in invocations:
            if self.dry_run:
                log.warning("dry run: would warn users with: %s", invocation)
                continue
            result = self._run(invocation)
            if not result.ok:
                log.info(
                    "warning users with %s failed: %s",
                    invocation.argv[0],
                    result.error or f"exit {result.returncode}",
                )
            results.append(result)
        return results

    def shutdown(self, reason: str) -> ShutdownOutcome:
        """Run the hooks, then the first shutdown command that succeeds (or, dry run, log)."""
        if self.dry_run:
            for hook in self.hooks:
                log.warning("dry run: would run hook %s (time limit %g s)", hook, hook.timeout)
            log.warning(
                "dry run: would shut down now (%s) with: %s",
                reason,
                " or else ".join(str(c) for c in self.commands),
            )
            return ShutdownOutcome(True, (), ())
        log.critical("shutting down this computer: %s", reason)
        hooks: list[RunResult] = []
        for hook in self.hooks:
            log.warning("running pre-shutdown hook: %s", hook)
            result = self._run(hook)
            hooks.append(result)
            if not result.ok:
                log.error(
                    "hook %s failed (%s); shutting down anyway",
                    hook,
                    result.error or f"exit {result.returncode}",
                )
        commands: list[RunResult] = []
        for command in self.commands:
            result = self._run(command)
            commands.append(result)
            if result.ok:
                log.critical("shutdown command accepted: %s (exit 0)", command)
                break
            log.error(
                "shutdown command %s failed: %s%s",
                command,
                result.error or f"exit {result.returncode}",
                f" ({result.output.strip()[:200]})" if result.output.strip() else "",
            )
        else:
            log.critical("no shutdown command succeeded: this computer is NOT shutting down")
        return ShutdownOutcome(False, tuple(hooks), tuple(commands))
