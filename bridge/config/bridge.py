"""The bridge daemon's configuration (``/etc/powerbridge/bridge.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridge.config import types as t
from bridge.config._schema import section, setting, validate_file, validate_text
from bridge.config.common import MqttConfig, SigningConfig

METER_TYPES = ("none", "simulated", "mcp39f511n", "pzem004t", "sdm120", "sdm630")
SIMULATED_PROTOCOLS = ("mcp39f511n", "pzem004t", "sdm120", "sdm630")


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    id: str | None = setting(
        None,
        t.optional(t.topic_safe_id),
        "Device id; default the Pi's serial number, else /etc/machine-id.",
    )
    name: str | None = setting(
        None, t.optional(t.text(1, 64)), "Name shown in Home Assistant; default `powerbridge <id>`."
    )
    data_dir: str = setting(
        "/var/lib/powerbridge", t.path, "Where the database (spool, outages, deployment) lives."
    )
    configuration_url: str | None = setting(
        None, t.optional(t.text(1, 256)), "Link shown on the Home Assistant device page."
    )


@dataclass(frozen=True, slots=True)
class MeterConfig:
    type: str = setting("none", t.one_of(*METER_TYPES), "Meter driver; `none` for mains only.")
    port: str | None = setting(
        None,
        t.optional(t.path),
        "Serial port, preferably /dev/serial/by-id/... or /dev/powermeter.",
    )
    baud: int | None = setting(
        None, t.optional(t.integer(300, 1_000_000)), "Baud rate; default the meter's own."
    )
    address: int | None = setting(
        None, t.optional(t.integer(1, 248)), "Modbus address (PZEM: 1–247, 248 = any single)."
    )
    channels: tuple[int, ...] = setting(
        (1,),
        t.list_of(t.integer(1, 2), min_items=1),
        "MCP39F511N channels to publish: [1], [2] or [1, 2].",
    )
    interval: float = setting(1.0, t.duration(0.01, 3600), "Time between readings.")
    timeout: float = setting(0.5, t.duration(0.01, 10), "How long to wait for one reply.")


@dataclass(frozen=True, slots=True)
class MainsConfig:
    source: str = setting(
        "gpio",
        t.one_of("gpio", "meter", "ups", "any", "all"),
        "What says the mains is off: the GPIO pin, the meter, the UPS (`OB`; needs `ups.name`), "
        "either the pin or the second input (`any`) or both (`all`). The second input is the "
        "meter, or the UPS when `ups.name` is set and `meter.type` is `none`. A meter whose "
        "serial port disappears, or a UPS whose upsd cannot be read, counts as unknown, never off.",
    )
    pin: int = setting(4, t.integer(0, 27), "BCM number of the mains-sense GPIO pin.")
    pull: str = setting(
        "down", t.one_of("up", "down", "none"), "Internal pull resistor of the pin."
    )
    active_high: bool = setting(True, t.boolean, "Mains present when the pin is high.")
    bounce_time: float = setting(0.01, t.duration(0, 1), "Hardware debounce of the pin.")
    confirm_off: float = setting(
        0.5, t.duration(0, 60), "The pin must stay off this long before an outage is announced."
    )
    confirm_on: float = setting(
        2.0, t.duration(0, 600), "The pin must stay on this long before a restore is announced."
    )
    meter_voltage_threshold: float = setting(
        100.0, t.number(0, 500), "Meter voltage below this (V) counts as mains off."
    )
    meter_silence: float = setting(
        3.0, t.duration(0.1, 600), "A meter silent this long counts as mains off (PZEM dies)."
    )


@dataclass(frozen=True, slots=True)
class UpsConfig:
    name: str | None = setting(
        None,
        t.optional(t.text(1, 64)),
        "UPS name on upsd (`ups.conf` section, as `upsc <name>@host`); unset: no UPS.",
    )
    host: str = setting("127.0.0.1", t.text(1, 253), "upsd host (NUT's network server).")
    port: int = setting(3493, t.integer(1, 65535), "upsd port.")
    username: str | None = setting(
        None, t.optional(t.text(1, 128)), "upsd user (`upsd.users`); none: read anonymously."
    )
    password_file: str | None = setting(
        None, t.optional(t.path), "File holding that user's password (mode 0600).", secret=True
    )
    poll: float = setting(
        2.0,
        t.duration(0.5, 60),
        "Time between reads. upsd answers from the driver's memory (cheap), and a NUT driver "
        "itself refreshes every 2 s (`pollinterval`), so 2 s follows the UPS as fast as NUT can.",
    )
    timeout: float = setting(5.0, t.duration(0.5, 60), "How long one read may take.")

    @property
    def enabled(self) -> bool:
        return self.name is not None


@dataclass(frozen=True, slots=True)
class HealthConfig:
    interval: float = setting(30.0, t.duration(1, 3600), "Time between health reports.")
    min_free_disk_mb: float = setting(
        100.0, t.number(0), "Free space under data_dir below which the bridge reports a problem."
    )


@dataclass(frozen=True, slots=True)
class LedsConfig:
    enabled: bool = setting(True, t.boolean, "Blink fault codes on the LEDs.")
    backend: str = setting(
        "sysfs", t.one_of("sysfs", "gpio"), "Onboard LEDs via /sys/class/leds, or external LEDs."
    )
    pwr_led: str = setting("PWR", t.text(1, 64), "sysfs name of the red LED (3 blinks: broker).")
    act_led: str = setting("ACT", t.text(1, 64), "sysfs name of the green LED (4 blinks: meter).")
    pwr_pin: int | None = setting(
        None, t.optional(t.integer(0, 27)), "BCM pin of an external red LED (backend gpio)."
    )
    act_pin: int | None = setting(
        None, t.optional(t.integer(0, 27)), "BCM pin of an external green LED (backend gpio)."
    )


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    max_age: float = setting(
        30 * 86400.0, t.duration(60), "Undelivered samples older than this are dropped (counted)."
    )
    max_size_mb: float = setting(
        200.0, t.number(1), "Spool size above which the oldest samples are dropped (counted)."
    )
    batch_size: int = setting(500, t.integer(1, 10_000), "Samples per `samples` message.")
    flush_interval: float = setting(
        5.0, t.duration(0.1, 60), "At most one fsync of the spool per this interval."
    )
    keep_acknowledged: float = setting(
        7 * 86400.0,
        t.duration(0, 365 * 86400),
        "Keep samples the broker acknowledged this long, to send them again when an archive "
        "asks (`cmd/resend`); 0 deletes them on acknowledgement.",
    )
    keep_acknowledged_mb: float = setting(
        100.0, t.number(0), "At most this much of acknowledged samples (oldest deleted first)."
    )


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    enabled: bool = setting(
        False,
        t.boolean,
        "Mock mains pin driven by `powerbridge simulate`; never on a production bridge.",
    )
    meter_protocol: str = setting(
        "pzem004t", t.one_of(*SIMULATED_PROTOCOLS), "Wire protocol of the simulated meter."
    )
    load_w: float = setting(120.0, t.number(0, 100_000), "Mean simulated load.")
    voltage_v: float = setting(230.0, t.number(0, 500), "Simulated mains voltage.")
    noise: float = setting(0.02, t.number(0, 1), "Relative noise on simulated values.")


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    device: DeviceConfig = section(DeviceConfig, "Identity and storage.")
    mqtt: MqttConfig = section(MqttConfig, "Broker connection.")
    meter: MeterConfig = section(MeterConfig, "Power meter.")
    mains: MainsConfig = section(MainsConfig, "Mains sensing.")
    ups: UpsConfig = section(UpsConfig, "A UPS read through a local upsd (NUT), as a source.")
    health: HealthConfig = section(HealthConfig, "Self-monitoring.")
    leds: LedsConfig = section(LedsConfig, "LED fault codes.")
    spool: SpoolConfig = section(SpoolConfig, "Durable store-and-forward.")
    signing: SigningConfig = section(SigningConfig, "Message signatures.")
    simulation: SimulationConfig = section(SimulationConfig, "Simulated hardware (demo, tests).")


def _cross_checks(config: BridgeConfig) -> list[tuple[str, str]]:
    from bridge.mqtt.contract import samples_per_packet

    problems: list[tuple[str, str]] = []
    fit = samples_per_packet(config.mqtt.max_packet_size, config.device.id or "x" * 64)
    if config.spool.batch_size > fit:
        problems.append(
            (
                "spool.batch_size",
                f"{config.spool.batch_size} samples may not fit in one message under the "
                f"broker's max_packet_size of {config.mqtt.max_packet_size} bytes "
                f"(mqtt.max_packet_size); at most {fit}",
            )
        )
    real_meter = config.meter.type not in ("none", "simulated")
    if real_meter and not config.meter.port:
        problems.append(("meter.port", f"required for meter type {config.meter.type}"))
    problems.extend(_mains_source_problems(config))
    if config.meter.type == "simulated" and not config.simulation.enabled:
        problems.append(("meter.type", "'simulated' needs simulation.enabled: true"))
    if config.mqtt.host == "auto":
        problems.append(("mqtt.host", "'auto' is for shutdown clients; a bridge names its broker"))
    problems.extend(config.mqtt.problems())
    if (
        config.leds.backend == "gpio"
        and config.leds.enabled
        and (config.leds.pwr_pin is None and config.leds.act_pin is None)
    ):
        problems.append(("leds.backend", "'gpio' needs pwr_pin and/or act_pin"))
    return problems


def _mains_source_problems(config: BridgeConfig) -> list[tuple[str, str]]:
    source, has_ups = config.mains.source, config.ups.enabled
    if source == "ups" and not has_ups:
        return [("mains.source", "'ups' needs a UPS, but ups.name is not set")]
    has_meter = config.meter.type != "none"
    if source == "meter" and not has_meter:
        return [("mains.source", "'meter' needs a meter, but meter.type is none")]
    if source in ("any", "all") and not has_meter and not has_ups:
        return [("mains.source", f"'{source}' needs a meter or a UPS, but there is neither")]
    if source in ("any", "all") and has_meter and has_ups:
        return [
            (
                "mains.source",
                f"'{source}' combines the pin with one input; with both a meter and a UPS "
                "choose 'gpio', 'meter' or 'ups'",
            )
        ]
    return []


def load_bridge_config(path: Path) -> BridgeConfig:
    """Load and validate a bridge configuration file (raises ``ConfigError``)."""
    return validate_file(BridgeConfig, path, post=_cross_checks)


def parse_bridge_config(text: str, name: str = "<config>") -> BridgeConfig:
    """Validate bridge configuration text (used by the demo's embedded default)."""
    return validate_text(BridgeConfig, text, name, post=_cross_checks)
