"""`powerbridge meter`: list serial ports and probe power meters."""

from __future__ import annotations

from typing import Any

from bridge.cli._common import add_command, not_available


def register(subparsers: Any) -> None:
    add_command(
        subparsers,
        "meter",
        "list serial ports and probe power meters",
        not_available("meter tools"),
    )
