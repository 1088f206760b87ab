"""Fleet identity: configured id, Pi serial, machine id, host name — in that order."""

from __future__ import annotations

from pathlib import Path

from bridge import identity
from bridge.config import parse_bridge_config

PI4_CPUINFO = """processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
Hardware	: BCM2835
Revision	: c03114
Serial		: 10000000a1b2c3d4
Model		: Raspberry Pi 4 Model B Rev 1.4
"""


def files(tmp_path: Path, cpuinfo: str = "", dt: bytes | None = None, mid: str = "") -> dict:
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    (tmp_path / "machine-id").write_text(mid)
    dt_path = tmp_path / "serial-number"
    if dt is not None:
        dt_path.write_bytes(dt)
    return {
        "cpuinfo": tmp_path / "cpuinfo",
        "dt_serial": dt_path,
        "machine": tmp_path / "machine-id",
        "hostname": "rack-a.example.org",
    }


def test_configured_id_wins(tmp_path: Path) -> None:
    paths = files(tmp_path, PI4_CPUINFO)
    assert identity.identify("berlin-rack-a", **paths) == ("berlin-rack-a", "config")


def test_pi_serial_from_cpuinfo(tmp_path: Path) -> None:
    paths = files(tmp_path, PI4_CPUINFO, mid="0123456789abcdef0123456789abcdef")
    assert identity.identify(None, **paths) == ("10000000a1b2c3d4", "pi-serial")


def test_pi_serial_from_the_device_tree_when_cpuinfo_lacks_it(tmp_path: Path) -> None:
    paths = files(tmp_path, "processor : 0\n", dt=b"00000000c0ffee42\x00")
    assert identity.identify(None, **paths) == ("c0ffee42", "pi-serial")


def test_machine_id_then_host_name(tmp_path: Path) -> None:
    mid = "0123456789ABCDEF0123456789abcdef\n"
    assert identity.identify(None, **files(tmp_path, mid=mid)) == ("0123456789ab", "machine-id")
    # an all-zero serial and an uninitialised machine id are no identities
    zero = files(tmp_path, "Serial : 0000000000000000\n", mid="uninitialized\n")
    assert identity.identify(None, **zero) == ("rack-a", "hostname")


def test_host_name_is_topic_safe_and_never_reserved() -> None:
    assert identity.hostname_id("my pi (2).local") == "my-pi--2"
    assert identity.hostname_id("clients") == "host-clients"
    assert identity.hostname_id("...") == "powerbridge"


def test_config_helpers() -> None:
    config = parse_bridge_config("device: {id: rack-b, name: Rack B}\n")
    assert identity.device_id(config) == "rack-b"
    assert identity.device_id_source(config) == "device.id in the configuration"
    assert identity.device_name(config) == "Rack B"
    unnamed = parse_bridge_config("device: {id: rack-c}\n")
    assert identity.device_name(unnamed) == "powerbridge rack-c"
