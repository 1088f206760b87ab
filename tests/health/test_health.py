"""Health probes: parsers against captured files, the monitor on fixture trees and on this host."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.clock import ManualClock
from bridge.config.bridge import HealthConfig
from bridge.health import (
    DynamicHealth,
    HealthCommands,
    HealthMonitor,
    HealthPaths,
    health_values,
    parse_btime,
    parse_loadavg,
    parse_meminfo,
    parse_thermal_millidegrees,
    parse_throttled,
    parse_timedatectl,
    parse_uptime,
    parse_vm_rss,
    problems,
)
from bridge.model import HealthSnapshot
from bridge.mqtt.entities import BRIDGE_ENTITIES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "health"
PI4 = FIXTURES / "pi4"
X86 = FIXTURES / "x86-container"
NO_COMMANDS = HealthCommands(vcgencmd=None, timedatectl=None, adjtimex=False)


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


# --------------------------------------------------------------------------- parsers


def test_thermal_zone() -> None:
    assert parse_thermal_millidegrees(text(PI4 / "sys/class/thermal/thermal_zone0/temp")) == 48.686
    assert parse_thermal_millidegrees("-273000\n") is None  # sensor error code, not a value
    with pytest.raises(ValueError, match="invalid literal"):
        parse_thermal_millidegrees("N/A")


def test_meminfo_pi_and_x86() -> None:
    pct = parse_meminfo(text(PI4 / "proc/meminfo"))
    assert pct == pytest.approx(100 * (3880160 - 3410444) / 3880160)
    x86 = parse_meminfo(text(X86 / "proc/meminfo"))
    assert x86 is not None
    assert 0 < x86 < 100
    # Kernels without MemAvailable: free + buffers + cache.
    old = "MemTotal: 1000 kB\nMemFree: 500 kB\nBuffers: 100 kB\nCached: 150 kB\n"
    assert parse_meminfo(old) == pytest.approx(25.0)
    assert parse_meminfo("garbage") is None


def test_loadavg_uptime_btime_rss() -> None:
    assert parse_loadavg(text(PI4 / "proc/loadavg")) == 0.08
    assert parse_uptime(text(PI4 / "proc/uptime")) == 86523.17
    assert parse_btime(text(PI4 / "proc/stat")) == datetime.fromtimestamp(1763622000, UTC)
    assert parse_btime("cpu 1 2 3\n") is None
    assert parse_vm_rss(text(PI4 / "proc/self/status")) == pytest.approx(36864 * 1024 / 1e6)
    # The x86 captures parse too.
    assert parse_loadavg(text(X86 / "proc/loadavg")) >= 0
    assert parse_uptime(text(X86 / "proc/uptime")) > 0
    assert parse_btime(text(X86 / "proc/stat")) is not None
    assert (parse_vm_rss(text(X86 / "proc/self/status")) or 0) > 0


@pytest.mark.parametrize(
    ("name", "under_now", "occurred", "throttled"),
    [
        ("get_throttled-ok.txt", False, False, False),
        ("get_throttled-occurred.txt", False, True, False),
        ("get_throttled-under-voltage-now.txt", True, True, True),
        ("get_throttled-soft-temp-limit.txt", False, False, True),
    ],
)
def test_vcgencmd_get_throttled(
    name: str, under_now: bool, occurred: bool, throttled: bool
) -> None:
    flags = parse_throttled(text(FIXTURES / "vcgencmd" / name))
    assert (flags.under_voltage, flags.under_voltage_occurred, flags.throttled) == (
        under_now,
        occurred,
        throttled,
    )


def test_sysfs_get_throttled_has_no_prefix() -> None:
    path = PI4 / "sys/devices/platform/soc/soc:firmware/get_throttled"
    flags = parse_throttled(text(path))
    assert flags.raw == 0x50005
    assert flags.hex == "0x50005"
    with pytest.raises(ValueError, match="not get_throttled"):
        parse_throttled("frequency(48)=1500398464")


def test_timedatectl() -> None:
    assert parse_timedatectl("yes\n") is True
    assert parse_timedatectl("no\n") is False
    with pytest.raises(ValueError, match="NTPSynchronized"):
        parse_timedatectl("Failed to connect to bus")


# --------------------------------------------------------------------------- the monitor


def test_pi_fixture_tree(tmp_path: Path) -> None:
    vcgencmd = script(tmp_path, "vcgencmd", "echo throttled=0x50005")
    timedatectl = script(tmp_path, "timedatectl", "echo yes")
    clock = ManualClock()
    monitor = HealthMonitor(
        HealthConfig(),
        tmp_path,
        paths=HealthPaths.under(PI4),
        commands=HealthCommands(vcgencmd=(vcgencmd,), timedatectl=(timedatectl,), adjtimex=False),
        clock=clock,
        version="9.9.9",
    )
    dynamic = DynamicHealth(
        meter_link=True,
        last_reading_age_s=0.7,
        broker_connected=True,
        broker_reconnects=2,
        spool_depth=0,
        spool_dropped=0,
        flap_count=3,
    )
    snap = monitor.snapshot(dynamic)
    assert snap.time == clock.utcnow()
    assert snap.software_version == "9.9.9"
    assert snap.cpu_temperature_c == 48.686
    assert snap.load_1m == 0.08
    assert snap.memory_used_pct == pytest.approx(12.106, abs=0.01)
    assert snap.disk_free_mb is not None
    assert snap.disk_free_mb > 0
    assert snap.uptime_s == 86523.17
    assert snap.boot_time == datetime.fromtimestamp(1763622000, UTC)
    assert (snap.under_voltage, snap.under_voltage_occurred, snap.throttled) == (True, True, True)
    assert snap.clock_synchronised is True
    assert snap.process_rss_mb == pytest.approx(37.749, abs=0.001)
    assert (snap.meter_link, snap.broker_reconnects, snap.flap_count) == (True, 2, 3)
    assert snap.extra == {"throttled_flags": "0x50005"}


def test_sysfs_then_hwmon_when_vcgencmd_is_missing(tmp_path: Path) -> None:
    monitor = HealthMonitor(
        HealthConfig(),
        tmp_path,
        paths=HealthPaths.under(PI4),
        commands=HealthCommands(
            vcgencmd=(str(tmp_path / "no-such-vcgencmd"),), adjtimex=False, timedatectl=None
        ),
    )
    snap = monitor.snapshot()
    assert snap.under_voltage is True
    assert snap.extra["throttled_flags"] == "0x50005"
    assert snap.clock_synchronised is None

    # Newer kernel: no firmware sysfs file, only the rpi_volt hwmon device.
    tree = tmp_path / "tree"
    (tree / "sys/class/hwmon/hwmon1").mkdir(parents=True)
    (tree / "sys/class/hwmon/hwmon1/name").write_text("rpi_volt\n")
    (tree / "sys/class/hwmon/hwmon1/in0_lcrit_alarm").write_text("1\n")
    snap = HealthMonitor(
        HealthConfig(), tmp_path, paths=HealthPaths.under(tree), commands=NO_COMMANDS
    ).snapshot()
    assert snap.under_voltage is True
    assert snap.throttled is None
    assert snap.under_voltage_occurred is None


def test_failing_command_is_unknown(tmp_path: Path) -> None:
    broken = script(tmp_path, "vcgencmd", "echo 'VCHI initialization failed' >&2; exit 255")
    slow = script(tmp_path, "timedatectl", "sleep 5")
    monitor = HealthMonitor(
        HealthConfig(),
        tmp_path,
        paths=HealthPaths.under(tmp_path / "empty"),
        commands=HealthCommands(
            vcgencmd=(broken,), timedatectl=(slow,), adjtimex=False, timeout=0.2
        ),
    )
    assert monitor.throttling() is None
    assert monitor.clock_synchronised() is None


def test_empty_machine_is_all_unknown(tmp_path: Path) -> None:
    monitor = HealthMonitor(
        HealthConfig(),
        tmp_path / "missing" / "data",
        paths=HealthPaths.under(tmp_path / "none"),
        commands=NO_COMMANDS,
    )
    snap = monitor.snapshot()
    for name in (
        "cpu_temperature_c",
        "load_1m",
        "memory_used_pct",
        "uptime_s",
        "boot_time",
        "under_voltage",
        "throttled",
        "clock_synchronised",
        "process_rss_mb",
    ):
        assert getattr(snap, name) is None, name
    # The data dir does not exist yet: free space of its nearest existing parent.
    assert snap.disk_free_mb is not None


def test_garbage_files_are_unknown(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for rel in (
        "proc/meminfo",
        "proc/loadavg",
        "proc/uptime",
        "proc/stat",
        "proc/self/status",
        "sys/class/thermal/thermal_zone0/temp",
        "sys/devices/platform/soc/soc:firmware/get_throttled",
    ):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(b"\xff\xfe not what you expect\n")
    snap = HealthMonitor(
        HealthConfig(), tmp_path, paths=HealthPaths.under(tree), commands=NO_COMMANDS
    ).snapshot()
    assert snap.cpu_temperature_c is None
    assert snap.load_1m is None
    assert snap.memory_used_pct is None
    assert snap.uptime_s is None
    assert snap.under_voltage is None


def test_this_machine_never_raises(tmp_path: Path) -> None:
    """The real probes on this (non-Pi) machine: each a value or None."""
    snap = HealthMonitor(HealthConfig(), tmp_path).snapshot()
    values = health_values(snap)
    json.dumps(values)  # JSON-ready
    assert values["software_version"]
    if os.path.exists("/proc/meminfo"):
        assert snap.memory_used_pct is not None
        assert snap.uptime_s is not None
        assert snap.process_rss_mb is not None
    assert snap.disk_free_mb is not None
    for value in (snap.under_voltage, snap.clock_synchronised, snap.cpu_temperature_c):
        assert value is None or isinstance(value, bool | float)


# --------------------------------------------------------------------------- values, problems


def test_health_values_keys_are_snapshot_fields_and_cover_the_entity_table() -> None:
    snap = HealthSnapshot(
        time=datetime(2026, 5, 1, 8, 0, 0, 250000, tzinfo=UTC),
        software_version="1.2.3",
        cpu_temperature_c=48.6861,
        boot_time=datetime(2026, 4, 30, tzinfo=UTC),
        under_voltage=False,
        disk_free_mb=1234.56789,
        spool_depth=5,
        extra={"throttled_flags": "0x0"},
    )
    values = health_values(snap)
    assert values["time"] == "2026-05-01T08:00:00.250Z"
    assert values["boot_time"] == "2026-04-30T00:00:00.000Z"
    assert values["cpu_temperature_c"] == 48.686
    assert values["disk_free_mb"] == 1234.568
    assert values["under_voltage"] is False
    assert values["load_1m"] is None
    assert values["extra"] == {"throttled_flags": "0x0"}
    health_fields = {d.field for d in BRIDGE_ENTITIES if d.source == "health"}
    assert health_fields <= set(values)


def test_problems() -> None:
    config = HealthConfig(min_free_disk_mb=100)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    healthy = HealthSnapshot(
        time=now,
        software_version="x",
        disk_free_mb=5000,
        under_voltage=False,
        clock_synchronised=True,
    )
    assert problems(healthy, config) == []
    unknown = HealthSnapshot(time=now, software_version="x")
    assert problems(unknown, config) == []
    bad = HealthSnapshot(
        time=now,
        software_version="x",
        disk_free_mb=12,
        under_voltage=True,
        throttled=True,
        clock_synchronised=False,
        meter_link=False,
        broker_connected=False,
    )
    found = problems(bad, config)
    assert len(found) == 6
    assert found[0].startswith("low disk space: 12 MB free")
