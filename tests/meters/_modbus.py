"""An independent CRC-16/Modbus for building and checking frames in tests."""

from __future__ import annotations

import struct


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _table()


def crc16(data: bytes) -> int:
    """CRC-16/Modbus (reflected 0xA001, init 0xFFFF), table-driven."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def frame(body: bytes) -> bytes:
    """``body`` + CRC, low byte first."""
    return body + struct.pack("<H", crc16(body))


def crc_ok(data: bytes) -> bool:
    return len(data) >= 4 and struct.pack("<H", crc16(data[:-2])) == data[-2:]


def registers_reply(address: int, registers: list[int], function: int = 4) -> bytes:
    data = struct.pack(f">{len(registers)}H", *registers)
    return frame(bytes([address, function, len(data)]) + data)
