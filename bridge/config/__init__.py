"""Configuration: YAML validated with voluptuous into frozen, typed dataclasses.

Errors name the file, line and dotted key: ``bridge.yaml:7: mqtt.port: expected an
integer 1–65535, got 'abc'``.  Every problem in a file is reported, not just the first.
"""

from bridge.config.bridge import BridgeConfig, load_bridge_config, parse_bridge_config
from bridge.config.client import ClientConfig, load_client_config, parse_client_config
from bridge.config.common import MqttConfig, SigningConfig, TlsConfig
from bridge.config.types import parse_duration

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
