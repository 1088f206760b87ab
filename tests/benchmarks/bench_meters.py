"""Meter read rate and CPU time per reading, each driver against its simulator.

The simulators emulate the wire: every byte takes 10 bit times at the meter's baud rate in
both directions, so the rate measured here is the rate a real line allows (minus the real
meter's own thinking time, which the simulators leave at zero).

Figures per protocol:

* ``readings_per_s`` — sustained ``driver.read()`` rate over ``seconds``;
* ``wire_limit_per_s`` — what the bytes alone allow: ``baud / 10 / wire_bytes_per_reading``;
* ``driver_cpu_ms_per_reading`` — CPU time of the reading thread per reading (the driver,
  pyserial, minimalmodbus);
* ``process_cpu_ms_per_reading`` — the whole process per reading, simulator thread included;
* ``target_per_s`` — the rate this machine must reach (PZEM-004T 20/s, MCP39F511N 100/s).

Run: ``./dev bench meters`` (or ``.venv/bin/python -m tests.benchmarks meters``).
"""

from __future__ import annotations

import time
from typing import Any

from bridge.meters import create_driver
from bridge.meters.simulator import SimulatedMeter

WIRE_BYTES_PER_READING = {
    "pzem004t": 8 + 25,  # one read of 10 input registers
    "mcp39f511n": (8 + 35) + (8 + 31),  # two register reads: 32 and 28 bytes
    "sdm120": (8 + 69) + (8 + 13),  # 32 registers, then 4
    "sdm630": (8 + 77) + (8 + 29) + (8 + 13),  # 36, 12 and 4 registers
}
TARGETS = {"pzem004t": 20.0, "mcp39f511n": 100.0}


def measure(protocol: str, seconds: float) -> dict[str, Any]:
    with SimulatedMeter(protocol, seed=1) as sim, create_driver(protocol, sim.port) as driver:
        driver.read()  # warm up: open, first frame
        count = 0
        thread_cpu, process_cpu = time.thread_time(), time.process_time()
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            driver.read()
            count += 1
        elapsed = time.perf_counter() - started
        thread_cpu = time.thread_time() - thread_cpu
        process_cpu = time.process_time() - process_cpu
        baud = sim.baud
    wire = WIRE_BYTES_PER_READING[protocol]
    result: dict[str, Any] = {
        "baud": baud,
        "readings": count,
        "seconds": round(elapsed, 3),
        "readings_per_s": round(count / elapsed, 1),
        "wire_bytes_per_reading": wire,
        "wire_limit_per_s": round(baud / 10 / wire, 1),
        "driver_cpu_ms_per_reading": round(thread_cpu / count * 1000, 3),
        "process_cpu_ms_per_reading": round(process_cpu / count * 1000, 3),
    }
    if protocol in TARGETS:
        result["target_per_s"] = TARGETS[protocol]
        result["meets_target"] = result["readings_per_s"] >= TARGETS[protocol]
    return result


def run(smoke: bool) -> dict[str, Any]:
    seconds = 0.15 if smoke else 5.0
    return {
        "seconds_per_protocol": seconds,
        "protocols": {p: measure(p, seconds) for p in WIRE_BYTES_PER_READING},
    }
