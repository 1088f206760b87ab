"""Fleet identity: the device id defaults to the Pi's serial, else the machine id."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from bridge.config import BridgeConfig

CPUINFO = Path("/proc/cpuinfo")
MACHINE_ID = Path("/etc/machine-id")
_SERIAL = re.compile(r"^Serial\s*:\s*([0-9a-fA-F]+)\s*$", re.MULTILINE)


def pi_serial(cpuinfo: Path = CPUINFO) -> str | None:
    """The Raspberry Pi's serial number from ``/proc/cpuinfo`` (``None`` elsewhere)."""
    try:
        match = _SERIAL.search(cpuinfo.read_text(encoding="ascii", errors="replace"))
    except OSError:
        return None
    if match is None or set(match.group(1)) == {"0"}:
        return None
    return match.group(1).lower().lstrip("0") or None


def machine_id(path: Path = MACHINE_ID) -> str | None:
    """The first 12 hex digits of ``/etc/machine-id`` (stable per installation)."""
    try:
        value = path.read_text(encoding="ascii").strip()
    except OSError:
        return None
    return value[:12].lower() if re.fullmatch(r"[0-9a-fA-F]{32}", value) else None


def default_device_id(cpuinfo: Path = CPUINFO, machine: Path = MACHINE_ID) -> str:
    """Pi serial, else machine id, else the host name (made topic-safe)."""
    found = pi_serial(cpuinfo) or machine_id(machine)
    if found:
        return found
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:64]
    return host or "powerbridge"


def device_id(config: BridgeConfig) -> str:
    return config.device.id or default_device_id()


def device_name(config: BridgeConfig) -> str:
    return config.device.name or f"powerbridge {device_id(config)}"
