"""`powerbridge mains`: watch the mains-sense pin live."""

from __future__ import annotations

from typing import Any

from bridge.cli._common import add_command, not_available


def register(subparsers: Any) -> None:
    add_command(subparsers, "mains", "watch the mains-sense pin live", not_available("mains tools"))
