"""The archive's configuration (``archive.yaml``): its own file, declared once as data.

The same declaration gives the voluptuous schema, the frozen dataclasses and the
reference in ``docs/fleets.md``.  Cross-field rules (:func:`problems`) keep the
management view closed by default: it listens on loopback unless a user and
password, or a reverse proxy in front of it, are configured.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bridge.config import types as t
from bridge.config._schema import section, setting, validate_file, validate_text
from bridge.config.common import MqttConfig, read_secret
from bridge.mqtt.contract import ARCHIVER_USER

DEFAULT_ARCHIVE_CONFIG: Final = Path("/etc/powerbridge/archive.yaml")
DEFAULT_DATABASE: Final = "sqlite:///var/lib/powerbridge/archive.db"
DEFAULT_CLIENT_ID: Final = "powerbridge-archiver"
"""``mqtt.client_id`` by default: one fixed id, so the broker keeps one persistent session.
(The ``mqtt`` section is the bridges' own; its bridge-only keys are ignored here.)"""


def database_url(value: object) -> str:
    """``sqlite:///path``, ``postgresql://…`` (``postgres://`` too), or a plain file path."""
    text = t.text(1, 1024)(value)
    if text.startswith(("postgresql://", "postgres://", "sqlite://")):
        return text
    if "://" in text:
        import voluptuous as vol

        raise vol.Invalid("expected sqlite:///path, postgresql://… or a file path")
    return f"sqlite:///{text}" if text.startswith("/") else f"sqlite:///{Path(text).absolute()}"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    database: str = setting(
        DEFAULT_DATABASE,
        database_url,
        "Where samples are stored: `sqlite:///path/archive.db` (one file, WAL) or "
        "`postgresql://user@host/db` (psycopg 3, COPY in batches, monthly partitions).",
    )
    retention: float = setting(
        0.0,
        t.duration(0, 100 * 365 * 86400),
        "Delete samples older than this (`400d`); 0 keeps everything. PostgreSQL drops whole "
        "monthly partitions (or TimescaleDB chunks).",
    )
    batch_size: int = setting(
        20_000, t.integer(100, 1_000_000), "Most samples written in one transaction."
    )
    flush_interval: float = setting(
        0.2, t.duration(0.01, 10), "Longest a received sample waits before it is written."
    )
    retry_max: float = setting(
        30.0, t.duration(0.5, 3600), "Longest wait between two attempts at a database that is down."
    )
    max_payload: int = setting(
        1_048_576,
        t.integer(1024, 268_435_455),
        "Payloads larger than this (bytes) are counted and logged, never stored.",
    )


@dataclass(frozen=True, slots=True)
class GapConfig:
    resend_after: float = setting(
        30.0,
        t.duration(1, 86400),
        "A gap in a device's sequence numbers open this long is asked for again "
        "(`cmd/resend`); earlier, it may still be on its way.",
    )
    resend_every: float = setting(
        300.0, t.duration(1, 86400), "Ask again this often while the gap stays open."
    )
    lost_after: float = setting(
        7 * 86400.0,
        t.duration(60, 365 * 86400),
        "A gap open longer than this (the bridges' `spool.keep_acknowledged`) is recorded "
        "as lost: it can no longer be filled.",
    )
    signing_key_file: str | None = setting(
        None,
        t.optional(t.path),
        "Shared key that signs `cmd/resend` (the bridges' `signing.key_file`); without it, "
        "resend commands go out unsigned and only bridges without a key obey them.",
        secret=True,
    )


@dataclass(frozen=True, slots=True)
class HttpConfig:
    enabled: bool = setting(True, t.boolean, "Serve the management view.")
    host: str = setting(
        "127.0.0.1",
        t.text(1, 253),
        "Address to listen on. Anything but loopback needs `username` and a password, or "
        "`behind_proxy: true`.",
    )
    port: int = setting(8080, t.integer(0, 65535), "Port of the management view (0: any free).")
    username: str | None = setting(None, t.optional(t.text(1, 64)), "HTTP Basic user name.")
    password_file: str | None = setting(
        None, t.optional(t.path), "File holding the HTTP password.", secret=True
    )
    password_env: str | None = setting(
        None, t.optional(t.env_name), "Environment variable holding the HTTP password.", secret=True
    )
    behind_proxy: bool = setting(
        False,
        t.boolean,
        "A reverse proxy in front authenticates users (then any listen address is allowed).",
    )
    stale_after: float = setting(
        360.0, t.duration(10, 86400), "Flag a device whose newest archived sample is older."
    )


@dataclass(frozen=True, slots=True)
class ArchiveConfig:
    archive: StoreConfig = section(StoreConfig, "The database.")
    gaps: GapConfig = section(GapConfig, "Missing sequence numbers: asking again, giving up.")
    http: HttpConfig = section(HttpConfig, "The management view.")
    mqtt: MqttConfig = section(MqttConfig, "The broker (the `archiver` role).")

    @property
    def client_id(self) -> str:
        """Fixed: the broker keeps this session's queue while the archive is down."""
        return self.mqtt.client_id or DEFAULT_CLIENT_ID

    @property
    def username(self) -> str:
        return self.mqtt.username or ARCHIVER_USER

    def mqtt_password(self) -> str | None:
        return self.mqtt.password()

    def http_password(self) -> str | None:
        return read_secret(self.http.password_file, self.http.password_env, "http")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def problems(config: ArchiveConfig) -> list[tuple[str, str]]:
    """Cross-field rules: a management view open to the network must ask who is there."""
    out = list(config.mqtt.problems())
    http = config.http
    has_password = bool(http.password_file or http.password_env)
    if http.username and not has_password:
        out.append(("http.username", "a user name needs http.password_file or password_env"))
    open_to_network = http.enabled and not is_loopback(http.host) and not http.behind_proxy
    if open_to_network and not (http.username and has_password):
        out.append(
            (
                "http.host",
                f"{http.host} is not loopback: set http.username and http.password_file, "
                "or http.behind_proxy: true when a reverse proxy authenticates",
            )
        )
    return out


def load(path: Path) -> ArchiveConfig:
    return validate_file(ArchiveConfig, path, post=problems)


def parse(text: str, file: str = "archive.yaml") -> ArchiveConfig:
    return validate_text(ArchiveConfig, text, file, post=problems)


REFERENCE_BEGIN: Final = "<!-- BEGIN archive.yaml reference (bridge/archive/config.py) -->"
REFERENCE_END: Final = "<!-- END archive.yaml reference -->"


def reference_table() -> str:
    """Every key of ``archive.yaml`` as a Markdown table (docs/fleets.md keeps a copy)."""
    from bridge.config._schema import reference

    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, doc in reference(ArchiveConfig):
        shown = f"`{default}`" if default else ""
        lines.append(f"| `{key}` | {shown} | {doc.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"
