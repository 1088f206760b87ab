"""`powerbridge run`: run the bridge daemon (meter, mains, health → MQTT)."""

from __future__ import annotations

from typing import Any

from bridge.cli._common import add_command, not_available


def register(subparsers: Any) -> None:
    add_command(
        subparsers,
        "run",
        "run the bridge daemon (meter, mains, health → MQTT)",
        not_available("the bridge daemon"),
    )
