"""`powerbridge broker`: create broker credentials, certificates and ACL roles."""

from __future__ import annotations

from typing import Any

from bridge.cli._common import add_command, not_available


def register(subparsers: Any) -> None:
    add_command(
        subparsers,
        "broker",
        "create broker credentials, certificates and ACL roles",
        not_available("broker tooling"),
    )
