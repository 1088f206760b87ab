"""The one place a paho-mqtt client is built from configuration.

Every part that talks MQTT gets its client here: the bridge's link and the shutdown
client's listener (both :class:`bridge.mqtt.link.StatusLink`), the short synchronous
sessions of the tools (:class:`bridge.mqtt.session.BrokerSession`: deployment checks,
``simulate``, the client's ``status``/``uninstall``, ``archive check``), the fleet
observer of ``watch``/``demo``, and the archive's persistent session.  Here: paho-mqtt
2.x with ``CallbackAPIVersion.VERSION2``, the configured protocol (3.1.1 or 5), a clean
or a persistent session, credentials, TLS, the reconnect backoff, the asynchronous
connect, and the words for a refused or failed connection.  Each caller
keeps what is its own: callbacks, last will and keepalive.

Reconnecting is paho's job (``reconnect_delay_set``: exponential backoff from
``mqtt.reconnect_min`` to ``mqtt.reconnect_max``); nothing here retries by hand.
"""

from __future__ import annotations

import socket
import ssl
from typing import cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from bridge.config.common import MqttConfig, TlsConfig
from bridge.errors import UsageError

AUTH_REFUSALS = frozenset({4, 5, 0x86, 0x87})
"""CONNACK codes for bad credentials or no authorisation (MQTT 3.1.1: 4, 5; MQTT 5: 0x86, 0x87)."""

_REFUSAL_WORDS = {4: "bad user name or password", 5: "not authorised"}
_REFUSAL_WORDS |= {0x86: _REFUSAL_WORDS[4], 0x87: _REFUSAL_WORDS[5]}


class TlsFilesError(UsageError):
    """The configured CA, certificate or key cannot be loaded."""


def new_client(
    protocol: str, *, client_id: str, persistent: bool = False, manual_ack: bool = False
) -> mqtt.Client:
    """A paho client for MQTT ``protocol`` ("3.1.1" or "5").

    A clean session by default.  ``persistent`` keeps the session on the broker across
    disconnects (3.1.1: ``clean_session=False``; 5: set at :func:`connect_async` by its
    ``session_expiry``); with ``manual_ack`` a QoS 1 message is acknowledged only when the
    caller says so (the archive: once the message is in its database).
    """
    v5 = protocol == "5"
    return mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not persistent,
        manual_ack=manual_ack,
    )


def configure_tls(client: mqtt.Client, tls: TlsConfig) -> None:
    """Switch TLS on as configured (no-op when disabled); raise :class:`TlsFilesError`."""
    if not tls.enabled:
        return
    try:
        client.tls_set(
            ca_certs=tls.ca_file,
            certfile=tls.cert_file,
            keyfile=tls.key_file,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise TlsFilesError(f"mqtt.tls: cannot load the TLS files: {exc}") from None
    if tls.insecure:
        client.tls_insecure_set(True)


def trust_ca(client: mqtt.Client, ca_file: str | None, *, check_hostname: bool = True) -> None:
    """TLS with the system's CAs, or ``ca_file``'s (the fleet observer's simpler TLS)."""
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = check_hostname
    client.tls_set_context(context)


def configured_client(
    config: MqttConfig,
    *,
    client_id: str,
    username: str | None,
    password: str | None,
    persistent: bool = False,
    manual_ack: bool = False,
) -> mqtt.Client:
    """:func:`new_client` with credentials, TLS and the reconnect backoff applied."""
    client = new_client(
        config.protocol, client_id=client_id, persistent=persistent, manual_ack=manual_ack
    )
    if username:
        client.username_pw_set(username, password)
    configure_tls(client, config.tls)
    set_reconnect_backoff(client, config.reconnect_min, config.reconnect_max)
    return client


def set_reconnect_backoff(client: mqtt.Client, first: float, most: float) -> None:
    """paho's exponential reconnect backoff, from ``first`` to ``most`` seconds, as configured.

    paho computes the delays in floats (sub-second values are honoured); its hints say int.
    """
    client.reconnect_delay_set(cast("int", first), cast("int", most))


def connect_async(
    client: mqtt.Client,
    host: str,
    port: int,
    *,
    keepalive: int,
    session_expiry: int = 0,
    receive_maximum: int | None = None,
) -> None:
    """Start connecting in the background; paho keeps retrying until the broker answers.

    By default MQTT 5 asks for a clean start and no session kept after a disconnect, the
    same as the clean session of 3.1.1: what must survive a reconnect is renewed in
    ``on_connect``.  A ``session_expiry`` (seconds) resumes the session and keeps it that
    long after a disconnect, queueing QoS 1 messages (a :func:`new_client` ``persistent``
    on 3.1.1); ``receive_maximum`` bounds the messages in flight towards the client.
    """
    if client.protocol == mqtt.MQTTv5:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = session_expiry
        if receive_maximum is not None:
            properties.ReceiveMaximum = receive_maximum
        client.connect_async(
            host, port, keepalive=keepalive, clean_start=session_expiry == 0, properties=properties
        )
    else:
        client.connect_async(host, port, keepalive=keepalive)
    client.loop_start()


def reason_text(reason: ReasonCode) -> str:
    """A refused connection in words ("bad user name or password", "not authorised", …)."""
    return _REFUSAL_WORDS.get(int(reason.value), str(reason))


def refusal(reason: ReasonCode) -> str:
    """Why the broker refused a connection, with the fix when it is about credentials."""
    text = f"connection refused: {reason}"
    if reason.value in AUTH_REFUSALS:
        text += " (check mqtt.username, mqtt.password_file or password_env, and the broker's ACL)"
    return text


def unreachable(host: str, port: int) -> str:
    """Why a connection failed (paho does not pass the cause on): a probe of name and port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return "connection failed (the port answers; TLS or protocol mismatch?)"
    except socket.gaierror as exc:
        return f"cannot resolve {host}: {exc.strerror or exc} (check mqtt.host)"
    except OSError as exc:
        return exc.strerror or str(exc)
