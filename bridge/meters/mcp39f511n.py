"""Microchip MCP39F511N: dual-channel power monitor, its own framed protocol over UART/USB-CDC.

The ADM00706 demonstration board (a two-socket power strip) appears over USB
as ``/dev/ttyACM*``, VID:PID 04D8:00DD, 115200 8N1.

Wire format (datasheet DS20005473B, section 4 "Serial interface"):

* request: ``A5``, total frame length (header and checksum included), command
  bytes, checksum = sum of all preceding bytes mod 256.  Commands used here:
  ``41 hi lo`` set address pointer, ``4E n`` register read of ``n`` bytes,
  ``4D n data…`` register write;
* reply to a read: ``06`` (ACK), total length, data, checksum (sum of the
  preceding bytes mod 256); to a write: ``06`` alone; ``15`` = NACK, ``51`` = the
  meter's checksum of our request failed.

Registers are little-endian.  Table 6-1 of DS20005473B (output registers):
0x0002 system status u16, 0x0006 voltage RMS u16, 0x0008 line frequency u16,
0x000A/0x000C power factor ch1/ch2 s16, 0x000E/0x0012 current RMS ch1/ch2 u32,
0x0016/0x001A active power ch1/ch2 u32, 0x001E/0x0022 reactive power u32,
0x0026/0x002A apparent power u32, 0x002E/0x0036 import active energy ch1/ch2 u64.
Configuration: 0x00A0 system configuration u32, 0x00A8 accumulation interval
parameter u16, 0x00AE/0x00BE range registers.

Scaling with the factory calibration of the board (DS20005473B: RMS current and
voltage section 5.4, energy accumulation 5.6, active power 5.7, power factor 5.8,
reactive power 5.9, system status register 6.3; the decimal places follow from the
Range registers, which the driver leaves as they are):

* voltage 0.1 V; line frequency 0.001 Hz; power factor signed, 2^-15 per LSB;
* current RMS 0.1 mA (0.0001 A) per LSB;
* active, reactive and apparent power 0.01 W (var, VA) per LSB — active and reactive
  are magnitudes, their signs are bits 4–7 of the system status register;
* import active energy accumulator 1 mWh per LSB.  The accumulators run only while
  their enable bits (8 and 9 of the system configuration register 0x00A0) are set;
  :meth:`Mcp39f511nDriver.open` sets them, in RAM only (nothing is saved to flash).

The output registers are refreshed once per *accumulation interval* of 2^N line
cycles, N being the Accumulation Interval Parameter register 0x00A8 (Table 6-1;
the board ships with N = 4: 16 cycles, 320 ms at 50 Hz).  Reading faster than that
returns the same values; the driver reads N at open and reports it as
:attr:`Mcp39f511nDriver.update_interval_s`.

The scale factors are constants below (``*_PER_LSB``), in one place: a board
recalibrated with different Range registers needs only those changed.
"""

from __future__ import annotations

import struct
import termios

import serial

from bridge.errors import MeterDisconnectedError, MeterProtocolError, MeterTimeoutError
from bridge.meters._serial import os_error
from bridge.meters.base import MeterDriver, check_range
from bridge.model import Quantities, Reading

HEADER = 0xA5
ACK = 0x06
NACK = 0x15
CSFAIL = 0x51
SET_ADDRESS_POINTER = 0x41
REGISTER_READ = 0x4E
REGISTER_WRITE = 0x4D
MAX_READ = 32
"""The largest register read we ask for in one frame (the reply fits the chip's buffer)."""

SYSTEM_STATUS = 0x0002
BLOCK1 = (0x0002, 32)
"""status, version, voltage, frequency, PF1, PF2, I1, I2, P1, P2, Q1."""
BLOCK2 = (0x0022, 28)
"""Q2, S1, S2, import energy ch1 (u64), import energy ch2 (u64)."""
SYSTEM_CONFIGURATION = 0x00A0
ACCUMULATION_INTERVAL = 0x00A8
ENERGY_ENABLE_BITS = (1 << 8) | (1 << 9)
"""System configuration bits enabling the energy accumulators of channel 1 and 2."""

