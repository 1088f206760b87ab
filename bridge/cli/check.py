"""`powerbridge check`: run health checks before leaving a site."""

from __future__ import annotations

from typing import Any

from bridge.cli._common import add_command, not_available


def register(subparsers: Any) -> None:
    add_command(
        subparsers,
        "check",
        "run health checks before leaving a site",
        not_available("health checks"),
    )
