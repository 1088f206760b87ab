"""Fleet identity: the device id defaults to the Pi's serial, else the machine id.

The id is one MQTT topic level, the broker user ``bridge-<id>`` and the Home
Assistant device; it must not change across reboots, reinstalls of the software
or a new SD card image.  In order:

1. ``device.id`` from the configuration (an operator's choice: ``rack-a``);
2. the Raspberry Pi's serial number: the ``Serial`` line of ``/proc/cpuinfo``, or
   ``/sys/firmware/devicetree/base/serial-number`` (kernels that do not print it);
   burnt into the SoC, it survives a new SD card;
3. the first 12 hex digits of ``/etc/machine-id`` (per installation: an SD card
   image cloned to several machines *without* regenerating it gives them the same
   id — set ``device.id`` or run ``systemd-machine-id-setup`` on each);
4. the host name, made topic-safe (last resort: renaming the host renames the device).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

from bridge.config import BridgeConfig
from bridge.mqtt.contract import CLIENTS_LEVEL

CPUINFO = Path("/proc/cpuinfo")
DT_SERIAL = Path("/sys/firmware/devicetree/base/serial-number")
MACHINE_ID = Path("/etc/machine-id")
_SERIAL = re.compile(r"^Serial\s*:\s*([0-9a-fA-F]+)\s*$", re.MULTILINE)
_HEX = re.compile(r"^[0-9a-fA-F]{4,32}$")

SOURCE_CONFIG = "config"
SOURCE_PI_SERIAL = "pi-serial"
SOURCE_MACHINE_ID = "machine-id"
SOURCE_HOSTNAME = "hostname"
SOURCE_TITLES = {
    SOURCE_CONFIG: "device.id in the configuration",
    SOURCE_PI_SERIAL: "the Raspberry Pi's serial number",
    SOURCE_MACHINE_ID: "/etc/machine-id",
    SOURCE_HOSTNAME: "the host name",
}


def _normalise_serial(value: str) -> str | None:
    value = value.strip().strip("\x00").strip()
    if not _HEX.match(value) or set(value) == {"0"}:
        return None
    return value.lower().lstrip("0") or None


def pi_serial(cpuinfo: Path = CPUINFO, dt_serial: Path = DT_SERIAL) -> str | None:
    """The Raspberry Pi's serial number (``None`` on other machines)."""
    try:
        match = _SERIAL.search(cpuinfo.read_text(encoding="ascii", errors="replace"))
    except OSError:
        match = None
    if match is not None:
        found = _normalise_serial(match.group(1))
        if found:
            return found
    try:
        return _normalise_serial(dt_serial.read_text(encoding="ascii", errors="replace"))
    except OSError:
        return None


def machine_id(path: Path = MACHINE_ID) -> str | None:
    """The first 12 hex digits of ``/etc/machine-id`` (stable per installation)."""
    try:
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{32}", value) or set(value) == {"0"}:
        return None  # "uninitialized" or all zeros: a template image, not an identity
    return value[:12].lower()


def hostname_id(name: str | None = None) -> str:
    """The host name as a topic-safe id (never the reserved ``clients``)."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", (name or socket.gethostname()).split(".")[0])[:64]
    host = host.strip("-") or "powerbridge"
    return f"host-{host}" if host == CLIENTS_LEVEL else host


def identify(
    config_id: str | None = None,
    *,
    cpuinfo: Path = CPUINFO,
    dt_serial: Path = DT_SERIAL,
    machine: Path = MACHINE_ID,
    hostname: str | None = None,
) -> tuple[str, str]:
    """``(device_id, source)``; ``source`` is a key of :data:`SOURCE_TITLES`."""
    if config_id:
        return config_id, SOURCE_CONFIG
    serial = pi_serial(cpuinfo, dt_serial)
    if serial:
        return serial, SOURCE_PI_SERIAL
    mid = machine_id(machine)
    if mid:
        return mid, SOURCE_MACHINE_ID
    return hostname_id(hostname), SOURCE_HOSTNAME


def default_device_id(cpuinfo: Path = CPUINFO, machine: Path = MACHINE_ID) -> str:
    """Pi serial, else machine id, else the host name (made topic-safe)."""
    return identify(cpuinfo=cpuinfo, machine=machine)[0]


def device_id(config: BridgeConfig) -> str:
    return identify(config.device.id)[0]


def device_id_source(config: BridgeConfig) -> str:
    """Where :func:`device_id` came from, in words (for ``powerbridge check``)."""
    return SOURCE_TITLES[identify(config.device.id)[1]]


def device_name(config: BridgeConfig) -> str:
    return config.device.name or f"powerbridge {device_id(config)}"
