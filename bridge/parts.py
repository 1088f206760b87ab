"""The parts of a running bridge and the one lifecycle they share.

Every part of the daemon — the publisher, the mains sensor, the meter source, the
LEDs, the mDNS advertisement — is a :class:`Part`: ``start()`` returns at once,
``stop()`` releases everything and may be called twice.  :class:`Parts` starts them
in order and stops the started ones in reverse, so the daemon never stops a part by
hand.  :class:`Worker` is the one implementation of "a part with a background
thread" (start it once, wake it, stop and join it), shared by the meter source, the
UPS source, the mains sensor, the LEDs and the mDNS advertiser; :class:`Hooks` makes a part of two
callables and :class:`PublisherPart` the publisher's (it drains before it disconnects).
:class:`MainLoop` is the queue the threads post their results to; only the thread that
runs it touches the spool.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Final, Protocol, Self

if TYPE_CHECKING:
    from bridge.clock import Clock
    from bridge.mqtt.publisher import BridgePublisher

log = logging.getLogger(__name__)

STOP_DRAIN_S: Final = 1.5
"""On the way out: how long the publisher waits for acknowledgements of what is in flight."""


class Part(Protocol):
    """Something the daemon starts and stops."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


class Parts:
    """Parts started in the order they are added, stopped in reverse; a failing stop is logged."""

    def __init__(self) -> None:
        self._started: list[tuple[str, Part]] = []

    def start(self, name: str, part: Part) -> None:
        """Start ``part`` now; it will be stopped by :meth:`stop_all`."""
        part.start()
        self._started.append((name, part))

    def stop_all(self) -> None:
        """Stop every started part, the last one first (each error logged, none raised)."""
        while self._started:
            name, part = self._started.pop()
            try:
                part.stop()
            except Exception:
                log.exception("error while stopping the %s", name)


class Hooks:
    """A part made of two callables (either may be left out), for what has no class of its own."""

    def __init__(
        self, start: Callable[[], object] | None = None, stop: Callable[[], object] | None = None
    ) -> None:
        self._start, self._stop = start, stop

    def start(self) -> None:
        if self._start is not None:
            self._start()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()


class Worker:
    """A part with one background thread running :meth:`_run` until :attr:`_stopping` is set.

    Subclasses override ``_run`` and, where they need them, the hooks ``_starting``
    (before the thread starts), ``_wake`` (interrupt the thread's wait) and
    ``_stopped`` (after the thread has ended: release what it used).
    """

    thread_name: ClassVar[str] = "worker"

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def join_timeout(self) -> float:
        """How long :meth:`stop` waits for the thread."""
        return 5.0

    def start(self) -> None:
        """Start the thread (once; a second call does nothing)."""
        if self._thread is not None:
            return
        self._starting()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, wait for it, release what it used (idempotent)."""
        self._stopping.set()
        self._wake()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.join_timeout)
        self._stopped()

    def close(self) -> None:
        """The same as :meth:`stop` (for ``with`` blocks and older callers)."""
        self.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _starting(self) -> None:
        """Prepare what the thread needs (called by :meth:`start` before the thread runs)."""

    def _wake(self) -> None:
        """Interrupt the thread's wait so that it sees :attr:`_stopping` (default: nothing)."""

    def _stopped(self) -> None:
        """Release what the thread used (called by :meth:`stop` after joining it)."""

    def _run(self) -> None:
        raise NotImplementedError


class MainLoop:
    """Callables posted from any thread, run in order on the thread that calls :meth:`run`."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()

    def post(self, work: Callable[[], None] | None) -> None:
        """Queue work (``None`` just wakes the loop); safe from signal handlers too."""
        self._queue.put(work)

    def run(self, timeout: float, limit: int = 1000) -> int:
        """Wait up to ``timeout`` for work, then run everything queued (up to ``limit``)."""
        done = 0
        try:
            work = self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return 0
        while True:
            if work is not None:
                try:
                    work()
                except Exception:
                    log.exception("internal error in the main loop (continuing)")
                done += 1
            if done >= limit:
                return done
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                return done


class PublisherPart:
    """The publisher as a part: it connects in the background (a broker down at boot is
    not fatal); stopping spools what was posted, sends it, waits up to :data:`STOP_DRAIN_S`
    for acknowledgements, publishes ``offline`` and disconnects."""

    def __init__(self, publisher: BridgePublisher, loop: MainLoop, clock: Clock) -> None:
        self._publisher, self._loop, self._clock = publisher, loop, clock

    def start(self) -> None:
        self._publisher.start()

    def stop(self) -> None:
        publisher, loop = self._publisher, self._loop
        loop.run(0.0)  # readings and events already posted: spool them
        if publisher.connected:
            publisher.pump()
            publisher.flush_live()
            deadline = self._clock.monotonic() + STOP_DRAIN_S
            while publisher.inflight_messages and publisher.connected:
                left = deadline - self._clock.monotonic()
                if left <= 0:
                    break
                loop.run(min(left, 0.1))
        publisher.stop()
        loop.run(0.0)  # acknowledgements that arrived meanwhile
