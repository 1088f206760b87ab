"""Power meters over serial: one module per wire protocol, simulators, the sampling loop.

* :class:`~bridge.meters.base.MeterDriver` — the seam (``open``, ``read``, ``close``);
* :func:`create_driver` / :data:`DRIVERS` — drivers by ``meter.type`` name;
* :mod:`bridge.meters.simulator` — wire-level simulators behind pseudo-terminals;
* :class:`~bridge.meters.source.MeterSource` — the sampling thread (reconnect,
  energy guard), built from the configuration by
  :func:`~bridge.meters.source.create_meter_source`.
"""

from __future__ import annotations

from typing import Unpack

from bridge.meters.base import DriverOptions, MeterDriver
from bridge.meters.mcp39f511n import Mcp39f511nDriver
from bridge.meters.pzem004t import Pzem004tDriver
from bridge.meters.sdm import Sdm120Driver, Sdm630Driver
from bridge.model import Quantities

DRIVERS: dict[str, type[MeterDriver]] = {
    cls.name: cls for cls in (Mcp39f511nDriver, Pzem004tDriver, Sdm120Driver, Sdm630Driver)
}
"""Driver classes by name; each has ``default_baud`` (and ``default_address`` for Modbus)."""


def create_driver(meter_type: str, port: str, **options: Unpack[DriverOptions]) -> MeterDriver:
    """A driver for ``meter_type`` on ``port`` (not opened yet); ``ValueError`` if unknown.

    ``options`` are the driver constructor's (:class:`~bridge.meters.base.DriverOptions`).
    """
    try:
        cls = DRIVERS[meter_type]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise ValueError(f"unknown meter type {meter_type!r} (known: {known})") from None
    return cls(port, **options)


__all__ = ["DRIVERS", "MeterDriver", "Quantities", "create_driver"]
