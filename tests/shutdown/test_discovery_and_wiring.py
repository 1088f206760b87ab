"""mDNS discovery (real zeroconf on loopback), broker resolution, and a PC-only import path."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid

import pytest

from bridge.config import parse_client_config
from bridge.errors import ConfigError
from bridge.mqtt.mdns import (
    FoundBroker,
    advertise_broker,
    advertised_addresses,
    advertised_endpoint,
    browse_broker,
    choose_broker,
)
from bridge.shutdown.app import load_signing_key, resolve_broker

LOOPBACK = ["127.0.0.1"]


def found(
    name: str, device: str | None = None, *, tls: bool = False, port: int = 1883
) -> FoundBroker:
    return FoundBroker(
        name=f"{name}._mqtt._tcp.local.",
        addresses=("192.0.2.10",),
        port=port,
        server="pi.local.",
        device_id=device,
        tls=tls,
        product="powerbridge" if device else None,
    )


def test_choose_prefers_a_watched_bridge_then_any_powerbridge_then_tls_match() -> None:
    other = found("mosquitto at home")
    ours = found("powerbridge rack-b", "rack-b")
    watched = found("powerbridge rack-a", "rack-a")
    assert choose_broker([other, ours, watched], bridges=["rack-a"]) == watched
    assert choose_broker([other, ours], bridges=["rack-a"]) == ours
    assert choose_broker([other], bridges=["rack-a"]) == other
    assert choose_broker([], bridges=["rack-a"]) is None
    plain = found("powerbridge rack-a", "rack-a")
    secure = found("powerbridge rack-a (2)", "rack-a", tls=True, port=8883)
    assert choose_broker([plain, secure], bridges=["rack-a"], tls=True) == secure
    assert choose_broker([secure, plain], bridges=["rack-a"], tls=False) == plain


def test_found_broker_host_prefers_ipv4() -> None:
    broker = FoundBroker("x", ("fe80::1%eth0", "192.0.2.7"), 1883)
    assert broker.host == "192.0.2.7"
    assert FoundBroker("x", (), 1883, server="pi.local.").host == "pi.local"


def test_advertised_addresses() -> None:
    assert advertised_addresses("192.0.2.44") == ["192.0.2.44"]
    local = advertised_addresses("localhost")
    assert local == advertised_addresses("127.0.0.1")
    assert all(not a.startswith("127.") for a in local)


def test_advertised_endpoint_points_clients_at_the_network_listener() -> None:
    assert advertised_endpoint("localhost", 1883, False) == ("localhost", 8883, True)
    assert advertised_endpoint("127.0.0.1", 8883, True) == ("127.0.0.1", 8883, True)
    assert advertised_endpoint("broker.lan", 1883, False) == ("broker.lan", 1883, False)


def test_advertise_and_browse_on_loopback() -> None:
    # A device id of this run only: another run on the same host (or a bridge on the
    # network) advertising "rack-a" would make mDNS rename ours "rack-a-2".
    device_id = f"rack-{uuid.uuid4().hex[:8]}"
    with advertise_broker(
        "127.0.0.1", 18883, device_id, True, addresses=LOOPBACK, interfaces=LOOPBACK
    ) as ad:
        assert ad.name == f"powerbridge {device_id}._mqtt._tcp.local."
        brokers = browse_broker(1.0, interfaces=LOOPBACK)
    (broker,) = [b for b in brokers if b.device_id == device_id]
    assert broker.port == 18883
    assert broker.tls is True
    assert broker.host == "127.0.0.1"
    assert broker.product == "powerbridge"


def config(host: str, *, extra: str = "") -> object:
    return parse_client_config(f"bridges: [rack-a]\nmqtt:\n  host: {host}\n{extra}")


def test_resolve_static_host() -> None:
    assert resolve_broker(config("broker.lan")) == ("broker.lan", 1883)  # type: ignore[arg-type]
    tls = config("broker.lan", extra="  tls:\n    enabled: true\n")
    assert resolve_broker(tls) == ("broker.lan", 8883)  # type: ignore[arg-type]


def test_resolve_auto_uses_the_watched_bridges_broker(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[float] = []

    def browse(timeout: float) -> list[FoundBroker]:
        calls.append(timeout)
        return [] if len(calls) == 1 else [found("x"), found("powerbridge rack-a", "rack-a")]

    with caplog.at_level("INFO"):
        address = resolve_broker(config("auto"), browse=browse, retry_max=0.01)  # type: ignore[arg-type]
    assert address == ("192.0.2.10", 1883)
    assert len(calls) == 2
    assert "using the broker found by mDNS: bridge rack-a" in caplog.text
    assert "no broker answered" in caplog.text


def test_resolve_auto_with_tls_connects_by_host_name() -> None:
    cfg = config("auto", extra="  tls:\n    enabled: true\n")
    address = resolve_broker(
        cfg,  # type: ignore[arg-type]
        browse=lambda _t: [found("powerbridge rack-a", "rack-a", tls=True, port=8883)],
    )
    assert address == ("pi.local", 8883)


def test_resolve_auto_gives_up_when_stopped() -> None:
    stop = threading.Event()

    def browse(_timeout: float) -> list[FoundBroker]:
        stop.set()
        return []

    assert resolve_broker(config("auto"), browse=browse, stop=stop) is None  # type: ignore[arg-type]


def test_signing_key_problems_are_config_errors(tmp_path: object) -> None:
    from pathlib import Path

    short = Path(str(tmp_path)) / "key"
    short.write_bytes(b"short")
    cfg = parse_client_config(f"bridges: [a]\nsigning:\n  key_file: {short}\n")
    with pytest.raises(ConfigError, match=r"signing\.key_file"):
        load_signing_key(cfg)
    assert load_signing_key(parse_client_config("bridges: [a]\n")) is None


def test_the_client_path_imports_no_raspberry_pi_library() -> None:
    """`powerbridge client run` on a PC: gpiozero/serial must not even be imported."""
    code = (
        "import sys\n"
        "from bridge.cli import build_parser\n"
        "build_parser().parse_args(['client', 'run', '--help'][:2])\n"
        "import bridge.shutdown.app, bridge.shutdown.service, bridge.cli.client\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('gpiozero', 'serial', 'lgpio', 'RPi', 'minimalmodbus'))\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
