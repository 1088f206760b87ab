"""Eastron SDM120 (single phase) and SDM630 (three phase): Modbus-RTU, function 0x04.

Every quantity is an IEEE-754 float32 over two input registers, big-endian
(high word first).  Default baud: SDM120 2400, SDM630 9600.

SDM120: 0x0000 V, 0x0006 A, 0x000C W, 0x0012 VA, 0x0018 VAr, 0x001E PF,
0x0046 Hz, 0x0048 import kWh, 0x004A export kWh, 0x0156 total kWh.

SDM630: per phase V 0x0000/02/04, A 0x0006/08/0A, W 0x000C/0E/10,
VA 0x0012/14/16, VAr 0x0018/1A/1C, PF 0x001E/20/22; totals W 0x0034, VA 0x0038,
VAr 0x003C, PF 0x003E; Hz 0x0046, import/export kWh 0x0048/0x004A, total kWh 0x0156.

A :class:`~bridge.model.Reading` of an SDM630 describes the whole installation:
``voltage_v`` is phase L1 (the phase the bridge itself usually hangs on),
``current_a`` the sum of the three phase currents, power, power factor and
energy the meter's system totals.  ``energy_wh`` is *import* active energy.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from bridge.errors import MeterProtocolError
from bridge.meters._modbus import ModbusMeterDriver
from bridge.meters.base import check_range
from bridge.model import Quantities, Reading

MAX_KWH = 1e9  # far beyond any counter; only rejects garbage


def float32(registers: Sequence[int], offset: int) -> float:
    """The float32 in ``registers[offset:offset + 2]`` (high word first)."""
    if offset + 2 > len(registers):
        raise MeterProtocolError("reply too short for the registers asked for")
    raw = struct.pack(">HH", registers[offset], registers[offset + 1])
    value: float = struct.unpack(">f", raw)[0]
    # float32 carries about seven significant digits; do not pretend to more.
    return float(f"{value:.7g}") if math.isfinite(value) else value


def _finite(what: str, registers: Sequence[int], offset: int, low: float, high: float) -> float:
    return check_range(what, float32(registers, offset), low, high)


def _quantities(
    voltage_v: float,
    current_a: float,
    powers: tuple[str, Sequence[int], tuple[int, int, int, int], float],
    tail: Sequence[int],
) -> Quantities:
    """What both models publish: voltage and current as given; active, apparent and reactive
    power and power factor from ``powers`` (name prefix, registers, their four offsets, the
    power limit); frequency and import energy from the 4 ``tail`` registers at 0x0046."""
    prefix, registers, (w, va, var, pf), limit = powers
    return Quantities(
        voltage_v=voltage_v,
        current_a=current_a,
        power_w=_finite(f"{prefix}power", registers, w, -limit, limit),
        apparent_power_va=_finite(f"{prefix}apparent power", registers, va, -limit, limit),
        reactive_power_var=_finite(f"{prefix}reactive power", registers, var, -limit, limit),
        power_factor=_finite(f"{prefix}power factor", registers, pf, -1.01, 1.01),
        frequency_hz=_finite("frequency", tail, 0, 0, 100),
        energy_wh=round(_finite("import energy", tail, 2, 0, MAX_KWH) * 1000.0, 3),
    )


def decode_sdm120(block_a: Sequence[int], block_b: Sequence[int]) -> Quantities:
    """Registers 0x0000–0x001F and 0x0046–0x0049 of an SDM120 → quantities."""
    if len(block_a) != 32 or len(block_b) != 4:
        raise MeterProtocolError("unexpected number of registers from the SDM120")
    return _quantities(
        _finite("voltage", block_a, 0x00, 0, 1000),
        _finite("current", block_a, 0x06, -1000, 1000),
        ("", block_a, (0x0C, 0x12, 0x18, 0x1E), 1e6),
        block_b,
    )


def decode_sdm630(
    block_a: Sequence[int], block_b: Sequence[int], block_c: Sequence[int]
) -> Quantities:
    """Registers 0x0000–0x0023, 0x0034–0x003F and 0x0046–0x0049 of an SDM630 → quantities."""
    if len(block_a) != 36 or len(block_b) != 12 or len(block_c) != 4:
        raise MeterProtocolError("unexpected number of registers from the SDM630")
    phase_volts = [_finite("voltage", block_a, off, 0, 1000) for off in (0x00, 0x02, 0x04)]
    phase_amps = [_finite("current", block_a, off, -1000, 1000) for off in (0x06, 0x08, 0x0A)]
    for off in range(0x0C, 0x24, 2):  # per-phase W, VA, VAr, PF: validated, not published
        _finite("per-phase value", block_a, off, -1e6, 1e6)
    return _quantities(
        phase_volts[0],
        round(sum(abs(a) for a in phase_amps), 4),
        ("total ", block_b, (0x00, 0x04, 0x08, 0x0A), 3e6),
        block_c,
    )


_SDM_HINTS = (
    "A and B of the RS-485 pair are swapped, or the adapter is not an RS-485 adapter",
    "a different Modbus address was set on the meter's display: try --address",
    "a different baud rate was set on the meter's display: try --baud 2400, 9600 or 19200",
    "the meter has no mains: the SDM series is powered from the L/N it measures",
)


class Sdm120Driver(ModbusMeterDriver):
    """Eastron SDM120-Modbus, single phase, up to 45 A."""

    name = "sdm120"
    title = "Eastron SDM120"
    default_baud = 2400
    default_address = 1
    max_power_w = 45 * 276.0
    energy_resolution_wh = 10.0  # the meter counts in 0.01 kWh
    hints = _SDM_HINTS

    def read(self, channel: int = 1) -> Reading:
        self._check_channel(channel)
        block_a = self._read_input_registers(0x0000, 32)
        block_b = self._read_input_registers(0x0046, 4)
        return self._reading(channel, decode_sdm120(block_a, block_b))


class Sdm630Driver(ModbusMeterDriver):
    """Eastron SDM630-Modbus, three phase, up to 100 A per phase."""

    name = "sdm630"
    title = "Eastron SDM630"
    default_baud = 9600
    default_address = 1
    max_power_w = 3 * 100 * 276.0
    energy_resolution_wh = 10.0
    hints = _SDM_HINTS

    def read(self, channel: int = 1) -> Reading:
        self._check_channel(channel)
        block_a = self._read_input_registers(0x0000, 36)
        block_b = self._read_input_registers(0x0034, 12)
        block_c = self._read_input_registers(0x0046, 4)
        return self._reading(channel, decode_sdm630(block_a, block_b, block_c))
