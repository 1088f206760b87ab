"""`powerbridge client`: the shutdown client for PCs (run, install, uninstall, status).

Nothing here imports Raspberry Pi libraries: a PC needs only ``pip install powerbridge``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.cli._common import add_command, add_config_option, add_group
from bridge.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from bridge.shutdown.service import Plan

SYSTEM_CHOICES = ("linux", "darwin", "windows")


# --------------------------------------------------------------------------- run


def _run(args: argparse.Namespace) -> int:
    from bridge.config import load_client_config
    from bridge.shutdown.app import run_client

    config = load_client_config(args.config)
    if args.log_file:
        import logging.handlers

        handler = logging.handlers.RotatingFileHandler(
            args.log_file, maxBytes=1_000_000, backupCount=3, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
    return run_client(config, source=args.config, dry_run=args.dry_run)


def _forget(args: argparse.Namespace) -> int:
    from bridge.config import load_client_config
    from bridge.shutdown.app import memory_file
    from bridge.shutdown.memory import ReplayMemory

    path = memory_file(load_client_config(args.config))
    try:
        found = ReplayMemory(path).forget()
    except OSError as exc:
        raise UsageError(f"cannot delete {path}: {exc.strerror}") from None
    print(f"{'deleted' if found else 'no replay memory at'} {path}; restart the client")
    return int(ExitCode.OK)


# --------------------------------------------------------------------------- install


def _system(args: argparse.Namespace) -> str:
    from bridge.shutdown.actions import current_system

    if args.system and not args.dry_run:
        raise UsageError("--system only previews another operating system: add --dry-run")
    return str(args.system or current_system())


def _require_admin(system: str) -> None:
    if system != "windows" and hasattr(os, "geteuid") and os.geteuid() != 0:
        raise UsageError(
            "installing a system service needs root: run it with sudo "
            "(or add --dry-run to see what it would do)"
        )


def _install(args: argparse.Namespace) -> int:
    from bridge.config import load_client_config
    from bridge.shutdown.app import load_signing_key
    from bridge.shutdown.service import install_plan

    system = _system(args)
    config_path: Path = args.config
    if not args.system:
        config = load_client_config(config_path)
        load_signing_key(config, str(config_path))
        config_path = config_path.resolve()
    python = args.python or sys.executable
    plan = install_plan(system, python=python, config_path=str(config_path))
    if _carry_out(plan, system, dry_run=args.dry_run):
        print("installed: the shutdown client starts at boot and is running now")
    return int(ExitCode.OK)


def _uninstall(args: argparse.Namespace) -> int:
    from bridge.shutdown.service import uninstall_plan

    system = _system(args)
    plan = uninstall_plan(system, config_path=str(args.config))
    if not _carry_out(plan, system, dry_run=args.dry_run):
        return int(ExitCode.OK)
    print("uninstalled: the shutdown client no longer starts at boot")
    if not args.system:
        _clear_broker(args.config)
    return int(ExitCode.OK)


def _carry_out(plan: Plan, system: str, *, dry_run: bool) -> bool:
    """Show the plan (``dry_run``: and stop there), or run it as an administrator."""
    from bridge.shutdown.service import execute

    if dry_run:
        sys.stdout.write(plan.describe())
        return False
    _require_admin(system)
    execute(plan)
    return True


def _clear_broker(path: Path) -> None:
    """Best effort: remove this PC's retained state and Home Assistant entities from the
    broker (the service is stopped, so nothing publishes them again)."""
    from bridge.config import load_client_config
    from bridge.errors import PowerbridgeError
    from bridge.shutdown.app import clear_retained, retained_topics

    try:
        config = load_client_config(path)
    except PowerbridgeError as exc:
        print(
            f"not cleared on the broker: cannot read {path} ({exc}); this PC's retained state "
            "and its Home Assistant entities stay there",
            file=sys.stderr,
        )
        return
    try:
        cleared = clear_retained(config)
    except PowerbridgeError as exc:
        topics = " ".join(retained_topics(config))
        print(
            f"not cleared on the broker: {exc}. This PC's retained state and its Home "
            "Assistant entities stay there: run `powerbridge client uninstall` again once the "
            f"broker is reachable, or publish an empty retained message to: {topics}",
            file=sys.stderr,
        )
        return
    print(
        f"cleared on the broker: this PC's retained state and its {len(cleared) - 2} "
        "Home Assistant discovery configs (empty retained messages)"
    )


# --------------------------------------------------------------------------- status


def _status(args: argparse.Namespace) -> int:
    from bridge.shutdown.actions import current_system
    from bridge.shutdown.service import run_step, status_argv

    system = current_system()
    code, output = run_step(status_argv(system))
    running = code == 0
    first = output.splitlines()[0] if output else ""
    print(f"service: {'running' if running else 'not running'}" + (f" ({first})" if first else ""))
    state = _broker_state(args.config)
    if state is not None:
        print(_describe_state(state))
    return int(ExitCode.OK if running else ExitCode.FAILURE)


def _broker_state(path: Path) -> dict[str, Any] | None:
    from bridge.config import load_client_config
    from bridge.errors import PowerbridgeError
    from bridge.shutdown.app import fetch_state

    try:
        config = load_client_config(path)
        status, state = fetch_state(config)
    except PowerbridgeError as exc:
        print(f"state: unavailable ({exc})")
        return None
    print(f"client: {status or 'never connected'} on the broker")
    if state is None:
        print("state: none published yet")
    return state


def _describe_state(state: dict[str, Any]) -> str:
    lines = [f"state: {state.get('state')} ({state.get('reason')})"]
    if state.get("seconds_left") is not None:
        lines.append(f"shutdown in: {state['seconds_left']:.0f} s (at {state.get('deadline')})")
    lines.append(f"armed: {'yes' if state.get('armed') else 'no'}")
    if state.get("error"):
        lines.append(f"error: {state['error']}")
    for device, info in (state.get("supplies") or {}).items():
        lines.append(f"bridge {device}: {json.dumps(info, sort_keys=True)}")
    if state.get("rejected"):
        lines.append(f"rejected messages: {state['rejected']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- registration


def register(subparsers: Any) -> None:
    sub = add_group(
        subparsers,
        "client",
        "the shutdown client for PCs (run, install, uninstall, status)",
        description=(
            "The shutdown client: watches the mains state of one or more bridges over MQTT and\n"
            "shuts this computer down cleanly after a sustained outage, never otherwise.\n"
            "Documentation: docs/shutdown-client.md"
        ),
    )

    run = add_command(
        sub,
        "run",
        "run in the foreground (what the installed service runs)",
        _run,
        description=(
            "Run the shutdown client in the foreground until SIGTERM or Ctrl-C.\n"
            "--dry-run logs 'would shut down' instead of shutting down."
        ),
    )
    add_config_option(run, client=True)
    run.set_defaults(service=True)  # logs at INFO without -v: its lines go to the journal
    run.add_argument("--dry-run", action="store_true", help="never shut down; log instead")
    run.add_argument("--log-file", type=Path, metavar="FILE", help="also log to FILE (rotated)")

    for name, handler, text in (
        ("install", _install, "install and start the boot-time service (needs root/admin)"),
        ("uninstall", _uninstall, "stop and remove the boot-time service"),
    ):
        cmd = add_command(
            sub,
            name,
            text,
            handler,
            description=(
                f"{text[0].upper()}{text[1:]}: a systemd unit (Linux), a launchd daemon (macOS)\n"
                "or a Task Scheduler task at boot (Windows).\n"
                "--dry-run prints exactly what would be written and run, and does nothing."
            ),
        )
        add_config_option(cmd, client=True)
        cmd.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
        cmd.add_argument(
            "--system",
            choices=SYSTEM_CHOICES,
            help="with --dry-run: preview the plan for another operating system",
        )
        if name == "install":
            cmd.add_argument(
                "--python",
                metavar="PATH",
                help="the Python interpreter the service runs (default: this one)",
            )

    forget = add_command(
        sub,
        "forget",
        "forget the last message accepted from each bridge (after reinstalling a bridge)",
        _forget,
        description=(
            "Delete this client's replay memory (client.memory_file): the last message it\n"
            "accepted from each bridge.  The client refuses any message older than that one;\n"
            "a bridge reinstalled with a fresh data_dir numbers its messages from 1 again and\n"
            "is refused until this is done.  Restart the client afterwards."
        ),
    )
    add_config_option(forget, client=True)

    status = add_command(
        sub,
        "status",
        "is the service running, and what does the client know (from the broker)",
        _status,
        description=(
            "Show whether the service runs, and the client's retained state from the broker:\n"
            "idle / counting / shutting down, seconds left, and each watched bridge.\n"
            "Exit 0 when the service is running, 1 otherwise."
        ),
    )
    add_config_option(status, client=True)
