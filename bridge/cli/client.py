"""`powerbridge client`: the shutdown client for PCs (run, install, status)."""

from __future__ import annotations

from typing import Any

from bridge.cli._common import add_command, not_available


def register(subparsers: Any) -> None:
    add_command(
        subparsers,
        "client",
        "the shutdown client for PCs (run, install, status)",
        not_available("the shutdown client"),
    )
