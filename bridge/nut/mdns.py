"""Advertising the NUT server as ``_nut._tcp`` (Home Assistant's ``nut`` integration finds it).

Registered by :func:`bridge.mqtt.mdns.register_service`, like the broker's ``_mqtt._tcp``;
this machine's address on its default route for a wildcard or loopback listener.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Final

from bridge.mqtt.mdns import Advertisement, advertised_addresses, register_service

SERVICE_TYPE: Final = "_nut._tcp.local."


def advertise_nut(
    port: int,
    listen: Sequence[str],
    *,
    addresses: Sequence[str] | None = None,
    interfaces: Sequence[str] | None = None,
    instance: str | None = None,
) -> Advertisement:
    """Announce ``powerbridge NUT on <host>._nut._tcp.local.``; raise ``OSError`` if impossible."""
    chosen: list[str] = list(addresses) if addresses else []
    if not chosen:
        for host in listen:
            chosen += [a for a in advertised_addresses(host) if a not in chosen]
    if not chosen:
        raise OSError("no address to advertise for the NUT server")
    short_host = socket.gethostname().split(".")[0] or "powerbridge"
    return register_service(
        SERVICE_TYPE,
        instance or f"powerbridge NUT on {short_host}",
        port,
        {"product": "powerbridge"},
        chosen,
        interfaces=interfaces,
        what="the NUT server",
    )
