"""The shutdown client's configuration (``client.yaml`` on each PC)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridge.config import types as t
from bridge.config._schema import items_of, section, setting, validate_file, validate_text
from bridge.config.common import MqttConfig, SigningConfig


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    id: str | None = setting(
        None, t.optional(t.topic_safe_id), "Client id; default this computer's host name."
    )
    name: str | None = setting(
        None, t.optional(t.text(1, 64)), "Name shown in Home Assistant; default the host name."
    )
    memory_file: str | None = setting(
        None,
        t.optional(t.path),
        "File keeping the last message accepted from each bridge across restarts; "
        "default /var/lib/powerbridge (service) or ~/.local/state/powerbridge.",
    )


@dataclass(frozen=True, slots=True)
class HookConfig:
    command: tuple[str, ...] = setting(
        (), t.argv, "Command run before shutting down, as a list of arguments.", required=True
    )
    timeout: float = setting(60.0, t.duration(1, 3600), "The hook is killed after this long.")


@dataclass(frozen=True, slots=True)
class ShutdownConfig:
    delay: float = setting(
        600.0, t.duration(0, 86400), "Shut down after an outage has lasted this long."
    )
    min_supplies: int = setting(
        1,
        t.integer(1, 64),
        "Shut down when fewer than this many watched bridges have mains.",
    )
    on_lost_during_outage: str = setting(
        "continue",
        t.one_of("continue", "shutdown_now"),
        "Bridge or broker lost while in an outage: keep counting, or shut down at once.",
    )
    lost_warning_after: float = setting(
        120.0, t.duration(1, 86400), "Warn when a bridge on mains has been silent this long."
    )
    command: tuple[str, ...] | None = setting(
        None, t.optional(t.argv), "Shutdown command as a list; default per operating system."
    )
    hooks: tuple[HookConfig, ...] = items_of(HookConfig, "Commands run before shutting down.")
    warnings: tuple[float, ...] = setting(
        (300.0, 60.0),
        t.list_of(t.duration(1, 86400)),
        "Warn logged-in users when this much time is left.",
    )
    notify: str = setting(
        "auto",
        t.one_of("auto", "wall", "desktop", "msg", "none"),
        "How users are warned; `auto` picks per operating system.",
    )
    dry_run: bool = setting(False, t.boolean, "Log 'would shut down' instead of shutting down.")
    allow_remote: bool = setting(
        False,
        t.boolean,
        "Obey authenticated 'shutdown now' commands (requires signing.key_file).",
    )
    remote_cancel_window: float = setting(
        60.0, t.duration(0, 3600), "Time to cancel a remote 'shutdown now' before it runs."
    )
    on_low_battery: bool = setting(
        True,
        t.boolean,
        "During an outage, shut down when a bridge's UPS reports low battery (`ups:` bridges).",
    )
    min_runtime: float = setting(
        0.0,
        t.duration(0, 86400),
        "During an outage, shut down when a bridge's UPS has less runtime left (0: off).",
    )


@dataclass(frozen=True, slots=True)
class ClientConfig:
    client: ClientIdentity = section(ClientIdentity, "Identity of this computer.")
    mqtt: MqttConfig = section(MqttConfig, "Broker connection (`host: auto` finds it by mDNS).")
    bridges: tuple[str, ...] = setting(
        (),
        t.list_of(t.topic_safe_id, min_items=1),
        "Device ids of the bridges whose supplies feed this computer.",
        required=True,
    )
    shutdown: ShutdownConfig = section(ShutdownConfig, "When and how to shut down.")
    signing: SigningConfig = section(SigningConfig, "Verify signed messages from the bridges.")


def _cross_checks(config: ClientConfig) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if config.shutdown.min_supplies > len(config.bridges):
        problems.append(
            (
                "shutdown.min_supplies",
                f"{config.shutdown.min_supplies} is more than the {len(config.bridges)} "
                "bridge(s) listed",
            )
        )
    if config.shutdown.allow_remote and not config.signing.key_file:
        problems.append(
            ("shutdown.allow_remote", "needs signing.key_file (commands must be signed)")
        )
    problems.extend(config.mqtt.problems())
    if len(set(config.bridges)) != len(config.bridges):
        problems.append(("bridges", "a bridge is listed twice"))
    return problems


def load_client_config(path: Path) -> ClientConfig:
    """Load and validate a shutdown client configuration file (raises ``ConfigError``)."""
    return validate_file(ClientConfig, path, post=_cross_checks)


def parse_client_config(text: str, name: str = "<config>") -> ClientConfig:
    """Validate client configuration text."""
    return validate_text(ClientConfig, text, name, post=_cross_checks)
