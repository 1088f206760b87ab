"""A simulated meter behind a real pseudo-terminal, with faults on demand."""

from __future__ import annotations

import contextlib
import logging
import os
import pty
import queue
import random
import select
import shutil
import tempfile
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from bridge.meters.simulator._physics import ElectricalModel, LoadProfile
from bridge.meters.simulator._responders import (
    McpResponder,
    PzemResponder,
    Responder,
    SdmResponder,
)

log = logging.getLogger(__name__)

PROTOCOLS = ("mcp39f511n", "pzem004t", "sdm120", "sdm630")
DEFAULT_BAUD = {"mcp39f511n": 115200, "pzem004t": 9600, "sdm120": 2400, "sdm630": 9600}
FAULT_KINDS = ("crc", "noise", "short", "exception", "silence")
"""What :meth:`SimulatedMeter.inject_garbage` can do to the next replies:

* ``crc`` — one byte of the reply is changed (CRC/checksum no longer matches);
* ``noise`` — the reply is replaced by random bytes;
* ``short`` — the reply stops part-way;
* ``exception`` — a well-formed refusal (Modbus exception 04, MCP NACK);
* ``silence`` — no reply at all.
"""

BITS_PER_BYTE = 10  # start bit, 8 data bits, stop bit (8N1)
PACING_CHUNK_S = 0.002


