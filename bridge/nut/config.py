"""``nut.yaml``: the NUT server facade's own configuration.

The sections ``mqtt`` and ``signing`` are the shutdown client's (the facade listens as
one client identity); ``shutdown`` holds only the policy settings that decide when a
bridge's UPS reports ``LB`` (``delay``, as on the PCs) and ``FSD``.
"""

from __future__ import annotations

import configparser
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.config import types as t
from bridge.config._schema import items_of, section, setting, validate_file, validate_text
from bridge.config.client import ShutdownConfig
from bridge.config.common import MqttConfig, SigningConfig
from bridge.errors import ConfigError, ConfigProblem
from bridge.shutdown.policy import PolicySettings

DEFAULT_NUT_CONFIG = Path("/etc/powerbridge/nut.yaml")
NUT_PORT = 3493


@dataclass(frozen=True, slots=True)
class ServeConfig:
    listen: tuple[str, ...] = setting(
        ("127.0.0.1",),
        t.list_of(t.text(1, 253), min_items=1),
        "Addresses to listen on (`0.0.0.0` for every IPv4 interface).",
    )
    port: int = setting(NUT_PORT, t.integer(1, 65535), "TCP port (NUT's is 3493).")
    users_file: str = setting(
        "/etc/powerbridge/nut-users",
        t.path,
        "upsd.users-style file: `[name]` sections with `password = ...` (mode 0600).",
        secret=True,
    )
    cert_file: str | None = setting(
        None, t.optional(t.path), "PEM certificate (with chain) for STARTTLS; none: no TLS."
    )
    key_file: str | None = setting(None, t.optional(t.path), "Private key of cert_file.")
    max_connections: int = setting(
        256, t.integer(1, 10000), "Connections beyond this are refused at once."
    )
    idle_timeout: float = setting(
        300.0, t.duration(5, 86400), "A connection that sends nothing for this long is closed."
    )
    mdns: bool = setting(True, t.boolean, "Advertise the server as `_nut._tcp` by mDNS.")
    client_id: str = setting(
        "nut",
        t.topic_safe_id,
        "MQTT client identity (`powerbridge broker add-nut nut` makes user `nut-nut`); "
        "remote 'shutdown now' for it or for all clients becomes FSD.",
    )


@dataclass(frozen=True, slots=True)
class UpsEntry:
    bridge: str = setting(None, t.topic_safe_id, "Device id of the bridge.", required=True)
    name: str | None = setting(
        None,
        t.optional(t.topic_safe_id),
        "UPS name clients use (`ups` for Synology, `qnapups` for QNAP); default the device id.",
    )
    description: str | None = setting(
        None, t.optional(t.text(1, 128)), "Shown by `LIST UPS`; default `powerbridge <id>`."
    )
    model: str = setting(
        "powerbridge mains monitor", t.text(1, 64), "`ups.model` / `device.model`."
    )

    @property
    def alias(self) -> str:
        return self.name or self.bridge


def _as_on_the_pcs(name: str, doc: str) -> Any:
    """The shutdown client's ``shutdown.<name>`` (default and check), documented anew."""
    client = {f.name: f for f in dataclasses.fields(ShutdownConfig)}[name]
    return setting(client.default, client.metadata["check"], doc)


@dataclass(frozen=True, slots=True)
class NutPolicyConfig:
    delay: float = _as_on_the_pcs(
        "delay", "`LB` when an announced outage has lasted this long (the PCs' `shutdown.delay`)."
    )
    on_lost_during_outage: str = _as_on_the_pcs(
        "on_lost_during_outage", "As on the PCs (the bridge is reported `DATA-STALE` meanwhile)."
    )
    allow_remote: bool = setting(
        False, t.boolean, "Turn authenticated 'shutdown now' commands into `FSD`."
    )
    remote_cancel_window: float = _as_on_the_pcs(
        "remote_cancel_window",
        "`FSD` follows a remote 'shutdown now' after this long, unless cancelled.",
    )
    on_low_battery: bool = _as_on_the_pcs(
        "on_low_battery",
        "A bridge reading a UPS: `LB` (and FSD) when that UPS reports low battery in an outage.",
    )
    min_runtime: float = _as_on_the_pcs(
        "min_runtime",
        "A bridge reading a UPS: `LB` once its remaining runtime falls below this (0: off).",
    )

    def settings(self) -> PolicySettings:
        return PolicySettings(
            on_low_battery=self.on_low_battery,
            min_runtime=self.min_runtime,
            delay=self.delay,
            on_lost_during_outage=(
                "shutdown_now" if self.on_lost_during_outage == "shutdown_now" else "continue"
            ),
            remote_cancel_window=self.remote_cancel_window,
        )


@dataclass(frozen=True, slots=True)
class NutConfig:
    nut: ServeConfig = section(ServeConfig, "The NUT network server.")
    ups: tuple[UpsEntry, ...] = items_of(UpsEntry, "One UPS per watched bridge.")
    mqtt: MqttConfig = section(MqttConfig, "Broker connection.")
    shutdown: NutPolicyConfig = section(NutPolicyConfig, "When a UPS reports LB and FSD.")
    signing: SigningConfig = section(SigningConfig, "Verify signed messages from the bridges.")


def _cross_checks(config: NutConfig) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not config.ups:
        problems.append(("ups", "list at least one bridge"))
    names = [u.alias for u in config.ups]
    if len(set(names)) != len(names):
        problems.append(("ups", "two UPSes have the same name"))
    if len({u.bridge for u in config.ups}) != len(config.ups):
        problems.append(("ups", "a bridge is listed twice"))
    if bool(config.nut.cert_file) != bool(config.nut.key_file):
        problems.append(("nut.cert_file", "STARTTLS needs both cert_file and key_file"))
    if config.shutdown.allow_remote and not config.signing.key_file:
        problems.append(("shutdown.allow_remote", "needs signing.key_file (commands are signed)"))
    problems.extend(config.mqtt.problems())
    return problems


def load_nut_config(path: Path) -> NutConfig:
    return validate_file(NutConfig, path, post=_cross_checks)


def parse_nut_config(text: str, name: str = "<config>") -> NutConfig:
    return validate_text(NutConfig, text, name, post=_cross_checks)


def parse_users(text: str, source: str = "users file") -> dict[str, str]:
    """``{user: password}`` from an upsd.users-style text (``[name]`` + ``password = x``)."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        parser.read_string(text, source)
    except configparser.Error as exc:
        raise ConfigError([ConfigProblem(source, None, "", str(exc).splitlines()[0])]) from None
    users: dict[str, str] = {}
    for name in parser.sections():
        password = parser.get(name, "password", fallback=None)
        if not password:
            raise ConfigError([ConfigProblem(source, None, name, "has no password")])
        users[name] = password.strip().strip('"')
    return users


def load_users(path: str) -> dict[str, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(path, None, "", f"cannot read: {exc.strerror}")]) from None
    return parse_users(text, path)
