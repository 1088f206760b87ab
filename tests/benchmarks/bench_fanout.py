"""Fan-out: one outage to 200 connected shutdown clients; time until the last has decided.

The real bridge daemon runs in this process (mock mains pin, confirmation window 0, so the
figure is the transport and the clients' own work); 200 real shutdown client runtimes, each
with its own paho connection and credentials, run in 4 child processes of 50
(``probe_clients``).  For each run the pin is driven low and the figure is the time from the
edge until the **last** of the 200 clients' decisions is *counting*; then mains comes back
and the same is timed for the last *idle* (cancel).  p50/p99/max over the runs.

With the default confirmation window (0.5 s before an outage is announced) add 0.5 s.
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

TARGET_P99_S = 1.0


def measure(
    clients: int, processes: int, runs: int, *, seed: int = 5, pause: float = 0.3
) -> dict[str, Any]:
    rng = random.Random(seed)
    ids = [f"pc-{i:03d}" for i in range(clients)]
    groups = [ids[i::processes] for i in range(processes)]
    work = work_dir("bench-fanout-")
    broker = start_broker(work, ids)
    decisions = Decisions()
    bridge: InProcessBridge | None = None
    probes: list[ProbeProcess] = []
    last_off: list[float] = []
    last_on: list[float] = []
    each_off: list[float] = []
    started = time.monotonic()
    with logs_to(work / "bridge.log"):
        try:
            bridge = InProcessBridge(broker, work, confirm_off=0.0, confirm_on=0.0).start()
            for n, group in enumerate(groups):
                probes.append(ProbeProcess(broker, work, group, decisions, name=f"probe{n}"))
            try:
                decisions.wait_ready(ids, 60)
            except (TimeoutError, RuntimeError) as exc:
                raise RuntimeError(f"{exc}\n{stderr_tail(work, 'probe0')}") from None
            connected_s = time.monotonic() - started
            time.sleep(pause)
            for n in range(1, runs + 1):
                edge = bridge.edge(on=False)
                seen = decisions.wait(ids, "counting", n, 30)
                last_off.append(max(seen) - edge)
                each_off.extend(t - edge for t in seen)
                time.sleep(pause + rng.uniform(0, 0.1))
                edge = bridge.edge(on=True)
                seen = decisions.wait(ids, "idle", n, 30)
                last_on.append(max(seen) - edge)
                time.sleep(pause + rng.uniform(0, 0.1))
            load = load_average()
        finally:
            for probe in probes:
                probe.stop()
            if bridge is not None:
                bridge.stop()
            broker.kill()
            cleanup(work)
    last_off_ms = summary_ms(last_off)
    return {
        "clients": clients,
        "processes": processes,
        "runs": runs,
        "confirm_off_s": 0.0,
        "all_connected_s": round(connected_s, 2),
        "last_client_counting_ms": last_off_ms,
        "last_client_cancelled_ms": summary_ms(last_on),
        "every_client_counting_ms": summary_ms(each_off),
        "target_p99_s": TARGET_P99_S,
        "meets_target": last_off_ms["p99"] / 1000 <= TARGET_P99_S,
        "load_average": load,
    }


def run(smoke: bool) -> dict[str, Any]:
    result = measure(4, 2, 2, pause=0.1) if smoke else measure(200, 4, 100)
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return result
