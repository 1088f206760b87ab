"""Listeners of the shipped configuration: no anonymous access anywhere, TLS that verifies."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from bridge.broker import tls
from bridge.broker.runner import BrokerSetup, Credentials, Mosquitto, prepare
from tests.helpers.mqtt import TestClient

pytestmark = pytest.mark.integration

NOT_AUTHORIZED = {5, 135}
"""CONNACK "not authorized" (MQTT 3.1.1 code 5; paho reports it as reason code 135)."""


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    setup = BrokerSetup(bridges=("alpha",), clients=("office",), tls=True)
    broker = prepare(Path(tmp_path_factory.mktemp("tls-broker")), setup)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


def context(cafile: Path | None) -> ssl.SSLContext:
    """What a client does: verify the chain and the host name (strictly)."""
    ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    return ctx


def tls_client(broker: Mosquitto, creds: Credentials | None, ctx: ssl.SSLContext) -> TestClient:
    client = TestClient(broker, creds, port=broker.tls_port)
    client.paho.tls_set_context(ctx)
    return client


def attempt(client: TestClient, host: str, port: int | None, timeout: float = 3.0) -> int | None:
    """Try to connect; the CONNACK code, or ``None`` if the connection dropped without one.

    The network loop is driven here (no thread), so a refusal is seen at once.
    """
    dropped = threading.Event()
    client.paho.on_disconnect = lambda *_args: dropped.set()
    client.paho.connect(host, port or 0)
    deadline = time.monotonic() + timeout
    try:
        while client.connect_rc is None and not dropped.is_set():
            assert time.monotonic() < deadline, "neither accepted, refused nor dropped"
            if client.paho.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                break
    finally:
        client.paho.disconnect()
    return client.connect_rc


def refused(client: TestClient, broker: Mosquitto, port: int | None) -> int | None:
    """The broker's refusal code (fails if the broker accepted)."""
    code = attempt(client, broker.host, port)
    assert code != 0, "the broker accepted the connection"
    return code


def test_anonymous_refused_on_the_loopback_listener(tls_broker: Mosquitto) -> None:
    client = TestClient(tls_broker, None)
    assert refused(client, tls_broker, tls_broker.port) in NOT_AUTHORIZED


def test_anonymous_refused_on_the_tls_listener(tls_broker: Mosquitto) -> None:
    # The TLS handshake succeeds (right CA): the refusal comes from the broker's auth.
    client = tls_client(tls_broker, None, context(tls_broker.ca_file))
    assert refused(client, tls_broker, tls_broker.tls_port) in NOT_AUTHORIZED


def test_wrong_password_refused_on_the_tls_listener(tls_broker: Mosquitto) -> None:
    wrong = Credentials(tls_broker.client("office").username, "not-the-password")
    client = tls_client(tls_broker, wrong, context(tls_broker.ca_file))
    assert refused(client, tls_broker, tls_broker.tls_port) in NOT_AUTHORIZED


def test_client_with_the_generated_ca_connects_and_works(tls_broker: Mosquitto) -> None:
    sub = tls_client(tls_broker, tls_broker.client("office"), context(tls_broker.ca_file))
    pub = tls_client(tls_broker, tls_broker.bridge("alpha"), context(tls_broker.ca_file))
    sub.connect()
    pub.connect()
    try:
        sub.subscribe("powerbridge/alpha/mains")
        pub.publish("powerbridge/alpha/mains", b'{"v":1}')
        assert sub.expect("powerbridge/alpha/mains").payload == b'{"v":1}'
        sock = sub.paho.socket()
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        sub.disconnect()
        pub.disconnect()


def test_client_without_the_ca_fails_verification(tls_broker: Mosquitto) -> None:
    client = tls_client(tls_broker, tls_broker.client("office"), context(None))
    with pytest.raises(ssl.SSLCertVerificationError):
        client.connect(timeout=3)


def test_client_trusting_another_ca_fails_verification(
    tls_broker: Mosquitto, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.crt"
    other.write_bytes(tls.make_ca("someone else's CA").cert_pem)
    client = tls_client(tls_broker, tls_broker.client("office"), context(other))
    with pytest.raises(ssl.SSLCertVerificationError):
        client.connect(timeout=3)


def test_wrong_host_name_fails_verification(tls_broker: Mosquitto) -> None:
    assert tls_broker.tls_port is not None
    ctx = context(tls_broker.ca_file)
    with (
        socket.create_connection((tls_broker.host, tls_broker.tls_port), timeout=3) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match=r"[Hh]ostname"),
    ):
        ctx.wrap_socket(raw, server_hostname="not-the-broker.example")
    with (
        socket.create_connection((tls_broker.host, tls_broker.tls_port), timeout=3) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as wrapped,
    ):
        assert wrapped.getpeercert() is not None


def test_plain_mqtt_is_not_spoken_on_the_tls_port(tls_broker: Mosquitto) -> None:
    client = TestClient(tls_broker, tls_broker.client("office"))
    assert attempt(client, tls_broker.host, tls_broker.tls_port) is None  # dropped, no CONNACK
