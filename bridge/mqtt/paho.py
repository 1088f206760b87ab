"""The one place a paho-mqtt client is built from configuration.

Every part that talks MQTT with an :class:`~bridge.config.common.MqttConfig` (the
bridge's publisher, the shutdown client's listener and status query, the deployment
checks) gets its client here: paho-mqtt 2.x with ``CallbackAPIVersion.VERSION2``,
the configured protocol (3.1.1 or 5), credentials and TLS.  Each caller keeps what
is its own: callbacks, last will, keepalive and reconnect policy.
"""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from bridge.config.common import MqttConfig, TlsConfig
from bridge.errors import UsageError

AUTH_REFUSALS = frozenset({4, 5, 0x86, 0x87})
"""CONNACK codes for bad credentials or no authorisation (MQTT 3.1.1: 4, 5; MQTT 5: 0x86, 0x87)."""


class TlsFilesError(UsageError):
    """The configured CA, certificate or key cannot be loaded."""


def new_client(config: MqttConfig, *, client_id: str) -> mqtt.Client:
    """A paho client for ``config.protocol`` (MQTT 5 gets a clean start, 3.1.1 a clean session)."""
    v5 = config.protocol == "5"
    return mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else True,
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


def configured_client(
    config: MqttConfig, *, client_id: str, username: str | None, password: str | None
) -> mqtt.Client:
    """:func:`new_client` with credentials and TLS applied."""
    client = new_client(config, client_id=client_id)
    if username:
        client.username_pw_set(username, password)
    configure_tls(client, config.tls)
    return client


def refusal(reason: ReasonCode) -> str:
    """Why the broker refused a connection, with the fix when it is about credentials."""
    text = f"connection refused: {reason}"
    if reason.value in AUTH_REFUSALS:
        text += " (check mqtt.username, mqtt.password_file or password_env, and the broker's ACL)"
    return text
