"""Candidate serial ports for a meter, and which driver fits each (``powerbridge meter list``)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BY_ID = Path("/dev/serial/by-id")

MODBUS_METERS = ("pzem004t", "sdm120", "sdm630")

USB_IDS: dict[tuple[int, int], tuple[str, tuple[str, ...]]] = {
    (0x04D8, 0x00DD): ("Microchip MCP2221 (MCP39F511N power monitor board)", ("mcp39f511n",)),
    (0x1A86, 0x7523): ("CH340 USB-serial (TTL or RS-485 adapter)", MODBUS_METERS),
    (0x1A86, 0x55D4): ("CH9102 USB-serial (TTL or RS-485 adapter)", MODBUS_METERS),
    (0x10C4, 0xEA60): ("CP210x USB-serial (TTL or RS-485 adapter)", MODBUS_METERS),
    (0x0403, 0x6001): ("FTDI FT232R USB-serial", MODBUS_METERS),
    (0x0403, 0x6015): ("FTDI FT-X USB-serial", MODBUS_METERS),
    (0x067B, 0x2303): ("Prolific PL2303 USB-serial", MODBUS_METERS),
}
"""USB VID:PID → (what it is, drivers that fit)."""

PI_UARTS = ("/dev/ttyAMA0", "/dev/ttyS0", "/dev/serial0")


@dataclass(frozen=True, slots=True)
class PortInfo:
    """One serial port that could have a meter on it."""

    device: str
    """The device node, e.g. ``/dev/ttyACM0``."""
    stable_path: str | None
    """A ``/dev/serial/by-id/...`` link to it: configure this one, it survives replugging."""
    vid_pid: str | None
    """``04D8:00DD``, or ``None`` for a port that is not USB."""
    description: str
    fits: tuple[str, ...] = field(default=())
    """Drivers that can work here (empty: unknown adapter, any driver might)."""

    @property
    def recommended_port(self) -> str:
        return self.stable_path or self.device

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fits"] = list(self.fits)
        out["recommended_port"] = self.recommended_port
        return out


def by_id_links(directory: Path = BY_ID) -> dict[str, str]:
    """Device node → its ``/dev/serial/by-id`` link (the first, sorted, if several)."""
    links: dict[str, str] = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return links
    for entry in entries:
        try:
            target = os.path.realpath(entry)
        except OSError:
            continue
        links.setdefault(target, str(entry))
    return links


def is_raspberry_pi(model: Path = Path("/proc/device-tree/model")) -> bool:
    try:
        return "Raspberry Pi" in model.read_text(errors="replace")
    except OSError:
        return False


def fits_for(vid: int | None, pid: int | None, device: str) -> tuple[str, tuple[str, ...]]:
    """What an adapter is and which drivers fit it."""
    if vid is not None and pid is not None and (vid, pid) in USB_IDS:
        return USB_IDS[(vid, pid)]
    if is_raspberry_pi() and (device in PI_UARTS or Path(device).name.startswith("ttyAMA")):
        return ("Raspberry Pi UART (GPIO 14/15, TTL level)", ("pzem004t",))
    if vid is not None:
        return ("USB serial adapter", ())
    return ("serial port", ())


def list_ports() -> list[PortInfo]:
    """Serial ports on this machine, USB meters first."""
    from serial.tools import list_ports as pyserial_ports

    links = by_id_links()
    ports: list[PortInfo] = []
    for info in pyserial_ports.comports():
        device = info.device
        vid, pid = info.vid, info.pid
        what, fits = fits_for(vid, pid, device)
        description = info.description if info.description not in (None, "n/a") else what
        if vid is not None and (vid, pid) in USB_IDS:
            description = f"{what} — {description}" if description != what else what
        ports.append(
            PortInfo(
                device=device,
                stable_path=links.get(os.path.realpath(device)),
                vid_pid=f"{vid:04X}:{pid:04X}" if vid is not None and pid is not None else None,
                description=description,
                fits=fits,
            )
        )
    ports.sort(key=lambda p: (p.vid_pid is None, not p.fits, p.device))
    return ports
