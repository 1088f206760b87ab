"""The server is advertised as ``_nut._tcp`` (what Home Assistant's ``nut`` integration browses)."""

from __future__ import annotations

import time
import uuid

import pytest

from bridge.nut.mdns import SERVICE_TYPE, advertise_nut

LOOPBACK = ["127.0.0.1"]


@pytest.mark.realtime
def test_advertised_as_nut_tcp_on_its_port() -> None:
    from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf

    instance = f"powerbridge NUT test-{uuid.uuid4().hex[:8]}"
    seen: list[str] = []

    class Listener(ServiceListener):
        def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            seen.append(name)

        def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            del zc, type_, name

        def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            del zc, type_, name

    with advertise_nut(13493, LOOPBACK, addresses=LOOPBACK, interfaces=LOOPBACK, instance=instance):
        zc = Zeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
        try:
            ServiceBrowser(zc, SERVICE_TYPE, Listener())
            deadline = time.monotonic() + 5
            name = f"{instance}.{SERVICE_TYPE}"
            while name not in seen and time.monotonic() < deadline:
                time.sleep(0.05)
            info = zc.get_service_info(SERVICE_TYPE, name, timeout=3000)
        finally:
            zc.close()
    assert name in seen
    assert info is not None
    assert info.port == 13493
    assert info.parsed_addresses() == ["127.0.0.1"]
    assert info.properties[b"product"] == b"powerbridge"
