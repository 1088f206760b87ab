"""`powerbridge demo`: see the whole system work: broker, bridge, client, scenario."""

from __future__ import annotations

from typing import Any

from bridge.cli._common import add_command, not_available


def register(subparsers: Any) -> None:
    add_command(
        subparsers,
        "demo",
        "see the whole system work: broker, bridge, client, scenario",
        not_available("the demo"),
    )
