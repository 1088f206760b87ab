"""Sections shared by the bridge's and the shutdown client's configuration."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bridge.config import types as t
from bridge.config._schema import section, setting
from bridge.errors import ConfigError, ConfigProblem


@dataclass(frozen=True, slots=True)
class TlsConfig:
    enabled: bool = setting(False, t.boolean, "Connect with TLS (port 8883 on the shipped broker).")
    ca_file: str | None = setting(
        None, t.optional(t.path), "CA certificate that signed the broker's certificate."
    )
    cert_file: str | None = setting(
        None, t.optional(t.path), "Client certificate, for brokers that require one."
    )
    key_file: str | None = setting(None, t.optional(t.path), "Private key of cert_file.")
    insecure: bool = setting(
        False, t.boolean, "Skip host name verification (testing only; never in production)."
    )


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    enabled: bool = setting(True, t.boolean, "Publish Home Assistant MQTT discovery messages.")
    prefix: str = setting("homeassistant", t.topic_level, "Home Assistant's discovery prefix.")
    device_based: bool = setting(
        False,
        t.boolean,
        "One device-based discovery message instead of one per entity (Home Assistant ≥ 2024.11).",
    )


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str = setting(
        "localhost",
        t.text(1, 253),
        "Broker host name or address; `auto` finds it by mDNS (`_mqtt._tcp`).",
    )
    port: int | None = setting(
        None, t.optional(t.integer(1, 65535)), "Broker port; default 1883, or 8883 with TLS."
    )
    protocol: str = setting("3.1.1", t.one_of("3.1.1", "5"), "MQTT protocol version.")
    client_id: str | None = setting(
        None, t.optional(t.text(1, 128)), "MQTT client id; default derived from the device id."
    )
    username: str | None = setting(
        None, t.optional(t.text(1, 128)), "User name; default `bridge-<device id>` / `client-<id>`."
    )
    password_file: str | None = setting(
        None, t.optional(t.path), "File holding the password (mode 0600).", secret=True
    )
    password_env: str | None = setting(
        None, t.optional(t.env_name), "Environment variable holding the password.", secret=True
    )
    keepalive: float = setting(
        30.0, t.duration(5, 3600), "Keepalive; the broker declares us offline after 1.5× this."
    )
    base_topic: str = setting("powerbridge", t.topic_level, "Root of all powerbridge topics.")
    max_packet_size: int = setting(
        1_048_576,
        t.integer(4096, 268_435_455),
        "The broker's max_packet_size (bytes; the shipped broker's): no message is made larger.",
    )
    reconnect_min: float = setting(1.0, t.duration(0.1, 60), "First reconnect delay.")
    reconnect_max: float = setting(
        60.0, t.duration(1, 3600), "Longest reconnect delay (exponential backoff)."
    )
    advertise: bool = setting(
        False,
        t.boolean,
        "Bridge only: announce the broker by mDNS (`_mqtt._tcp`, TXT `device=<id>`) so that "
        "shutdown clients with `host: auto` find it.",
    )
    tls: TlsConfig = section(TlsConfig, "TLS settings.")
    discovery: DiscoveryConfig = section(DiscoveryConfig, "Home Assistant discovery.")

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls.enabled else 1883

    def problems(self) -> list[tuple[str, str]]:
        """Cross-field problems of this section, as ``(dotted.key, message)`` pairs."""
        from bridge.mqtt.contract import topic_roots_overlap

        problems: list[tuple[str, str]] = []
        if self.password_file and self.password_env:
            problems.append(("mqtt.password_env", "set password_file or password_env, not both"))
        overlap = topic_roots_overlap(self.base_topic, self.discovery.prefix)
        if overlap:
            problems.append(("mqtt.discovery.prefix", overlap))
        return problems

    def password(self) -> str | None:
        """Read the password from its file or environment variable (never logged)."""
        return read_secret(self.password_file, self.password_env, "mqtt")


def read_secret(file: str | None, env: str | None, what: str) -> str | None:
    """Return a secret from a file (first line, stripped) or an environment variable."""
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            problem = "is empty" if isinstance(exc, IndexError) else f"cannot be read ({exc})"
            raise ConfigError(
                [ConfigProblem(file, None, f"{what}.password_file", f"password file {problem}")]
            ) from None
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(
                [
                    ConfigProblem(
                        "environment", None, f"{what}.password_env", f"variable {env} is not set"
                    )
                ]
            )
        return value
    return None


@dataclass(frozen=True, slots=True)
class SigningConfig:
    key_file: str | None = setting(
        None,
        t.optional(t.path),
        "Shared HMAC-SHA256 key file; when set, `mains` and commands are signed/verified.",
        secret=True,
    )
    max_age: float = setting(
        120.0,
        t.duration(1, 86400),
        "Replay window: signed messages older than this (by the signer's clock) are rejected.",
    )
