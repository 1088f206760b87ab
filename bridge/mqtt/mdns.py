"""Finding the broker by mDNS/DNS-SD (``_mqtt._tcp``), and advertising it.

A bridge with ``mqtt.advertise: true`` announces the broker it uses as
``powerbridge <device_id>._mqtt._tcp.local.`` with TXT ``device=<device_id>``,
``tls=0|1``, ``product=powerbridge``, ``txtvers=1``.  A shutdown client with
``mqtt.host: auto`` browses for ``_mqtt._tcp`` and prefers a broker advertised by
one of the bridges it watches (see :func:`choose_broker`).  The zeroconf library
is imported lazily: nothing multicasts unless one of these functions is called.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

log = logging.getLogger("bridge.mqtt.mdns")

SERVICE_TYPE: Final = "_mqtt._tcp.local."
PRODUCT: Final = "powerbridge"


@dataclass(frozen=True, slots=True)
class FoundBroker:
    """One ``_mqtt._tcp`` service seen on the network."""

    name: str
    """Service instance name, e.g. ``powerbridge rack-a._mqtt._tcp.local.``."""
    addresses: tuple[str, ...]
    port: int
    server: str | None = None
    """The advertiser's mDNS host name (``pi.local``), for TLS host name checks."""
    device_id: str | None = None
    """TXT ``device``: the bridge that advertised it (``None`` for other MQTT brokers)."""
    tls: bool = False
    product: str | None = None

    @property
    def host(self) -> str:
        """What to connect to: the first IPv4 address, else any address, else the host name."""
        for address in self.addresses:
            if ":" not in address:
                return address
        if self.addresses:
            return self.addresses[0]
        return (self.server or "").rstrip(".")

    def describe(self) -> str:
        who = f"bridge {self.device_id}" if self.device_id else "a broker"
        return f"{who} at {self.host}:{self.port}{' (TLS)' if self.tls else ''} [{self.name}]"


def _text(properties: dict[bytes, bytes | None], key: str) -> str | None:
    value = properties.get(key.encode())
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _found(info: Any) -> FoundBroker | None:
    if info is None or not info.port:
        return None
    properties: dict[bytes, bytes | None] = dict(info.properties or {})
    device = _text(properties, "device")
    return FoundBroker(
        name=str(info.name),
        addresses=tuple(str(a) for a in info.parsed_scoped_addresses()),
        port=int(info.port),
        server=str(info.server) if info.server else None,
        device_id=device or None,
        tls=_text(properties, "tls") in ("1", "true", "yes"),
        product=_text(properties, "product"),
    )


def browse_broker(
    timeout: float = 3.0, *, interfaces: Sequence[str] | None = None
) -> list[FoundBroker]:
    """Every ``_mqtt._tcp`` service that answers within ``timeout`` seconds."""
    from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, ServiceListener, Zeroconf

    names: list[str] = []
    seen = threading.Event()

    class _Collect(ServiceListener):
        def add_service(self, _zc: Zeroconf, _type: str, name: str) -> None:
            if name not in names:
                names.append(name)
            seen.set()

        def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            self.add_service(zc, type_, name)

        def remove_service(self, _zc: Zeroconf, _type: str, _name: str) -> None:
            return

    zc = Zeroconf(
        interfaces=list(interfaces) if interfaces else InterfaceChoice.All,
        ip_version=IPVersion.V4Only if interfaces else IPVersion.All,
    )
    try:
        browser = ServiceBrowser(zc, SERVICE_TYPE, _Collect())
        seen.wait(timeout)
        # Give other answers to the same query a moment to arrive.
        threading.Event().wait(min(0.5, timeout))
        browser.cancel()
        found: list[FoundBroker] = []
        for name in names:
            broker = _found(zc.get_service_info(SERVICE_TYPE, name, timeout=1500))
            if broker is not None:
                found.append(broker)
        return found
    finally:
        zc.close()


