"""Modbus-RTU meters, framed by minimalmodbus over our own pyserial port.

minimalmodbus builds requests, computes and checks CRC-16/Modbus, predicts the
reply length and keeps the 3.5-character silence between frames.  This module
only opens the port (so errors are explained the same way for every meter) and
translates minimalmodbus's exceptions into the three meter errors.
"""

from __future__ import annotations

import re
import termios

import minimalmodbus
import serial

from bridge.errors import MeterDisconnectedError, MeterProtocolError, MeterTimeoutError
from bridge.meters._serial import os_error
from bridge.meters.base import MeterDriver

READ_INPUT_REGISTERS = 0x04


class ModbusMeterDriver(MeterDriver):
    """Base of the Modbus-RTU drivers (PZEM-004T, Eastron SDM)."""

    _instrument: minimalmodbus.Instrument | None = None

    def _prepare(self) -> None:
        address = self.default_address if self.address is None else self.address
        instrument = minimalmodbus.Instrument(self._transport(), address or 1)
        instrument.clear_buffers_before_each_transaction = True
        self._instrument = instrument

    def close(self) -> None:
        self._instrument = None
        super().close()

    def _read_input_registers(self, start: int, count: int) -> list[int]:
        """Function 0x04; every failure becomes a meter error that says what happened."""
        instrument = self._instrument
        if instrument is None:
            raise MeterDisconnectedError(f"{self.describe()}: the port is not open")
        transport = self._transport()
        expected = 5 + 2 * count  # address, function, byte count, data, CRC (2)
        try:
            registers: list[int] = instrument.read_registers(start, count, READ_INPUT_REGISTERS)
        except minimalmodbus.NoResponseError as exc:
            raise MeterTimeoutError(
                f"no answer from the {self.describe()} within {self.timeout:g} s"
            ) from exc
        except minimalmodbus.SlaveReportedException as exc:
            raise MeterProtocolError(
                f"the {self.describe()} refused to read registers "
                f"0x{start:04X}+{count}: {_slave_error(exc)}"
            ) from exc
        except minimalmodbus.ModbusException as exc:
            got = getattr(transport, "last_read_size", 0)
            if 0 < got < expected:
                raise MeterTimeoutError(
                    f"incomplete reply from the {self.describe()}: {got} of {expected} bytes "
                    f"within {self.timeout:g} s"
                ) from exc
            raise MeterProtocolError(_invalid_reply(self.describe(), exc)) from exc
        except serial.SerialTimeoutException as exc:
            raise MeterTimeoutError(f"cannot send to the {self.describe()}: {exc}") from exc
        except (serial.SerialException, OSError, termios.error) as exc:
            raise MeterDisconnectedError(f"lost the {self.describe()}: {os_error(exc)}") from exc
        except (ValueError, TypeError) as exc:  # minimalmodbus decoding a malformed reply
            raise MeterProtocolError(f"invalid reply from the {self.describe()}: {exc}") from exc
        if len(registers) != count:  # pragma: no cover - minimalmodbus checks the length
            raise MeterProtocolError(f"expected {count} registers, got {len(registers)}")
        return registers


_WRONG_ADDRESS = re.compile(r"Wrong return slave address: (\d+) instead of (\d+)")


def _invalid_reply(where: str, exc: BaseException) -> str:
    """minimalmodbus's complaint, made actionable where we can (an unexpected address)."""
    wrong = _WRONG_ADDRESS.search(str(exc))
    if wrong:
        answered, asked = int(wrong.group(1)), int(wrong.group(2))
        return (
            f"the meter answered from address {answered} (0x{answered:02X}) to a request for "
            f"address {asked} (0x{asked:02X}) on the {where}: set meter.address: {answered}"
        )
    return f"invalid reply from the {where}: {exc}"


def _slave_error(exc: BaseException) -> str:
    """minimalmodbus says "Slave reported illegal data address"; we say "meter reported ..."."""
    return str(exc).replace("Slave reported", "meter reported") or type(exc).__name__


def u32_low_word_first(low: int, high: int) -> int:
    """Two 16-bit registers, low word first (PZEM-004T), as one unsigned 32-bit number."""
    return (high << 16) | low
