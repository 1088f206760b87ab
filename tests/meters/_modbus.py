"""An independent CRC-16/Modbus for building and checking frames in tests."""

from __future__ import annotations

import struct


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(body: bytes) -> bytes:
    """``body`` + CRC, low byte first."""
    return body + struct.pack("<H", crc16(body))


def crc_ok(data: bytes) -> bool:
    return len(data) >= 4 and struct.pack("<H", crc16(data[:-2])) == data[-2:]


def registers_reply(address: int, registers: list[int], function: int = 4) -> bytes:
    data = struct.pack(f">{len(registers)}H", *registers)
    return frame(bytes([address, function, len(data)]) + data)
