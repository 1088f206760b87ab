"""`powerbridge deployment`: record and manage this bridge's deployment (start/stop/status)."""

from __future__ import annotations

from typing import Any

from bridge.cli._common import add_command, not_available


def register(subparsers: Any) -> None:
    add_command(
        subparsers,
        "deployment",
        "record and manage this bridge's deployment (start/stop/status)",
        not_available("deployment management"),
    )
