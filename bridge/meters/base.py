"""The seam every power meter sits behind: :class:`MeterDriver`.

A driver speaks one wire protocol over one serial port.  It does three things —
``open()``, ``read(channel) -> Reading``, ``close()`` — and raises only three
kinds of error, all from :mod:`bridge.errors`:

* :class:`~bridge.errors.MeterTimeoutError` — no reply, or not all of it, within ``timeout``;
* :class:`~bridge.errors.MeterProtocolError` — a reply that is not a valid answer
  (checksum/CRC, length, NACK, Modbus exception, implausible value);
* :class:`~bridge.errors.MeterDisconnectedError` — the port is gone or cannot be opened.

Retrying, reconnecting and energy plausibility are *not* the driver's business:
:class:`bridge.meters.source.MeterSource` does them, in one place.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from typing import ClassVar, Self, TypedDict

from bridge.clock import Clock, SystemClock
from bridge.errors import MeterDisconnectedError, MeterProtocolError
from bridge.meters._serial import SerialLike, open_serial
from bridge.model import Quantities, Reading


class DriverOptions(TypedDict, total=False):
    """The options of every driver's constructor, for code that picks the driver by name."""

    baud: int | None
    address: int | None
    timeout: float
    clock: Clock | None


class MeterDriver(ABC):
    """One power meter on one serial port.

    >>> with create_driver("pzem004t", "/dev/ttyUSB0") as meter:
    ...     reading = meter.read()
    ...     reading.voltage_v
    230.1
    """

    name: ClassVar[str]
    """Driver name, as in ``meter.type`` and ``Reading.meter``."""
    title: ClassVar[str]
    """Human name of the meter, for messages."""
    default_baud: ClassVar[int]
    """The meter's factory baud rate."""
    default_address: ClassVar[int | None] = None
    """Default bus address (Modbus meters), ``None`` where the protocol has none."""
    channels: ClassVar[tuple[int, ...]] = (1,)
    """Channels ``read()`` accepts."""
    max_power_w: ClassVar[float]
    """The largest active power the meter can measure (for energy plausibility)."""
    energy_resolution_wh: ClassVar[float]
    """Smallest step of the energy counter, Wh."""
    hints: ClassVar[tuple[str, ...]] = ()
    """Likely causes when the meter does not answer, shown by ``powerbridge meter probe``."""

    def __init__(
        self,
        port: str,
        *,
        baud: int | None = None,
        address: int | None = None,
        timeout: float = 0.5,
        clock: Clock | None = None,
    ) -> None:
        self.port = port
        self.baud = baud or self.default_baud
        self.address = self.default_address if address is None else address
        self.timeout = timeout
        self.clock: Clock = clock or SystemClock()
        self._serial: SerialLike | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> None:
        """Open the serial port (and prepare the meter where its protocol needs it).

        Raises :class:`~bridge.errors.MeterDisconnectedError` when the port cannot be opened,
        and the other meter errors if preparing the meter fails (the port is then closed).
        """
        if self._serial is not None:
            return
        self.attach(open_serial(self.port, self.baud, self.timeout))

    def attach(self, transport: SerialLike) -> None:
        """Use an already open serial-like object (tests, or a bus shared by several meters)."""
        self._serial = transport
        try:
            self._prepare()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the port; safe to call twice and after a failure."""
        transport, self._serial = self._serial, None
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.close()

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    # -- reading -------------------------------------------------------------------------------

    @abstractmethod
    def read(self, channel: int = 1) -> Reading:
        """One reading of ``channel``, in SI units, ``None`` where the meter lacks a quantity."""

    def describe(self) -> str:
        """``pzem004t on /dev/ttyUSB0 (address 0xF8, 9600 baud)``: for messages."""
        where = f"{self.name} on {self.port} ("
        if self.address is not None:
            where += f"address {self.address} (0x{self.address:02X}), "
        return where + f"{self.baud} baud)"

    # -- for subclasses ------------------------------------------------------------------------

    def _prepare(self) -> None:  # noqa: B027 - optional hook, most protocols need nothing
        """Called once the port is open (the MCP39F511N enables its energy counters here)."""

    def _transport(self) -> SerialLike:
        if self._serial is None:
            raise MeterDisconnectedError(f"{self.describe()}: the port is not open")
        return self._serial

    def _check_channel(self, channel: int) -> None:
        if channel not in self.channels:
            raise ValueError(f"{self.name} has no channel {channel} (channels: {self.channels})")

    def _reading(self, channel: int, quantities: Quantities) -> Reading:
        """A :class:`Reading` of ``quantities``, stamped now from the driver's clock."""
        return Reading.of(
            quantities,
            time=self.clock.utcnow(),
            monotonic=self.clock.monotonic(),
            meter=self.name,
            channel=channel,
        )


def check_range(what: str, value: float, low: float, high: float) -> float:
    """``value`` if it is a finite number within ``low``–``high``; else a protocol error.

    A reply whose checksum happens to match but whose numbers are physically impossible
    is treated as corrupted: better a missed reading than a wrong one.
    """
    if not math.isfinite(value) or not low <= value <= high:
        raise MeterProtocolError(f"implausible {what} in reply: {value!r}")
    return value
