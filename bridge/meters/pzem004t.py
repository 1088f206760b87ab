"""PZEM-004T v3.0: Modbus-RTU over a TTL UART, 9600 8N1.

Input registers 0x0000–0x0009 (function 0x04), read in one request; 32-bit
values are sent *low word first*, each word big-endian:

====== ======================= =========
reg    quantity                unit
====== ======================= =========
0x0000 voltage                 0.1 V
0x0001 current, low word       0.001 A
0x0002 current, high word
0x0003 power, low word         0.1 W
0x0004 power, high word
0x0005 energy, low word        1 Wh
0x0006 energy, high word
0x0007 frequency               0.1 Hz
0x0008 power factor            0.01
0x0009 alarm                   0xFFFF on, 0x0000 off
====== ======================= =========

The reply is 25 bytes with CRC-16/Modbus (low byte first).  Slave addresses are
0x01–0xF7; 0xF8 is the general address for a single meter on the line (our
default).  The meter is powered by the mains it measures: during an outage it
goes silent, and its energy counter may jump when the voltage drops to 0 — the
sampling loop (:mod:`bridge.meters.energy`) never publishes such a jump.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.errors import MeterProtocolError
from bridge.meters._modbus import ModbusMeterDriver, u32_low_word_first
from bridge.meters.base import check_range
from bridge.model import Quantities, Reading

GENERAL_ADDRESS = 0xF8
REGISTER_COUNT = 10
ALARM_ON = 0xFFFF


def decode_registers(registers: Sequence[int]) -> Quantities:
    """The ten input registers → quantities; raises :class:`MeterProtocolError` on nonsense."""
    if len(registers) != REGISTER_COUNT:
        raise MeterProtocolError(f"expected {REGISTER_COUNT} registers, got {len(registers)}")
    r = list(registers)
    if r[9] not in (0, ALARM_ON):
        raise MeterProtocolError(f"implausible alarm register in reply: 0x{r[9]:04X}")
    return Quantities(
        voltage_v=round(check_range("voltage", r[0] / 10, 0, 1000), 1),
        current_a=round(check_range("current", u32_low_word_first(r[1], r[2]) / 1000, 0, 1000), 3),
        power_w=round(check_range("power", u32_low_word_first(r[3], r[4]) / 10, 0, 1e6), 1),
        energy_wh=float(u32_low_word_first(r[5], r[6])),
        frequency_hz=round(check_range("frequency", r[7] / 10, 0, 100), 1),
        power_factor=round(check_range("power factor", r[8] / 100, 0, 1), 2),
        alarm=r[9] == ALARM_ON,
    )


class Pzem004tDriver(ModbusMeterDriver):
    """Peacefair PZEM-004T v3.0 (10 A or 100 A version)."""

    name = "pzem004t"
    title = "PZEM-004T v3.0"
    default_baud = 9600
    default_address = GENERAL_ADDRESS
    max_power_w = 100 * 260.0  # 100 A version at 260 V, the top of its voltage range
    energy_resolution_wh = 1.0
    hints = (
        "the meter is not powered: the PZEM-004T takes its power from the mains it measures, "
        "so it is silent during an outage or with the AC side unconnected",
        "TX and RX are swapped, or the adapter's logic level does not match (5 V vs 3.3 V)",
        "a different slave address was programmed: try --address 1 (or 0xF8 for any single "
        "meter on the line)",
        "a wrong baud rate: the PZEM-004T v3.0 speaks 9600 8N1 only",
    )

    def read(self, channel: int = 1) -> Reading:
        self._check_channel(channel)
        registers = self._read_input_registers(0x0000, REGISTER_COUNT)
        return self._reading(channel, decode_registers(registers))