class SimulatedMeter:
    """A power meter simulated at the wire level on the master side of a pseudo-terminal.

    The driver under test opens :attr:`port`, a symlink in a directory this object owns; it
    points at the current pty slave and is re-pointed on :meth:`replug`, like a
    ``/dev/serial/by-id/...`` link when a USB meter comes back::

        with SimulatedMeter("pzem004t", load_w=500) as sim:
            with create_driver("pzem004t", sim.port) as meter:
                meter.read().power_w            # ≈ 500 W, with noise
            sim.set_mains(False)                # the PZEM goes silent (MCP, SDM report 0 V)
            sim.inject_garbage(3, kind="crc")   # the next three replies are corrupted
            sim.unplug()                        # the pty closes and the link disappears
            sim.replug()                        # a new pty appears behind the same link

    With ``emulate_wire`` (the default) every byte takes ``10 / baud`` seconds each way, so
    read rates measured against a simulator are those a real line allows.

    Args:
        protocol: ``mcp39f511n``, ``pzem004t``, ``sdm120`` or ``sdm630``.
        baud: line speed for the wire-time emulation (default: the meter's own).
        address: Modbus slave address the meter answers to (besides 0xF8 for the PZEM).
        voltage_v, frequency_hz, power_factor: the mains and the load's power factor.
        load_w: mean load on channel 1; ``channel_loads`` sets every channel (MCP has 2).
        noise: relative standard deviation of the measured power.
        load_profile: ``f(seconds_since_start) -> watts`` for channel 1, instead of ``load_w``.
        response_delay: the meter's thinking time before it starts to answer, seconds.
        link_dir: where to put the ``port`` symlink (default: a new temporary directory).
        seed: seed of the noise, for reproducible runs.
    """

    def __init__(
        self,
        protocol: str = "pzem004t",
        *,
        baud: int | None = None,
        address: int | None = None,
        voltage_v: float = 230.0,
        load_w: float = 120.0,
        channel_loads: Sequence[float] | None = None,
        power_factor: float = 0.95,
        frequency_hz: float = 50.0,
        noise: float = 0.02,
        load_profile: LoadProfile | None = None,
        emulate_wire: bool = True,
        response_delay: float = 0.0,
        link_dir: str | Path | None = None,
        seed: int | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
        self.protocol = protocol
        self.baud = baud or DEFAULT_BAUD[protocol]
        self.emulate_wire = emulate_wire
        self.response_delay = response_delay
        channels = 2 if protocol == "mcp39f511n" else 1
        loads = list(channel_loads) if channel_loads is not None else [load_w, load_w * 0.4]
        self.model = ElectricalModel(
            channels=channels,
            voltage_v=voltage_v,
            loads_w=loads,
            power_factor=power_factor,
            frequency_hz=frequency_hz,
            noise=noise,
            load_profile=load_profile,
            seed=seed,
        )
        self.responder = self._make_responder(protocol, address)
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not security
        self._own_dir = link_dir is None
        self._link_dir = Path(link_dir) if link_dir is not None else None
        self._link: Path | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self.device: str | None = None
        """The current pty slave (``/dev/pts/N``); ``None`` while unplugged."""
        self._faults: deque[str] = deque()
        self._raw_replies: deque[bytes | None] = deque()
        self._lock = threading.Lock()
        self._commands: queue.Queue[tuple[Callable[[], None], threading.Event]] = queue.Queue()
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.requests = 0
        """Complete request frames received."""
        self.replies = 0
        """Replies written (including corrupted ones)."""

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> str:
        """The stable path to configure as ``meter.port`` (a symlink to the current pty)."""
        if self._link is None:
            raise RuntimeError("the simulator is not started")
        return str(self._link)

    def start(self) -> Self:
        """Create the pty and the link, and answer requests in a background thread."""
        if self._thread is not None:
            return self
        if self._link_dir is None:
            self._link_dir = Path(tempfile.mkdtemp(prefix="powerbridge-meter-"))
        self._link_dir.mkdir(parents=True, exist_ok=True)
        self._link = self._link_dir / f"{self.protocol}"
        self._wake_r, self._wake_w = os.pipe()
        self._plug()
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"simulated-{self.protocol}", daemon=True
        )
        self._thread.start()
        log.debug("simulated %s at %s (%s)", self.protocol, self._link, self.device)
        return self

    def stop(self) -> None:
        """Stop answering, close the pty, remove the link (and the directory if ours)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            self._wake()
            thread.join(timeout=5)
        self._unplug()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1
        if self._own_dir and self._link_dir is not None:
            shutil.rmtree(self._link_dir, ignore_errors=True)
            self._link_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- what a test or the demo does to the meter ---------------------------------------------

    @property
    def mains_on(self) -> bool:
        return self.model.mains_on

    def set_mains(self, on: bool) -> None:
        """Mains off: the PZEM goes silent; the MCP39F511N and the SDMs report 0 V and 0 W."""
        self.model.set_mains(on)

    def set_load(self, watts: float, channel: int = 1) -> None:
        """Change the mean load of ``channel`` (W)."""
        self.model.set_load(watts, channel)

    def energy_wh(self, channel: int = 1) -> float:
        """The meter's energy counter now (Wh)."""
        return self.model.energy_wh(channel)

    def jump_energy(self, delta_wh: float, channel: int = 1) -> None:
        """Make the energy counter jump, as a PZEM's does when its voltage falls to 0."""
        self.model.add_energy(delta_wh, channel)

    def inject_garbage(self, n: int = 1, kind: str = "crc") -> None:
        """Spoil the next ``n`` replies; ``kind`` is one of :data:`FAULT_KINDS`."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})")
        with self._lock:
            self._faults.extend([kind] * n)

    def queue_reply(self, raw: bytes | None) -> None:
        """Answer the next request with exactly ``raw`` (``None``: no answer)."""
        with self._lock:
            self._raw_replies.append(raw)

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def unplug(self) -> None:
        """Close the pty (the driver's next I/O fails) and remove the link."""
        self._call(self._unplug)

    def replug(self) -> None:
        """Open a new pty and point the link at it; returns once the port is there."""
        self._call(self._plug)

    # -- internals -----------------------------------------------------------------------------

    def _make_responder(self, protocol: str, address: int | None) -> Responder:
        if protocol == "mcp39f511n":
            return McpResponder(self.model)
        if protocol == "pzem004t":
            return PzemResponder(self.model, address or 0x01)
        return SdmResponder(self.model, address or 1, phases=3 if protocol == "sdm630" else 1)

    def _call(self, action: Callable[[], None]) -> None:
        """Run ``action`` in the simulator thread (it owns the file descriptors)."""
        if self._thread is None or not self._thread.is_alive():
            action()
            return
        done = threading.Event()
        self._commands.put((action, done))
        self._wake()
        if not done.wait(timeout=5):
            raise TimeoutError("the simulator thread did not respond")

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def _plug(self) -> None:
        if self._master is not None or self._link is None:
            return
        master, slave = pty.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.device = os.ttyname(slave)
        staging = self._link.with_name(self._link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        staging.symlink_to(self.device)
        staging.replace(self._link)  # atomic: the path is never half-made

    def _unplug(self) -> None:
        if self._link is not None:
            with contextlib.suppress(FileNotFoundError):
                self._link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self.device = None

    def _run_commands(self) -> None:
        while True:
            try:
                action, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                action()
            finally:
                done.set()

    @property
    def _byte_time(self) -> float:
        return BITS_PER_BYTE / self.baud

    def _run(self) -> None:
        buffer = bytearray()
        first_rx = last_rx = 0.0
        gap = max(0.02, 3.5 * 11 / self.baud)  # the silence that ends an unknown frame
        while not self._stopping.is_set():
            self._run_commands()
            master = self._master
            watch = [self._wake_r] + ([master] if master is not None else [])
            wait = 0.5 if not buffer else max(0.0, gap - (time.monotonic() - last_rx))
            try:
                ready, _, _ = select.select(watch, [], [], wait)
            except (OSError, ValueError):
                continue
            if self._wake_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 512)
                continue
            if master is None:
                buffer.clear()
                continue
            if master in ready:
                try:
                    data = os.read(master, 4096)
                except (BlockingIOError, InterruptedError):
                    data = b""
                except OSError:
                    data = b""
                    time.sleep(0.01)
                now = time.monotonic()
                if data:
                    if not buffer:
                        first_rx = now
                    buffer += data
                    last_rx = now
            self._take_frames(buffer, first_rx, last_rx, gap)

    def _take_frames(self, buffer: bytearray, first_rx: float, last_rx: float, gap: float) -> None:
        while buffer:
            length = self.responder.frame_length(bytes(buffer))
            if length == 0:
                del buffer[0]  # noise on the line before a frame
                continue
            if length is None:
                if time.monotonic() - last_rx < gap:
                    return
                length = len(buffer)
            frame = bytes(buffer[:length])
            del buffer[:length]
            self._answer(frame, first_rx)
            first_rx = time.monotonic()

    def _answer(self, frame: bytes, first_rx: float) -> None:
        self.requests += 1
        reply = self._reply_to(frame)
        master = self._master
        if reply is None or master is None:
            return
        byte_time = self._byte_time if self.emulate_wire else 0.0
        start = first_rx + len(frame) * byte_time + self.response_delay
        self._send(master, reply, start, byte_time)
        self.replies += 1

    def _reply_to(self, frame: bytes) -> bytes | None:
        with self._lock:
            if self._raw_replies:
                return self._raw_replies.popleft()
            fault = self._faults.popleft() if self._faults else None
        if self.protocol == "pzem004t" and not self.model.mains_on:
            return None  # powered by the mains it measures: silent during an outage
        if fault == "silence":
            return None
        if fault == "exception":
            return self.responder.error_reply(frame)
        reply = self.responder.respond(frame)
        return reply if reply is None or fault is None else self._spoil(reply, fault)

    def _spoil(self, reply: bytes, fault: str) -> bytes:
        rng = self._rng
        if fault == "crc":
            spoiled = bytearray(reply)
            spoiled[rng.randrange(len(spoiled))] ^= rng.randrange(1, 256)
            return bytes(spoiled)
        if fault == "short":
            return reply[: rng.randrange(1, len(reply))] if len(reply) > 1 else b""
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, len(reply) + 8)))

    def _send(self, fd: int, reply: bytes, start: float, byte_time: float) -> None:
        """Write ``reply`` so that byte ``i`` is readable at ``start + (i + 1) × byte_time``."""
        if not reply:
            return
        chunk = max(1, int(PACING_CHUNK_S / byte_time)) if byte_time > 0 else len(reply)
        start = max(start, time.monotonic())
        for offset in range(0, len(reply), chunk):
            piece = reply[offset : offset + chunk]
            due = start + (offset + len(piece)) * byte_time
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not self._write_all(fd, piece):
                return

    def _write_all(self, fd: int, data: bytes) -> bool:
        deadline = time.monotonic() + 1.0
        while data:
            try:
                written = os.write(fd, data)
            except BlockingIOError:
                if time.monotonic() > deadline or self._stopping.is_set():
                    return False
                time.sleep(0.001)
                continue
            except OSError:
                return False
            data = data[written:]
        return True