def choose_broker(
    found: Sequence[FoundBroker], *, bridges: Sequence[str] = (), tls: bool | None = None
) -> FoundBroker | None:
    """The broker to use: advertised by a watched bridge, then by any powerbridge, then any.

    With ``tls`` given, a service with the same TLS setting is preferred.  The order is
    stable (by name) so that two clients on one network make the same choice.
    """
    if not found:
        return None

    def rank(broker: FoundBroker) -> tuple[int, int, int, str]:
        watched = broker.device_id in bridges if broker.device_id else False
        ours = broker.product == PRODUCT or broker.device_id is not None
        tls_match = tls is None or broker.tls == tls
        return (0 if watched else 1, 0 if ours else 1, 0 if tls_match else 1, broker.name)

    return min(found, key=rank)


# --------------------------------------------------------------------------- advertising


class Advertisement:
    """A registered service; :meth:`close` withdraws it (a goodbye packet) and stops zeroconf."""

    def __init__(self, zc: Any, info: Any) -> None:
        self._zc = zc
        self._info = info
        self.name: str = str(info.name)
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._zc.unregister_service(self._info)
        finally:
            self._zc.close()

    def __enter__(self) -> Advertisement:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _is_local(host: str) -> bool:
    if host in ("localhost", "", "0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _primary_address() -> str | None:
    """This machine's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only selects a route
            return str(probe.getsockname()[0])
        except OSError:
            return None


def advertised_addresses(host: str) -> list[str]:
    """The IPv4 addresses to advertise for a broker the bridge reaches at ``host``."""
    if _is_local(host):
        primary = _primary_address()
        return [primary] if primary else []
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


SHIPPED_NETWORK_PORT: Final = 8883
"""The shipped broker's only network listener (TLS); its 1883 listener is loopback only."""


def advertised_endpoint(host: str, port: int, tls: bool) -> tuple[str, int, bool]:
    """What a bridge should advertise for the broker it reaches at ``host:port``.

    A bridge that talks to the broker on its own Pi (loopback, port 1883 on the
    shipped configuration) advertises the broker's network listener instead:
    port 8883 with TLS.  Any other broker is advertised as the bridge reaches it.
    """
    if _is_local(host) and not tls:
        return host, SHIPPED_NETWORK_PORT, True
    return host, port, tls


def advertise_broker(
    host: str,
    port: int,
    device_id: str,
    tls: bool,
    *,
    addresses: Sequence[str] | None = None,
    interfaces: Sequence[str] | None = None,
) -> Advertisement:
    """Announce the broker at ``host:port`` as ``powerbridge <device_id>._mqtt._tcp.local.``.

    ``host`` is the broker as the bridge reaches it; a loopback host (the broker on
    this Pi) is advertised with this machine's own address.  Blocks for about a second
    while the name is probed; call it at start-up or from a worker thread.  Raises
    ``OSError`` when no address can be found or multicast is unavailable.
    """
    chosen = list(addresses) if addresses else advertised_addresses(host)
    if not chosen:
        raise OSError(f"no address to advertise for broker host {host!r}")
    properties = {"device": device_id, "tls": "1" if tls else "0", "product": PRODUCT}
    return register_service(
        SERVICE_TYPE,
        f"{PRODUCT} {device_id}",
        port,
        properties,
        chosen,
        interfaces=interfaces,
        what="the broker",
    )


def register_service(
    service_type: str,
    instance: str,
    port: int,
    properties: dict[str, str],
    addresses: Sequence[str],
    *,
    interfaces: Sequence[str] | None = None,
    what: str,
) -> Advertisement:
    """Announce ``<instance>.<service_type>`` at ``addresses`` (IPv4) with TXT ``properties``.

    The one place a DNS-SD record is registered (the broker's ``_mqtt._tcp``, the NUT
    server's ``_nut._tcp``): zeroconf imported lazily, ``txtvers=1`` added, the name
    changed if it is taken.  Blocks for about a second while the name is probed.
    """
    from zeroconf import InterfaceChoice, IPVersion, ServiceInfo, Zeroconf

    short_host = socket.gethostname().split(".")[0] or PRODUCT
    info = ServiceInfo(
        service_type,
        f"{instance}.{service_type}",
        port=port,
        properties={**properties, "txtvers": "1"},
        server=f"{short_host}.local.",
        parsed_addresses=list(addresses),
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
    log.info("advertising %s %s:%d as %s", what, addresses[0], port, info.name)
    return Advertisement(zc, info)
