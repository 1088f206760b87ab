"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.errors import ExitCode, NotAvailableError

DEFAULT_BRIDGE_CONFIG = Path("/etc/powerbridge/bridge.yaml")
DEFAULT_CLIENT_CONFIG = Path(
    r"C:\ProgramData\powerbridge\client.yaml"
    if sys.platform == "win32"
    else "/etc/powerbridge/client.yaml"
)
"""Where the installed shutdown client's configuration lives."""

Subparsers = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]


def add_command(
    subparsers: Any, name: str, help_text: str, handler: Handler, description: str | None = None
) -> argparse.ArgumentParser:
    """Add a sub-command whose ``--help`` keeps the description's line breaks."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=handler)
    return parser


def add_group(subparsers: Any, name: str, help_text: str, description: str | None = None) -> Any:
    """Add a command made of actions; returns the subparsers to add them to.

    The chosen action is ``args.<name>_command``; without one the command prints its
    help on standard error and exits with the usage code.
    """
    parser = add_command(subparsers, name, help_text, _print_help, description)
    parser.set_defaults(_parser=parser)
    return parser.add_subparsers(dest=f"{name}_command", metavar="ACTION")


def _print_help(args: argparse.Namespace) -> int:
    args._parser.print_help(sys.stderr)
    return int(ExitCode.USAGE)


def add_config_option(parser: argparse.ArgumentParser, *, client: bool = False) -> None:
    """``-c/--config FILE``, by default the installed bridge's (or shutdown client's) file."""
    if client:
        config_option(parser, DEFAULT_CLIENT_CONFIG, "shutdown client configuration")
    else:
        config_option(parser, DEFAULT_BRIDGE_CONFIG, "configuration file")


def config_option(parser: argparse.ArgumentParser, default: Path, what: str) -> None:
    """``-c/--config FILE`` for a configuration file of its own (``what``, ``default``)."""
    file_option(parser, "-c", "--config", doc=f"{what} (default {default})", default=default)


def file_option(parser: argparse.ArgumentParser, *flags: str, doc: str, **more: Any) -> None:
    """An option whose value is a file: a ``Path``, shown as ``FILE`` in the help."""
    parser.add_argument(*flags, type=Path, metavar="FILE", help=doc, **more)


def not_available(feature: str) -> Handler:
    """A handler for a command that this release does not have yet (exit 2, no pretence)."""

    def handler(_args: argparse.Namespace) -> int:
        raise NotAvailableError(f"{feature} is not available in this release yet")

    return handler
