"""Self-monitoring: the bridge's view of its own machine, as a :class:`HealthSnapshot`.

Every probe returns a value or ``None`` ("unknown": no such sensor on this
machine, no permission, an unexpected format) — never an exception; the health
report must not be what breaks the bridge.  File paths (:class:`HealthPaths`,
re-rootable with :meth:`HealthPaths.under` for tests) and external commands
(:class:`HealthCommands`) are injectable.  The parsers are pure functions tested
against captured file contents in ``tests/fixtures/health/``.

The daemon adds what only it knows (meter link, broker link, spool, mains flaps)
through :class:`~bridge.model.DynamicHealth` (the part of
:class:`~bridge.model.HealthSnapshot` it fills), assembled here by
:func:`daemon_health` from the parts themselves; :class:`HealthReport` publishes the
retained ``health`` topic every ``health.interval`` and soon after a link changes
(moved here from the daemon, which only wires it).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from bridge import __version__
from bridge.clock import Clock, SystemClock, isoformat_utc, kernel_clock_synchronised
from bridge.config.bridge import HealthConfig
from bridge.model import DynamicHealth, HealthSnapshot
from bridge.mqtt.contract import QOS_HEALTH, HealthPayload

if TYPE_CHECKING:
    from bridge.mains import MainsSensor
    from bridge.meters.source import MeterSource
    from bridge.mqtt.publisher import BridgePublisher
    from bridge.mqtt.spool import Spool
    from bridge.ups.source import UpsSource

log = logging.getLogger(__name__)

T = TypeVar("T")

HEALTH_SOON_S: Final = 0.5
"""After a meter link change or a connect, the health report follows this soon."""
MB: Final = 1_000_000
"""Bytes per MB (the unit of ``disk_free_mb``/``process_rss_mb`` is the SI megabyte)."""

# Raspberry Pi firmware ``get_throttled`` bits.
UNDER_VOLTAGE_NOW: Final = 1 << 0
FREQ_CAPPED_NOW: Final = 1 << 1
THROTTLED_NOW: Final = 1 << 2
SOFT_TEMP_LIMIT_NOW: Final = 1 << 3
UNDER_VOLTAGE_OCCURRED: Final = 1 << 16
FREQ_CAPPED_OCCURRED: Final = 1 << 17
THROTTLED_OCCURRED: Final = 1 << 18
SOFT_TEMP_LIMIT_OCCURRED: Final = 1 << 19


@dataclass(frozen=True, slots=True)
class HealthPaths:
    """Where each probe reads (the real Linux paths by default)."""

    thermal: Path = Path("/sys/class/thermal")
    hwmon: Path = Path("/sys/class/hwmon")
    meminfo: Path = Path("/proc/meminfo")
    loadavg: Path = Path("/proc/loadavg")
    uptime: Path = Path("/proc/uptime")
    stat: Path = Path("/proc/stat")
    self_status: Path = Path("/proc/self/status")
    get_throttled: Path = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")

    @classmethod
    def under(cls, root: Path) -> HealthPaths:
        """The same paths below ``root`` (a captured tree such as ``tests/fixtures/health/pi4``)."""
        values = {
            f.name: root / Path(str(f.default)).relative_to("/") for f in dataclasses.fields(cls)
        }
        return cls(**values)


@dataclass(frozen=True, slots=True)
class HealthCommands:
    """External commands of the probes; ``None`` disables one."""

    vcgencmd: tuple[str, ...] | None = ("vcgencmd", "get_throttled")
    timedatectl: tuple[str, ...] | None = (
        "timedatectl",
        "show",
        "--property=NTPSynchronized",
        "--value",
    )
    adjtimex: bool = True
    """Ask the kernel (``adjtimex``) whether the clock is synchronised, before timedatectl."""
    timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class Throttling:
    """Decoded firmware ``get_throttled`` flags."""

    raw: int

    @property
    def under_voltage(self) -> bool:
        return bool(self.raw & UNDER_VOLTAGE_NOW)

    @property
    def under_voltage_occurred(self) -> bool:
        return bool(self.raw & UNDER_VOLTAGE_OCCURRED)

    @property
    def throttled(self) -> bool:
        """Slowed down now: frequency capped, throttled or at the soft temperature limit."""
        return bool(self.raw & (FREQ_CAPPED_NOW | THROTTLED_NOW | SOFT_TEMP_LIMIT_NOW))

    @property
    def hex(self) -> str:
        return f"0x{self.raw:x}"


# --------------------------------------------------------------------------- parsers (pure)


def parse_thermal_millidegrees(text: str) -> float | None:
    """``/sys/class/thermal/thermal_zone*/temp``: millidegrees Celsius → °C."""
    value = int(text.strip()) / 1000.0
    # -40..150 °C: anything else is a sensor error code, not a temperature.
    return value if -40.0 <= value <= 150.0 else None


def parse_meminfo(text: str) -> float | None:
    """``/proc/meminfo`` → percentage of memory in use (total minus available)."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name.strip()] = int(parts[0])
    total = fields.get("MemTotal")
    if not total:
        return None
    available = fields.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = sum(fields.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
    return max(0.0, min(100.0, 100.0 * (total - available) / total))


def parse_loadavg(text: str) -> float:
    """``/proc/loadavg`` → the 1-minute load average."""
    return float(text.split(maxsplit=1)[0])


def parse_uptime(text: str) -> float:
    """``/proc/uptime`` → seconds since boot."""
    return float(text.split(maxsplit=1)[0])


def parse_btime(text: str) -> datetime | None:
    """``/proc/stat`` → boot time (its ``btime`` line, seconds since the epoch)."""
    for line in text.splitlines():
        if line.startswith("btime "):
            return datetime.fromtimestamp(int(line.split()[1]), UTC)
    return None


def parse_vm_rss(text: str) -> float | None:
    """``/proc/<pid>/status`` → resident set size in MB."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            return int(parts[1]) * 1024 / MB  # the kernel's "kB" are KiB
    return None


def parse_throttled(text: str) -> Throttling:
    """``vcgencmd get_throttled`` (``throttled=0x50005``) or the sysfs file (``50005``)."""
    value = text.strip()
    if "=" in value:
        name, _, value = value.partition("=")
        if name.strip() != "throttled":
            raise ValueError(f"not get_throttled output: {text!r}")
    return Throttling(int(value, 16))


def parse_timedatectl(text: str) -> bool:
    """``timedatectl show --property=NTPSynchronized --value`` → ``yes``/``no``."""
    value = text.strip().lower()
    if value in ("yes", "no"):
        return value == "yes"
    raise ValueError(f"unexpected NTPSynchronized value {text!r}")


# --------------------------------------------------------------------------- the monitor


class HealthMonitor:
    """Collects a :class:`HealthSnapshot` on demand; every probe degrades to ``None``."""

    def __init__(
        self,
        config: HealthConfig,
        data_dir: Path,
        *,
        paths: HealthPaths | None = None,
        commands: HealthCommands | None = None,
        clock: Clock | None = None,
        version: str = __version__,
    ) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.paths = paths or HealthPaths()
        self.commands = commands or HealthCommands()
        self.clock: Clock = clock or SystemClock()
        self._version = version
        self._failed: set[str] = set()

    # ------------------------------------------------------------------ plumbing
    def _probe(self, name: str, fn: Callable[[], T | None]) -> T | None:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - a probe never breaks the report: unknown instead
            if name not in self._failed:
                self._failed.add(name)
                log.debug("health probe %s unavailable: %s: %s", name, type(exc).__name__, exc)
            return None

    def _read(self, path: Path) -> str:
        return path.read_text(encoding="utf-8", errors="replace")

    def _run(self, argv: Sequence[str]) -> str:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=self.commands.timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[:200]}")
        return done.stdout

    # ------------------------------------------------------------------ probes
    def cpu_temperature(self) -> float | None:
        """°C of the CPU's thermal zone (``cpu-thermal`` on a Pi), else the first zone."""

        def probe() -> float | None:
            zones = sorted(self.paths.thermal.glob("thermal_zone*"))
            preferred = [z for z in zones if "cpu" in self._zone_type(z)]
            for zone in preferred + [z for z in zones if z not in preferred]:
                try:
                    value = parse_thermal_millidegrees(self._read(zone / "temp"))
                except (OSError, ValueError):
                    continue
                if value is not None:
                    return value
            return None

        return self._probe("cpu_temperature", probe)

    def _zone_type(self, zone: Path) -> str:
        try:
            return self._read(zone / "type").strip().lower()
        except OSError:
            return ""

    def load_1m(self) -> float | None:
        return self._probe("load", lambda: parse_loadavg(self._read(self.paths.loadavg)))

    def memory_used_pct(self) -> float | None:
        return self._probe("memory", lambda: parse_meminfo(self._read(self.paths.meminfo)))

    def disk_free_mb(self) -> float | None:
        """Free space for the bridge's files (nearest existing parent of the data dir)."""

        def probe() -> float:
            where = self.data_dir
            while not where.exists() and where != where.parent:
                where = where.parent
            return shutil.disk_usage(where).free / MB

        return self._probe("disk", probe)

    def uptime_s(self) -> float | None:
        return self._probe("uptime", lambda: parse_uptime(self._read(self.paths.uptime)))

    def boot_time(self, uptime: float | None = None) -> datetime | None:
        """From ``/proc/stat`` ``btime``; else now minus uptime, to the second."""
        found = self._probe("boot_time", lambda: parse_btime(self._read(self.paths.stat)))
        if found is not None:
            return found
        if uptime is None:
            return None
        approx = self.clock.utcnow() - timedelta(seconds=uptime)
        return approx.replace(microsecond=0)

    def throttling(self) -> Throttling | None:
        """Pi firmware flags: ``vcgencmd``, else the (older) sysfs file, else unknown."""
        argv = self.commands.vcgencmd
        if argv is not None:
            found = self._probe("vcgencmd", lambda: parse_throttled(self._run(argv)))
            if found is not None:
                return found
        return self._probe(
            "get_throttled", lambda: parse_throttled(self._read(self.paths.get_throttled))
        )

    def under_voltage_hwmon(self) -> bool | None:
        """Newer kernels: ``hwmon`` device ``rpi_volt``, ``in0_lcrit_alarm``."""

        def probe() -> bool | None:
            for device in sorted(self.paths.hwmon.glob("hwmon*")):
                try:
                    if self._read(device / "name").strip() != "rpi_volt":
                        continue
                    return self._read(device / "in0_lcrit_alarm").strip() == "1"
                except OSError:
                    continue
            return None

        return self._probe("hwmon", probe)

    def clock_synchronised(self) -> bool | None:
        """Kernel NTP state (``adjtimex``), else ``timedatectl``, else unknown."""
        if self.commands.adjtimex:
            found = self._probe("adjtimex", kernel_clock_synchronised)
            if found is not None:
                return found
        argv = self.commands.timedatectl
        if argv is None:
            return None
        return self._probe("timedatectl", lambda: parse_timedatectl(self._run(argv)))

    def process_rss_mb(self) -> float | None:
        return self._probe("rss", lambda: parse_vm_rss(self._read(self.paths.self_status)))

    # ------------------------------------------------------------------ snapshot
    def snapshot(self, dynamic: DynamicHealth | None = None) -> HealthSnapshot:
        """Run every probe now and merge what the daemon knows."""
        dyn = dynamic or DynamicHealth()
        uptime = self.uptime_s()
        flags = self.throttling()
        extra: dict[str, str] = {}
        under_voltage: bool | None
        if flags is not None:
            under_voltage = flags.under_voltage
            extra["throttled_flags"] = flags.hex
        else:
            under_voltage = self.under_voltage_hwmon()
        return HealthSnapshot(
            time=self.clock.utcnow(),
            software_version=self._version,
            cpu_temperature_c=self.cpu_temperature(),
            load_1m=self.load_1m(),
            memory_used_pct=self.memory_used_pct(),
            disk_free_mb=self.disk_free_mb(),
            uptime_s=uptime,
            boot_time=self.boot_time(uptime),
            under_voltage=under_voltage,
            under_voltage_occurred=flags.under_voltage_occurred if flags else None,
            throttled=flags.throttled if flags else None,
            clock_synchronised=self.clock_synchronised(),
            process_rss_mb=self.process_rss_mb(),
            extra=extra,
            **{f.name: getattr(dyn, f.name) for f in dataclasses.fields(DynamicHealth)},
        )


# --------------------------------------------------------------------------- consumers


def health_values(snapshot: HealthSnapshot) -> dict[str, object]:
    """JSON-ready values keyed by :class:`HealthSnapshot` field name (``None`` = unknown).

    Datetimes become ISO-8601 UTC strings; floats are rounded to 3 decimals.
    """
    out: dict[str, object] = {}
    for f in dataclasses.fields(snapshot):
        value = getattr(snapshot, f.name)
        if isinstance(value, datetime):
            out[f.name] = isoformat_utc(value)
        elif isinstance(value, float):
            out[f.name] = round(value, 3) if math.isfinite(value) else None
        elif isinstance(value, dict):
            out[f.name] = dict(value)
        else:
            out[f.name] = value
    return out


def problems(snapshot: HealthSnapshot, config: HealthConfig) -> list[str]:
    """Human-readable problems in a snapshot (empty when healthy or unknown)."""
    found: list[str] = []
    if snapshot.disk_free_mb is not None and snapshot.disk_free_mb < config.min_free_disk_mb:
        found.append(
            f"low disk space: {snapshot.disk_free_mb:.0f} MB free"
            f" (minimum {config.min_free_disk_mb:.0f} MB)"
        )
    if snapshot.under_voltage:
        found.append("under-voltage now: use a better power supply or cable")
    if snapshot.throttled:
        found.append("CPU throttled or frequency capped (heat or power)")
    if snapshot.clock_synchronised is False:
        found.append("clock not synchronised (NTP)")
    if snapshot.meter_link is False:
        found.append("meter not answering")
    if snapshot.broker_connected is False:
        found.append("broker unreachable")
    return found


# --------------------------------------------------------------------------- the daemon's report


def daemon_health(
    *,
    clock: Clock,
    publisher: BridgePublisher,
    spool: Spool,
    meter: MeterSource | None,
    sensor: MainsSensor | None,
    ups: UpsSource | None = None,
) -> DynamicHealth:
    """What only the running daemon knows, read from its parts (``None`` for a missing part)."""
    age = None
    if meter is not None and meter.last_reading_monotonic is not None:
        age = max(0.0, clock.monotonic() - meter.last_reading_monotonic)
    return DynamicHealth(
        meter_link=bool(meter.link_up) if meter is not None else None,
        last_reading_age_s=age,
        broker_connected=publisher.connected,
        broker_reconnects=publisher.reconnects,
        spool_depth=spool.depth,
        spool_dropped=spool.dropped,
        flap_count=sensor.flap_count if sensor is not None else None,
        ups_link=ups.link_up if ups is not None else None,
    )


class HealthReport:
    """The retained ``health`` topic: every ``health.interval``, sooner after :meth:`soon`."""

    def __init__(
        self,
        monitor: HealthMonitor,
        publisher: BridgePublisher,
        dynamic: Callable[[], DynamicHealth],
        *,
        device_id: str,
    ) -> None:
        self._monitor = monitor
        self._publisher = publisher
        self._dynamic = dynamic
        self._device = device_id
        self._clock = monitor.clock
        self._next = self._clock.monotonic()

    def soon(self) -> None:
        """Report within :data:`HEALTH_SOON_S` (a link changed)."""
        self._next = min(self._next, self._clock.monotonic() + HEALTH_SOON_S)

    def tick(self, now: float) -> float:
        """Publish when due; return when the next report is due."""
        if now >= self._next:
            self._next = now + self._monitor.config.interval
            snapshot = self._monitor.snapshot(self._dynamic())
            payload = HealthPayload(self._device, health_values(snapshot)).encode()
            publisher = self._publisher
            publisher.retain(publisher.topics.health, lambda: payload, QOS_HEALTH)
        return self._next
