"""Outage latency: from the mains edge at the bridge to the shutdown client's decision.

The real bridge daemon runs in this process with its mains pin on gpiozero's MockFactory
(``meter.type: none``); a private Mosquitto on loopback carries its retained ``mains``
message; one real shutdown client runtime with its paho listener runs in a child process
(``probe_clients``).  For each outage the pin is driven low, and the latency is the time
from just before the pin changed to the moment the client's ``evaluate()`` returned a
*counting* decision (it has seen the outage and started its countdown); then the pin is
driven high and the restore is timed to the *idle* decision (countdown cancelled).

Two configurations of the bridge's confirmation window (``mains.confirm_off`` /
``confirm_on``):

* ``transport``: 0 / 0 — the latency of the chain itself (target p99 ≤ 20 ms);
* ``default``: 0.5 s / 2 s — what a user gets out of the box; the window is reported
  separately and subtracted in ``after_window``.

The edge times are random in phase (a random pause of 20–120 ms between a decision and
the next edge), so nothing lines up with a timer.  ``CLOCK_MONOTONIC`` is one clock for both
processes.
"""

from __future__ import annotations

import random
import time
from typing import Any

from tests.benchmarks._rig import (
    Decisions,
    InProcessBridge,
    ProbeProcess,
    cleanup,
    load_average,
    logs_to,
    start_broker,
    stderr_tail,
    summary_ms,
    work_dir,
)

CLIENT = "bench-pc"
TARGET_P99_MS = 20.0
DEFAULT_WINDOW = (0.5, 2.0)


def measure(
    outages: int, *, confirm_off: float, confirm_on: float, seed: int = 11
) -> dict[str, Any]:
    """``outages`` outage/restore cycles; latencies to the client's decisions."""
    rng = random.Random(seed)
    work = work_dir("bench-latency-")
    broker = start_broker(work, [CLIENT])
    decisions = Decisions()
    bridge: InProcessBridge | None = None
    probe: ProbeProcess | None = None
    off: list[float] = []
    on: list[float] = []
    with logs_to(work / "bridge.log"):
        try:
            bridge = InProcessBridge(
                broker, work, confirm_off=confirm_off, confirm_on=confirm_on
            ).start()
            probe = ProbeProcess(broker, work, [CLIENT], decisions, name="probe")
            try:
                decisions.wait_ready([CLIENT], 30 + confirm_on)
            except (TimeoutError, RuntimeError) as exc:
                raise RuntimeError(f"{exc}\n{stderr_tail(work, 'probe')}") from None
            limit = 10 + confirm_off + confirm_on
            for n in range(1, outages + 1):
                time.sleep(rng.uniform(0.02, 0.12))
                edge = bridge.edge(on=False)
                (seen,) = decisions.wait([CLIENT], "counting", n, limit)
                off.append(seen - edge)
                time.sleep(rng.uniform(0.02, 0.12))
                edge = bridge.edge(on=True)
                (seen,) = decisions.wait([CLIENT], "idle", n, limit)
                on.append(seen - edge)
            load = load_average()
        finally:
            if probe is not None:
                probe.stop()
            if bridge is not None:
                bridge.stop()
            broker.kill()
            cleanup(work)
    return {
        "confirm_off_s": confirm_off,
        "confirm_on_s": confirm_on,
        "outage_to_counting_ms": summary_ms(off),
        "restore_to_cancel_ms": summary_ms(on),
        "after_window": {
            "outage_to_counting_ms": summary_ms([x - confirm_off for x in off]),
            "restore_to_cancel_ms": summary_ms([x - confirm_on for x in on]),
        },
        "load_average": load,
    }


def run(smoke: bool) -> dict[str, Any]:
    transport = measure(3 if smoke else 200, confirm_off=0.0, confirm_on=0.0)
    default = measure(
        1 if smoke else 200, confirm_off=DEFAULT_WINDOW[0], confirm_on=DEFAULT_WINDOW[1]
    )
    p99 = transport["outage_to_counting_ms"]["p99"]
    return {
        "path": (
            "mock GPIO edge in the bridge process -> mains sensor -> daemon main loop -> "
            "spool (event) -> retained mains on Mosquitto (loopback) -> client's paho thread "
            "-> client runtime -> decide() -> counting/idle"
        ),
        "transport": transport,
        "default": default,
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": p99 <= TARGET_P99_MS,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