VOLTS_PER_LSB = 0.1
HERTZ_PER_LSB = 0.001
AMPS_PER_LSB = 0.0001
WATTS_PER_LSB = 0.01
WH_PER_LSB = 0.001
PF_PER_LSB = 1 / 32768

# System status bits: 1 = positive (import / inductive), 0 = negative.
SIGN_ACTIVE = {1: 1 << 4, 2: 1 << 6}
SIGN_REACTIVE = {1: 1 << 5, 2: 1 << 7}


def checksum(data: bytes) -> int:
    """Sum of ``data`` mod 256 (both directions use it)."""
    return sum(data) & 0xFF


def build_frame(commands: bytes) -> bytes:
    """``A5 len commands… checksum`` with ``len`` counting the whole frame."""
    body = bytes([HEADER, len(commands) + 3]) + commands
    return body + bytes([checksum(body)])


def read_request(address: int, count: int) -> bytes:
    """Set the address pointer to ``address`` and read ``count`` bytes."""
    if not 1 <= count <= MAX_READ:
        raise ValueError(f"a register read is 1–{MAX_READ} bytes, not {count}")
    pointer = bytes([SET_ADDRESS_POINTER, address >> 8, address & 0xFF])
    return build_frame(pointer + bytes([REGISTER_READ, count]))


def write_request(address: int, data: bytes) -> bytes:
    """Set the address pointer to ``address`` and write ``data`` there."""
    header = bytes([SET_ADDRESS_POINTER, address >> 8, address & 0xFF, REGISTER_WRITE, len(data)])
    return build_frame(header + data)


def parse_read_reply(reply: bytes, count: int) -> bytes:
    """The ``count`` data bytes of a read reply; :class:`MeterProtocolError` if it is not one."""
    if not reply:
        raise MeterProtocolError("empty reply")
    first = reply[0]
    if first == NACK:
        raise MeterProtocolError("the meter answered NACK (command not understood)")
    if first == CSFAIL:
        raise MeterProtocolError("the meter reports a checksum failure of our request")
    if first != ACK:
        raise MeterProtocolError(f"reply starts with 0x{first:02X}, not ACK (0x06)")
    expected = count + 3
    if len(reply) != expected:
        raise MeterProtocolError(f"reply is {len(reply)} bytes, expected {expected}")
    if reply[1] != expected:
        raise MeterProtocolError(f"reply length byte says {reply[1]}, expected {expected}")
    if checksum(reply[:-1]) != reply[-1]:
        raise MeterProtocolError(
            f"reply checksum 0x{reply[-1]:02X} should be 0x{checksum(reply[:-1]):02X}"
        )
    return reply[2:-1]


def parse_write_reply(reply: bytes) -> None:
    """A write is answered with a lone ACK."""
    if reply[:1] == bytes([ACK]) and len(reply) == 1:
        return
    if reply[:1] == bytes([NACK]):
        raise MeterProtocolError("the meter refused the register write (NACK)")
    if reply[:1] == bytes([CSFAIL]):
        raise MeterProtocolError("the meter reports a checksum failure of our write")
    raise MeterProtocolError(f"unexpected reply to a register write: {reply.hex(' ')}")


