"""Opening serial ports, with errors a person can act on.

Every driver opens its port here, so "not found", "permission denied" and "busy"
are explained the same way everywhere.  Ports are opened *exclusively* (an
advisory lock), so ``powerbridge meter probe`` cannot silently fight the running
bridge for the same meter.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Protocol

import serial

from bridge.errors import MeterDisconnectedError


class SerialLike(Protocol):
    """What the drivers use of a pyserial port (tests pass in-memory fakes)."""

    port: str | None
    baudrate: int
    timeout: float | None

    @property
    def is_open(self) -> bool: ...

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def reset_input_buffer(self) -> None: ...

    def reset_output_buffer(self) -> None: ...


class CountingSerial(serial.Serial):
    """A pyserial port that remembers how many bytes its last ``read`` returned.

    Lets the Modbus drivers tell a reply that stopped half-way (a timeout: "not in
    full") from one that arrived whole but wrong (a protocol error).
    """

    last_read_size = 0

    def read(self, size: int = 1) -> bytes:
        data = super().read(size)
        self.last_read_size = len(data)
        return data


def open_serial(port: str, baud: int, timeout: float) -> CountingSerial:
    """Open ``port`` 8N1 at ``baud``; raise :class:`MeterDisconnectedError` with a cause."""
    if not os.path.exists(port):
        raise MeterDisconnectedError(
            f"serial port {port} not found (unplugged, or a different name: "
            "run `powerbridge meter list`)"
        )
    try:
        return CountingSerial(
            port=port,
            baudrate=baud,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            timeout=timeout,
            write_timeout=max(1.0, timeout),
            exclusive=True,
        )
    except (serial.SerialException, OSError, ValueError) as exc:
        raise MeterDisconnectedError(explain_open_error(port, exc)) from exc


def explain_open_error(port: str, exc: BaseException) -> str:
    """One sentence on why ``port`` could not be opened and what to do about it."""
    code: Any = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.EACCES or "Permission denied" in text:
        return (
            f"permission denied on {port}: add the user to the dialout group "
            "(sudo usermod -aG dialout $USER, then log in again)"
        )
    if code == errno.EBUSY or "exclusively lock" in text or "busy" in text.lower():
        return (
            f"{port} is in use by another program (the bridge service? "
            "stop it with `sudo systemctl stop powerbridge`)"
        )
    if code == errno.ENOENT or "No such file" in text:
        return f"serial port {port} not found (unplugged? run `powerbridge meter list`)"
    return f"cannot open {port}: {text}"


def os_error(exc: BaseException) -> str:
    """``Input/output error`` rather than ``(5, 'Input/output error')`` (termios errors)."""
    args: tuple[object, ...] = tuple(getattr(exc, "args", ()))
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        return args[1]
    return str(exc) or type(exc).__name__
