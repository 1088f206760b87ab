"""Advertising the NUT server as ``_nut._tcp`` (Home Assistant's ``nut`` integration finds it).

The same approach as :func:`bridge.mqtt.mdns.advertise_broker`: zeroconf imported lazily,
IPv4, this machine's address on its default route for a wildcard or loopback listener.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import Final

from bridge.mqtt.mdns import Advertisement, advertised_addresses

log = logging.getLogger("bridge.nut.mdns")

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
    from zeroconf import InterfaceChoice, IPVersion, ServiceInfo, Zeroconf

    chosen: list[str] = list(addresses) if addresses else []
    if not chosen:
        for host in listen:
            chosen += [a for a in advertised_addresses(host) if a not in chosen]
    if not chosen:
        raise OSError("no address to advertise for the NUT server")
    short_host = socket.gethostname().split(".")[0] or "powerbridge"
    info = ServiceInfo(
        SERVICE_TYPE,
        f"{instance or f'powerbridge NUT on {short_host}'}.{SERVICE_TYPE}",
        port=port,
        properties={"product": "powerbridge", "txtvers": "1"},
        server=f"{short_host}.local.",
        parsed_addresses=chosen,
    )
    zc = Zeroconf(
        interfaces=list(interfaces) if interfaces else InterfaceChoice.All,
        ip_version=IPVersion.V4Only,
    )
    try:
        zc.register_service(info, allow_name_change=True)
    except Exception:
        zc.close()
        raise
    log.info("advertising the NUT server %s:%d as %s", chosen[0], port, info.name)
    return Advertisement(zc, info)
