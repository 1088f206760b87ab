"""The files a valid configuration refers to: do they exist, and can they be read?

``config check`` calls this after the schema has passed, so that a file it calls
valid is one ``run`` can start with: a missing password or key file is reported
there, with the line of its key, instead of only when the service starts.
"""

from __future__ import annotations

from pathlib import Path

from bridge.config._yaml import YamlSyntaxError, load_with_lines
from bridge.config.bridge import BridgeConfig
from bridge.config.client import ClientConfig
from bridge.errors import ConfigProblem
from bridge.mqtt.signing import SigningKeyError, load_key


def referenced_file_problems(
    config: BridgeConfig | ClientConfig, path: Path
) -> list[ConfigProblem]:
    """Every referenced file that is missing, unreadable, empty or (a key) too short."""
    try:
        _data, lines = load_with_lines(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YamlSyntaxError):
        return []  # already reported by the schema check
    found: list[tuple[str, str]] = []
    mqtt = config.mqtt
    if mqtt.password_file:
        found += _readable("mqtt.password_file", mqtt.password_file, what="password file")
    ups = getattr(config, "ups", None)
    if ups is not None and ups.password_file:
        found += _readable("ups.password_file", ups.password_file, what="password file")
    tls = mqtt.tls
    for key, value in (
        ("mqtt.tls.ca_file", tls.ca_file),
        ("mqtt.tls.cert_file", tls.cert_file),
        ("mqtt.tls.key_file", tls.key_file),
    ):
        if tls.enabled and value:
            found += _readable(key, value, what="TLS file")
    if config.signing.key_file:
        try:
            load_key(config.signing.key_file)
        except SigningKeyError as exc:
            found.append(("signing.key_file", str(exc)))
    return [
        ConfigProblem(str(path), lines.line_of(tuple(key.split("."))), key, message)
        for key, message in found
    ]


def _readable(key: str, value: str, *, what: str) -> list[tuple[str, str]]:
    try:
        data = Path(value).read_bytes()
    except OSError as exc:
        return [(key, f"{what} {value} cannot be read: {exc.strerror or exc}")]
    if not data.strip():
        return [(key, f"{what} {value} is empty")]
    return []
