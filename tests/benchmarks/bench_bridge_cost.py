"""What the running bridge costs the Pi: CPU, memory, fsyncs and bytes written.

The real bridge process (``python -m bridge run``) reads a PZEM-004T simulator
over a pseudo-terminal (the simulator runs in *this* process, so its CPU is not
counted), publishes to a private Mosquitto with discovery, and senses simulated
mains.  At 1 and 10 samples/s, after a warm-up, over a measuring window:

* CPU % of one core (``utime + stime`` of every thread, ``/proc/<pid>/stat``);
* peak RSS (``VmHWM``, ``/proc/<pid>/status``);
* bytes written (``wchar`` and block-layer ``write_bytes``, ``/proc/<pid>/io``);
* ``fsync``/``fdatasync`` calls, counted by ``strace -c -p`` attached for a second
  window (tracing slows the process, so it is not used for the CPU figure).

Targets at 10 samples/s: ≤ 3 % CPU, ≤ 40 MB peak RSS.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bridge.broker.runner import prepare
from bridge.meters.simulator import SimulatedMeter

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "test-bridge"
TARGET_CPU_PCT = 3.0
TARGET_RSS_MB = 40.0
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _io(pid: int) -> tuple[int, int]:
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["wchar"]), int(fields["write_bytes"])


def _count_fsyncs(pid: int, seconds: float, work: Path) -> int | None:
    strace = shutil.which("strace")
    if strace is None:
        return None
    out = work / "strace.txt"
    tracer = subprocess.Popen(
        [strace, "-f", "-c", "-o", str(out), "-e", "trace=fsync,fdatasync", "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(seconds)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(10)
    calls = 0
    pattern = r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fsync|fdatasync)$"
    for line in out.read_text().splitlines():
        match = re.match(pattern, line)
        if match:
            calls += int(match.group(1))
    return calls


def measure(rate_hz: float, *, warmup: float, window: float, fsync_window: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-bridge-"))
    broker = prepare(work / "mosquitto")
    broker.start()
    meter = SimulatedMeter("pzem004t", seed=1).start()
    process: subprocess.Popen[bytes] | None = None
    try:
        secret = work / "bridge.pass"
        secret.write_text(broker.bridge(DEVICE).password + "\n")
        config = work / "bridge.yaml"
        config.write_text(
            f"""
device: {{id: {DEVICE}, data_dir: {work / "data"}}}
mqtt: {{host: 127.0.0.1, port: {broker.port}, password_file: {secret}}}
meter: {{type: pzem004t, port: {meter.port}, interval: {1.0 / rate_hz}}}
mains: {{source: gpio}}
leds: {{enabled: false}}
simulation: {{enabled: true}}
"""
        )
        with (work / "bridge.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "run", "-c", str(config)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        pid = process.pid
        time.sleep(warmup)
        assert process.poll() is None, (work / "bridge.log").read_text()
        cpu0, io0, t0 = _cpu_seconds(pid), _io(pid), time.monotonic()
        time.sleep(window)
        cpu1, io1, t1 = _cpu_seconds(pid), _io(pid), time.monotonic()
        elapsed = t1 - t0
        fsyncs = _count_fsyncs(pid, fsync_window, work)
        peak_rss_mb = _status_kb(pid, "VmHWM") / 1024
        rss_mb = _status_kb(pid, "VmRSS") / 1024
        cpu_pct = 100 * (cpu1 - cpu0) / elapsed
        return {
            "samples_per_s": rate_hz,
            "window_s": round(elapsed, 1),
            "cpu_pct_of_one_core": round(cpu_pct, 2),
            "peak_rss_mb": round(peak_rss_mb, 1),
            "rss_mb": round(rss_mb, 1),
            "bytes_written_per_hour_mb": round((io1[0] - io0[0]) * 3600 / elapsed / 1e6, 1),
            "block_bytes_written_per_hour_mb": round((io1[1] - io0[1]) * 3600 / elapsed / 1e6, 1),
            "fsyncs_per_hour": None if fsyncs is None else round(fsyncs * 3600 / fsync_window),
            "fsync_window_s": fsync_window,
        }
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        meter.stop()
        broker.kill()
        shutil.rmtree(work, ignore_errors=True)


def run(smoke: bool = False) -> dict[str, Any]:
    timing = (
        {"warmup": 2.5, "window": 1.0, "fsync_window": 1.0}
        if smoke
        else {"warmup": 15.0, "window": 120.0, "fsync_window": 60.0}
    )
    at_1 = measure(1.0, **timing)
    at_10 = measure(10.0, **timing)
    return {
        "at_1_per_s": at_1,
        "at_10_per_s": at_10,
        "targets_at_10_per_s": {"cpu_pct": TARGET_CPU_PCT, "peak_rss_mb": TARGET_RSS_MB},
        "meets_targets": at_10["cpu_pct_of_one_core"] <= TARGET_CPU_PCT
        and at_10["peak_rss_mb"] <= TARGET_RSS_MB,
        "note": "the meter simulator runs in the benchmark process, not in the bridge",
    }
