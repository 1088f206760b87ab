"""What an idle shutdown client costs its PC: CPU % of one core and memory.

A real ``python -m bridge client run -c FILE --dry-run`` process (exactly what the installed
service runs) is connected to a private Mosquitto and watches the real bridge daemon, which
runs in this process with mains present and publishes its retained ``mains`` every 30 s as
it does in service.  After a warm-up, over the measuring window:

* CPU % of one core: ``utime + stime`` of the whole process (every thread),
  ``/proc/<pid>/stat``;
* RSS at the end (``VmRSS``) and its peak (``VmHWM``), ``/proc/<pid>/status``;
* RSS split into anonymous memory (Python objects) and file pages (shared libraries), and
  PSS (shared pages divided among the processes using them), ``/proc/<pid>/smaps_rollup``;
* threads, and wake-ups per second (voluntary context switches of every thread).

Targets: ≤ 0.1 % CPU, RSS ≤ 30 MB.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.benchmarks._rig import (
    DEVICE,
    ROOT,
    InProcessBridge,
    cleanup,
    load_average,
    logs_to,
    start_broker,
    work_dir,
)

CLIENT = "bench-pc"
TARGET_CPU_PCT = 0.1
TARGET_RSS_MB = 30.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """``utime + stime`` of every thread of the process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def status_rollup(pid: int) -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup`` in kB (PSS: shared libraries counted in part)."""
    out = {}
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            out[key] = int(value.split()[0])
    return out


def wakeups(pid: int) -> int:
    """Voluntary context switches of every thread (each is a sleep that ended: a wake-up)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def _kb(value: str) -> float:
    return int(value.split(maxsplit=1)[0]) / 1024


def measure(*, warmup: float, window: float) -> dict[str, Any]:
    work = work_dir("bench-client-cost-")
    broker = start_broker(work, [CLIENT])
    password = work / "client.pass"
    password.write_text(broker.client(CLIENT).password + "\n")
    password.chmod(0o600)
    config = work / "client.yaml"
    config.write_text(
        f"""
client: {{id: {CLIENT}}}
mqtt: {{host: {broker.host}, port: {broker.port}, password_file: {password}}}
bridges: [{DEVICE}]
shutdown: {{command: [/bin/true], dry_run: true, notify: none}}
"""
    )
    bridge: InProcessBridge | None = None
    process: subprocess.Popen[bytes] | None = None
    log = work / "client.log"
    with logs_to(work / "bridge.log"):
        try:
            bridge = InProcessBridge(broker, work, confirm_off=0.5, confirm_on=2.0).start()
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bridge",
                        "client",
                        "run",
                        "-c",
                        str(config),
                        "--dry-run",
                    ],
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            pid = process.pid
            time.sleep(warmup)
            if process.poll() is not None:
                raise RuntimeError(f"the client exited: {log.read_text()[-2000:]}")
            woke0, cpu0, t0 = wakeups(pid), cpu_seconds(pid), time.monotonic()
            time.sleep(window)
            woke1, cpu1, t1 = wakeups(pid), cpu_seconds(pid), time.monotonic()
            after = status(pid)
            smaps = status_rollup(pid)
            if process.poll() is not None:
                raise RuntimeError(f"the client exited: {log.read_text()[-2000:]}")
            load = load_average()
        finally:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if bridge is not None:
                bridge.stop()
            broker.kill()
            cleanup(work)
    elapsed = t1 - t0
    cpu_pct = 100 * (cpu1 - cpu0) / elapsed
    rss_mb = _kb(after["VmRSS"])
    return {
        "command": "python -m bridge client run -c client.yaml --dry-run",
        "warmup_s": warmup,
        "window_s": round(elapsed, 1),
        "cpu_seconds": round(cpu1 - cpu0, 3),
        "cpu_pct_of_one_core": round(cpu_pct, 3),
        "rss_mb": round(rss_mb, 1),
        "peak_rss_mb": round(_kb(after["VmHWM"]), 1),
        "threads": int(after["Threads"]),
        "rss_anon_mb": round(_kb(after["RssAnon"]), 1),
        "rss_file_mb": round(_kb(after["RssFile"]), 1),
        "pss_mb": round(smaps.get("Pss", 0) / 1024, 1),
        "wakeups_per_s": round((woke1 - woke0) / elapsed, 2),
        "clock_tick_s": 1 / TICKS,
        "targets": {"cpu_pct": TARGET_CPU_PCT, "rss_mb": TARGET_RSS_MB},
        "meets_targets": cpu_pct <= TARGET_CPU_PCT and rss_mb <= TARGET_RSS_MB,
        "load_average": load,
    }


def run(smoke: bool) -> dict[str, Any]:
    result = measure(warmup=2.0, window=2.0) if smoke else measure(warmup=10.0, window=120.0)
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return result
