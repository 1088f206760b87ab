"""`powerbridge watch`: live terminal view of every bridge and client on a broker."""

from __future__ import annotations

from typing import Any

from bridge.cli._common import add_command, not_available


def register(subparsers: Any) -> None:
    add_command(
        subparsers,
        "watch",
        "live terminal view of every bridge and client on a broker",
        not_available("watch"),
    )
