"""The ``powerbridge`` command line: argument parsing, then one module per command group.

This module is the boundary where errors become messages and exit codes:
``0`` ok, ``1`` runtime failure, ``2`` usage or configuration error.  No command
shows a traceback unless run with ``-vv``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import import_module

from bridge import __version__
from bridge.errors import ConfigError, ExitCode, PowerbridgeError
from bridge.log import setup_logging
from bridge.stopsignals import enable_stack_dumps

log = logging.getLogger("bridge.cli")

# Each command group lives in bridge/cli/<module>.py and exposes ``register(subparsers)``.
COMMAND_MODULES = (
    "run",
    "check",
    "deployment",
    "meter",
    "mains",
    "simulate",
    "client",
    "nut",  # the NUT server facade (docs/nut.md)
    "broker",
    "config_cmd",
    "demo",
    "watch",
    "archive",
    "version",
)

EPILOG = """\
exit codes:
  0  success (for checks: everything healthy)
  1  runtime failure (a device or the broker did not answer, a check failed)
  2  usage or configuration error (the message names the file, line and key)

Run `powerbridge COMMAND --help` for each command. Documentation: docs/cli.md
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="powerbridge",
        description=(
            "Power-monitoring bridge: reads a power meter and a mains-sense pin, publishes them "
            "to MQTT with Home Assistant discovery, and shuts PCs down safely after a sustained "
            "outage."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log as text (default) or as JSON lines (for journald/Loki)",
    )
    parser.add_argument("--version", action="version", version=f"powerbridge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in COMMAND_MODULES:
        import_module(f"bridge.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``powerbridge`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # The long-running commands (`run`, `client run`) log their normal lines at INFO: a
    # service's journal shows what it does; the other commands print and log warnings only.
    service = bool(getattr(args, "service", False))
    setup_logging(args.verbose + int(service), args.log_format)
    if service:
        enable_stack_dumps()  # `kill -USR1 PID` shows where a service is waiting
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return int(ExitCode.USAGE)
    try:
        return int(func(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return int(exc.exit_code)
    except PowerbridgeError as exc:
        print(f"powerbridge: {exc}", file=sys.stderr)
        if args.verbose >= 2:
            log.exception("details")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