def decode_blocks(block1: bytes, block2: bytes, channel: int) -> Quantities:
    """The two register blocks (0x0002+32, 0x0022+28) → quantities of ``channel``."""
    if len(block1) != BLOCK1[1] or len(block2) != BLOCK2[1]:
        raise MeterProtocolError("register blocks of the wrong size")
    if channel not in (1, 2):
        raise ValueError(f"the MCP39F511N has channels 1 and 2, not {channel}")
    status, _version, volts, freq, pf1, pf2 = struct.unpack_from("<HHHHhh", block1, 0)
    i1, i2, p1, p2, q1 = struct.unpack_from("<IIIII", block1, 12)
    q2, s1, s2 = struct.unpack_from("<III", block2, 0)
    e1, e2 = struct.unpack_from("<QQ", block2, 12)
    current, active, reactive, apparent, pf, energy = (
        (i1, p1, q1, s1, pf1, e1) if channel == 1 else (i2, p2, q2, s2, pf2, e2)
    )
    active_sign = 1 if status & SIGN_ACTIVE[channel] else -1
    reactive_sign = 1 if status & SIGN_REACTIVE[channel] else -1
    return Quantities(
        voltage_v=round(check_range("voltage", volts * VOLTS_PER_LSB, 0, 1000), 1),
        frequency_hz=round(check_range("frequency", freq * HERTZ_PER_LSB, 0, 100), 3),
        power_factor=round(pf * PF_PER_LSB, 5),
        current_a=round(check_range("current", current * AMPS_PER_LSB, 0, 1000), 4),
        power_w=active_sign * round(check_range("power", active * WATTS_PER_LSB, 0, 1e6), 2),
        reactive_power_var=reactive_sign
        * round(check_range("reactive power", reactive * WATTS_PER_LSB, 0, 1e6), 2),
        apparent_power_va=round(check_range("apparent power", apparent * WATTS_PER_LSB, 0, 1e6), 2),
        energy_wh=round(energy * WH_PER_LSB, 3),
    )


class Mcp39f511nDriver(MeterDriver):
    """Microchip MCP39F511N (ADM00706 demonstration board over USB)."""

    name = "mcp39f511n"
    title = "Microchip MCP39F511N"
    default_baud = 115200
    channels = (1, 2)
    max_power_w = 20 * 250.0  # well above what a two-socket board carries
    energy_resolution_wh = WH_PER_LSB
    hints = (
        "the board is not plugged in, or the USB cable is charge-only "
        "(`lsusb` should list 04d8:00dd)",
        "another program holds the port (the Microchip GUI, a second bridge)",
        "a wrong baud rate: the board speaks 115200 8N1 unless reconfigured",
    )

    accumulation_interval_n: int | None = None
    """Register 0x00A8 as read at open: the values refresh every 2^N line cycles."""

    @property
    def update_interval_s(self) -> float | None:
        """How often the meter refreshes its outputs (at 50 Hz), once known."""
        n = self.accumulation_interval_n
        return None if n is None else (2**n) / 50.0

    def _prepare(self) -> None:
        config = struct.unpack("<I", self._read_block(SYSTEM_CONFIGURATION, 4))[0]
        self.accumulation_interval_n = struct.unpack(
            "<H", self._read_block(ACCUMULATION_INTERVAL, 2)
        )[0]
        if config & ENERGY_ENABLE_BITS != ENERGY_ENABLE_BITS:
            new = config | ENERGY_ENABLE_BITS
            self._write_block(SYSTEM_CONFIGURATION, struct.pack("<I", new))

    def read(self, channel: int = 1) -> Reading:
        self._check_channel(channel)
        block1 = self._read_block(*BLOCK1)
        block2 = self._read_block(*BLOCK2)
        return self._reading(channel, decode_blocks(block1, block2, channel))

    # -- transactions --------------------------------------------------------------------------

    def _read_block(self, address: int, count: int) -> bytes:
        reply = self._transact(read_request(address, count), count + 3)
        return parse_read_reply(reply, count)

    def _write_block(self, address: int, data: bytes) -> None:
        parse_write_reply(self._transact(write_request(address, data), 1))

    def _transact(self, request: bytes, expected: int) -> bytes:
        transport = self._transport()
        try:
            transport.reset_input_buffer()
            transport.write(request)
            reply = transport.read(expected)
        except serial.SerialTimeoutException as exc:
            raise MeterTimeoutError(f"cannot send to the {self.describe()}: {exc}") from exc
        except (serial.SerialException, OSError, termios.error) as exc:
            raise MeterDisconnectedError(f"lost the {self.describe()}: {os_error(exc)}") from exc
        if not reply:
            raise MeterTimeoutError(
                f"no answer from the {self.describe()} within {self.timeout:g} s"
            )
        if len(reply) < expected and reply[0] == ACK:
            raise MeterTimeoutError(
                f"incomplete reply from the {self.describe()}: {len(reply)} of {expected} "
                f"bytes within {self.timeout:g} s"
            )
        return reply
