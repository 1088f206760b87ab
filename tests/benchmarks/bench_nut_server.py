"""The NUT server facade under load, side by side with real upsd + dummy-ups.

200 NUT clients each send ``GET VAR <ups> ups.status`` once a second for 60 s (phases spread
at random) and time every reply; first against ``powerbridge nut serve`` (a private
Mosquitto, a bridge's retained messages), then, in the same run, against Debian's ``upsd``
with the ``dummy-ups`` driver (``tests/benchmarks/nut.py``), with the same load generator.
The generator is one asyncio process; the servers are separate processes.  Target: our
p99 ≤ 5 ms.

NUT missing (or not runnable) gives ``available: false`` with the reason for upsd's half;
ours is measured regardless.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.broker.runner import BrokerSetup, prepare
from tests.benchmarks import bench_nut, nut
from tests.benchmarks._rig import load_average, summary_ms

CLIENTS = 200
SECONDS = 60.0
INTERVAL = 1.0


async def _client(
    port: int, ups: str, until: float, phase: float, *, out: list[float], errors: list[str]
) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        errors.append(f"connect: {exc}")
        return
    request = f"GET VAR {ups} ups.status\n".encode()
    next_at = time.monotonic() + phase
    try:
        while next_at < until:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            sent = time.perf_counter()
            writer.write(request)
            line = await asyncio.wait_for(reader.readline(), 10)
            out.append(time.perf_counter() - sent)
            if not line.startswith(b"VAR "):
                errors.append(line.decode(errors="replace").strip())
            next_at += INTERVAL
    except (OSError, TimeoutError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        writer.close()


async def _load(port: int, ups: str, clients: int, seconds: float) -> tuple[list[float], list[str]]:
    rng = random.Random(18)
    latencies: list[float] = []
    errors: list[str] = []
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(
            _client(port, ups, until, rng.uniform(0, INTERVAL), out=latencies, errors=errors)
            for _ in range(clients)
        )
    )
    return latencies, errors


def load(port: int, ups: str, clients: int, seconds: float) -> dict[str, Any]:
    latencies, errors = asyncio.run(_load(port, ups, clients, seconds))
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": sorted(set(errors))[:3],
        "response_ms": summary_ms(latencies) if latencies else None,
        "load_average": load_average(),
    }


def ours(clients: int, seconds: float) -> dict[str, Any]:
    from tests.nut._harness import Facade, FakeBridge

    work = Path(tempfile.mkdtemp(prefix="pb-nutload-"))
    broker = prepare(work / "mosquitto", BrokerSetup(bridges=("rack-a",), clients=(), nut=("nut",)))
    broker.start()
    facade = Facade(broker, work / "facade", delay=600.0, ups="ups")
    bridge = FakeBridge(broker, "rack-a")
    try:
        bridge.reading(voltage_v=230.0, frequency_hz=50.0, power_w=40.0)
        bridge.announce("on")
        facade.start()
        time.sleep(1.0)
        return load(facade.port, "ups", clients, seconds)
    finally:
        bridge.close()
        facade.stop()
        broker.kill()
        shutil.rmtree(work, ignore_errors=True)


def upsd(clients: int, seconds: float) -> dict[str, Any]:
    try:
        bench_nut.ensure_installed()
        instance = nut.start()
    except (nut.NutUnavailableError, OSError) as exc:
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
    try:
        return {
            "available": True,
            "version": bench_nut.version(),
            **load(instance.port, "dummy", clients, seconds),
        }
    finally:
        instance.stop()


def run(smoke: bool, *, sizes: Sequence[float] | None = None) -> dict[str, Any]:
    clients, seconds = (5, 3.0) if smoke else (CLIENTS, SECONDS)
    if sizes:
        clients, seconds = int(sizes[0]), float(sizes[1])
    return {
        "clients": clients,
        "seconds": seconds,
        "interval_s": INTERVAL,
        "request": "GET VAR <ups> ups.status",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ours": ours(clients, seconds),
        "upsd": upsd(clients, seconds),
    }
