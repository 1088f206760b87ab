"""Wire-level meter simulators behind pseudo-terminals.

The same simulators serve the tests, the benchmark, the demo and
``meter: {type: simulated}``: the real driver opens :attr:`SimulatedMeter.port`
and cannot tell the difference from a meter on a USB adapter — bytes, CRCs,
timing at the configured baud rate, silence, unplugging.
"""

from __future__ import annotations

from bridge.meters.simulator._meter import DEFAULT_BAUD, FAULT_KINDS, PROTOCOLS, SimulatedMeter
from bridge.meters.simulator._physics import ElectricalModel, LoadProfile, Sample

__all__ = [
    "DEFAULT_BAUD",
    "FAULT_KINDS",
    "PROTOCOLS",
    "ElectricalModel",
    "LoadProfile",
    "Sample",
    "SimulatedMeter",
]
