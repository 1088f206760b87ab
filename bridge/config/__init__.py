"""Configuration: YAML validated with voluptuous into frozen, typed dataclasses.

Errors name the file, line and dotted key: ``bridge.yaml:7: mqtt.port: expected an
integer 1–65535, got 'abc'``.  Every problem in a file is reported, not just the first.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.config.bridge import BridgeConfig, load_bridge_config, parse_bridge_config
    from bridge.config.client import ClientConfig, load_client_config, parse_client_config
    from bridge.config.common import MqttConfig, SigningConfig, TlsConfig
    from bridge.config.types import parse_duration

_HOMES = {
    "BridgeConfig": "bridge",
    "load_bridge_config": "bridge",
    "parse_bridge_config": "bridge",
    "ClientConfig": "client",
    "load_client_config": "client",
    "parse_client_config": "client",
    "MqttConfig": "common",
    "SigningConfig": "common",
    "TlsConfig": "common",
    "parse_duration": "types",
}


def __getattr__(name: str) -> Any:
    """Each public name is imported from its module when first asked for, so that a
    shutdown client (``bridge.config.client``) never loads the bridge's schema."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'bridge.config' has no attribute {name!r}")
    value = getattr(import_module(f"bridge.config.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "BridgeConfig",
    "ClientConfig",
    "MqttConfig",
    "SigningConfig",
    "TlsConfig",
    "load_bridge_config",
    "load_client_config",
    "parse_bridge_config",
    "parse_client_config",
    "parse_duration",
]
