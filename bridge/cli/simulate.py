"""`powerbridge simulate`: drive a simulation-mode bridge (cut or restore its mains)."""

from __future__ import annotations

from typing import Any

from bridge.cli._common import add_command, not_available


def register(subparsers: Any) -> None:
    add_command(
        subparsers,
        "simulate",
        "drive a simulation-mode bridge (cut or restore its mains)",
        not_available("simulation commands"),
    )
