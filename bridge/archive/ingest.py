"""From received messages to committed rows, acknowledged only once they are stored.

The MQTT thread hands every message (topic, payload and its packet id) to
:meth:`Ingest.offer`; the ingest thread (:meth:`Ingest.run`) decodes a batch of
them and updates the gap bookkeeping; the database thread writes the batch in one
transaction and only then acknowledges its messages to the broker.  So:

* a message is acknowledged only when its rows are committed: an archive killed at
  any point gets the unacknowledged messages again from its persistent session;
* a database that is down is retried with a growing pause (:class:`Backoff`) while
  nothing is acknowledged: the broker stops sending once its in-flight window is
  full and keeps the rest queued for this session;
* a malformed or oversized payload is counted by reason and logged (at most one
  line per reason a minute), acknowledged so that it does not come back, and never
  stored.

Gap bookkeeping lives in :class:`~bridge.archive.gaps.GapTracker`; its time passes
in :meth:`Ingest.tick` (on the ingest thread, once a second), which also asks
for missing ranges through ``request``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from bridge.archive.gaps import Gap, GapPolicy, GapTracker
from bridge.archive.records import Decoded, decode, epoch_ms
from bridge.archive.store import Batch, SqlStore
from bridge.archive.store.base import span_of
from bridge.clock import Clock, SystemClock
from bridge.errors import PayloadError

log = logging.getLogger(__name__)

Ack = Callable[[int], None]
"""Acknowledge the message with this packet id to the broker."""
Request = Callable[[Gap], None]
"""Ask a bridge to send a range again."""

T = TypeVar("T")

REJECT_LOG_INTERVAL_S: Final = 60.0
INBOX_LIMIT: Final = 200
"""Messages received and not yet taken by the writer (about 100,000 samples of replay)."""
QUIET_S: Final = 0.01
"""A batch is written once no message has arrived for this long."""
SAMPLE_BYTES: Final = 100
"""About the size of one sample in a ``samples`` batch (to size a batch before decoding)."""
TICK_S: Final = 1.0
"""How often the writer looks for gaps to ask for again or to give up."""


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    mid: int
    """Packet id to acknowledge (0: nothing to acknowledge, QoS 0)."""


@dataclass(slots=True)
class Backoff:
    """Pauses between attempts: ``first``, doubling, at most ``most`` seconds."""

    first: float = 0.5
    most: float = 30.0
    _next: float = 0.0

    def pause(self) -> float:
        self._next = self.first if self._next == 0 else min(self.most, self._next * 2)
        return self._next

    def reset(self) -> None:
        self._next = 0.0


@dataclass(slots=True)
class Figures:
    """What the ingest has done since it started (read by /metrics and ``archive check``)."""

    messages: int = 0
    samples_received: int = 0
    samples_stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    db_failures: int = 0
    db_down_since: float | None = None
    resend_requests: int = 0
    gaps_lost: int = 0
    last_write_s: float = 0.0


class Ingest:
    """Batches messages into transactions; see the module docstring."""

    def __init__(
        self,
        store: SqlStore,
        *,
        base: str,
        max_payload: int,
        batch_size: int = 20_000,
        flush_interval: float = 0.2,
        retry_max: float = 30.0,
        policy: GapPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.base = base
        self.max_payload = max_payload
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.backoff = Backoff(most=retry_max)
        self.clock: Clock = clock or SystemClock()
        self.tracker = GapTracker(policy)
        self.figures = Figures()
        self.ack: Ack = lambda _mid: None
        self.request: Request = lambda _gap: None
        self._inbox: queue.Queue[Message | None] = queue.Queue(maxsize=INBOX_LIMIT)
        self._stop = threading.Event()
        self._pending_lost: list[Gap] = []
        self._dirty: set[str] = set()
        """Devices whose gaps changed outside a message (a request, a loss)."""
        self._next_tick = 0.0
        self._built: queue.Queue[tuple[Batch, list[int]] | None] = queue.Queue(maxsize=1)
        """Decoded batches waiting for the database thread (one, while another commits)."""
        self._writing = False
        self._last_reject_log: dict[str, float] = {}
        self.idle = threading.Event()
        """Set while nothing is waiting to be written (tests and benchmarks wait on it)."""

    # -- lifecycle --------------------------------------------------------------------
    def resume(self) -> None:
        """Take the gap bookkeeping over from the database (call before the first message)."""
        highs, gaps = self.store.load_tracking()
        by_device: dict[str, list[Gap]] = {}
        for gap in gaps:
            by_device.setdefault(gap.device, []).append(gap)
        for device, high in highs.items():
            self.tracker.restore(device, high, by_device.get(device, []))

    def offer(self, message: Message) -> None:
        """Called from the MQTT thread: queue a message for the writer.

        Blocks while :data:`INBOX_LIMIT` messages wait: the MQTT thread then stops
        reading its socket and TCP holds the broker back, which keeps the rest queued.
        (Brokers do not all bound what they send ahead of acknowledgements.)
        """
        self.idle.clear()
        self._put(self._inbox, message)

    def stop(self) -> None:
        self._stop.set()
        # A full inbox: the writer sees the stop flag after its current batch.
        with contextlib.suppress(queue.Full):
            self._inbox.put_nowait(None)

    @property
    def backlog(self) -> int:
        return self._inbox.qsize()

    # -- the threads --------------------------------------------------------------------
    def run(self) -> None:
        """Decode batches until :meth:`stop`, while a second thread writes the previous one.

        Decoding (Python) and writing (mostly the database's time) overlap: one batch is
        decoded while the one before it commits.  What is not committed is not acknowledged.
        """
        writer = threading.Thread(target=self._write_loop, name="archive-db", daemon=True)
        writer.start()
        while not self._stop.is_set():
            messages = self._collect()
            if time.monotonic() >= self._next_tick:
                self._next_tick = time.monotonic() + TICK_S
                self.tick()
            if messages or self._dirty:
                self._put_built(self.build(messages))
            elif self._inbox.empty() and self._built.empty() and not self._writing:
                self.idle.set()
        self._built.put(None)
        writer.join(timeout=30)

    def _put_built(self, item: tuple[Batch, list[int]]) -> None:
        self._put(self._built, item)

    def _put(self, into: queue.Queue[T], item: T) -> None:
        """Put ``item`` into a bounded queue, waiting for room until :meth:`stop`."""
        while not self._stop.is_set():
            try:
                into.put(item, timeout=0.5)
            except queue.Full:
                continue
            return

    def _write_loop(self) -> None:
        while True:
            item = self._built.get()
            if item is None:
                return
            self._writing = True
            try:
                self._write(*item)
            finally:
                self._writing = False

    def _collect(self) -> list[Message]:
        """Messages for one transaction: until the inbox has been quiet for :data:`QUIET_S`
        (the broker's in-flight window is full, or nothing more is coming), the batch is
        full, or the first message has waited ``flush_interval``."""
        messages: list[Message] = []
        size = 0
        deadline: float | None = None
        while size < self.batch_size:
            if deadline is None:
                timeout = 0.5
            else:
                timeout = min(QUIET_S, max(0.0, deadline - time.monotonic()))
            try:
                item = self._inbox.get(timeout=timeout)
            except queue.Empty:
                break
            if item is None:
                break
            messages.append(item)
            size += max(1, len(item.payload) // SAMPLE_BYTES)
            if deadline is None:
                deadline = time.monotonic() + self.flush_interval
        return messages

    def _write(self, batch: Batch, acks: list[int]) -> None:
        started = time.monotonic()
        while True:
            try:
                inserted = self.store.write(batch)
                break
            except Exception as exc:  # noqa: BLE001 - any database failure: retry, do not ack
                self._database_failed(exc)
                if self._stop.wait(self.backoff.pause()):
                    return
        if self.figures.db_down_since is not None:
            log.warning(
                "database %s is back after %.0f s", self.store.describe(),
                time.monotonic() - self.figures.db_down_since,
            )  # fmt: skip
            self.figures.db_down_since = None
        self.backoff.reset()
        self.figures.last_write_s = time.monotonic() - started
        self.figures.samples_stored += inserted
        self.figures.duplicates += len(batch.samples) - inserted
        for mid in acks:
            self.ack(mid)

    def _database_failed(self, exc: Exception) -> None:
        figures = self.figures
        figures.db_failures += 1
        if figures.db_down_since is None:
            figures.db_down_since = time.monotonic()
            log.warning(
                "cannot write to %s (%s); retrying, the broker keeps the queue",
                self.store.describe(), exc.__class__.__name__,
            )  # fmt: skip
        self.store.reset()

    # -- building a batch (pure but for the tracker) -------------------------------------
    def build(self, messages: list[Message]) -> tuple[Batch, list[int]]:
        """Decode ``messages`` into one :class:`Batch`; return it and the ids to acknowledge."""
        now = epoch_ms(self.clock.utcnow())
        batch = Batch(received_ms=now)
        acks: list[int] = []
        changed: set[str] = set()
        for message in messages:
            if message.mid:
                acks.append(message.mid)
            self.figures.messages += 1
            try:
                decoded = decode(
                    message.topic, message.payload, base=self.base, max_size=self.max_payload
                )
            except PayloadError as exc:
                self._reject(message.topic, str(exc))
                continue
            except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                # The contract's decoders raise PayloadError; anything else is still bad
                # input, never a reason to stop archiving.
                self._reject(message.topic, f"{exc.__class__.__name__}: {exc}")
                continue
            if decoded is None:
                continue
            self._add(batch, decoded, now, changed)
        for device in changed | self._dirty:
            batch.device(device).gaps = self.tracker.open_gaps(device)
        batch.lost, self._pending_lost = self._pending_lost, []
        self._dirty.clear()
        return batch, acks

    def _add(self, batch: Batch, d: Decoded, now: int, changed: set[str]) -> None:
        update = batch.device(d.device)
        if d.samples:
            batch.samples.extend(d.samples)
            batch.spans.append(span_of(d.device, d.samples))
            self.figures.samples_received += len(d.samples)
        if d.event is not None:
            batch.events.append(d.event)
        if d.mains is not None:
            update.mains = d.mains
        if d.health is not None:
            update.health = d.health
            update.health_ms = now
        if d.deployment is not None:
            update.deployment = d.deployment
        if d.online is not None:
            update.online = d.online
        if d.newest_seq is not None and self.tracker.announce(d.device, d.newest_seq, now):
            changed.add(d.device)
            update.high = self.tracker.high(d.device)
        seqs = d.seqs
        if seqs:
            before = self.tracker.missing(d.device)
            if self.tracker.observe(d.device, seqs, now):
                changed.add(d.device)
                update.filled += max(0, before - self.tracker.missing(d.device))
            update.high = self.tracker.high(d.device)

    def _reject(self, topic: str, reason: str) -> None:
        key = "oversized" if "exceeds" in reason else "malformed"
        self.figures.rejected[key] += 1
        now = time.monotonic()
        if now - self._last_reject_log.get(key, -1e9) >= REJECT_LOG_INTERVAL_S:
            self._last_reject_log[key] = now
            log.warning(
                "rejected a %s payload on %s (%d so far, logged at most once a minute): %s",
                key, topic, self.figures.rejected[key], reason,
            )  # fmt: skip

    # -- time passing -----------------------------------------------------------------
    def tick(self) -> None:
        """Ask for gaps that stayed open; record as lost those that can no longer be filled."""
        now = epoch_ms(self.clock.utcnow())
        requests, lost = self.tracker.due(now)
        for gap in requests:
            self.figures.resend_requests += 1
            log.info(
                "asking %s to send seq %d..%d again (request %d)",
                gap.device, gap.first, gap.last, gap.requests,
            )  # fmt: skip
            self.request(gap)
        for gap in lost:
            self.figures.gaps_lost += 1
            log.warning(
                "%s: seq %d..%d (%d) lost: open longer than the bridges keep samples",
                gap.device, gap.first, gap.last, gap.size,
            )  # fmt: skip
        if requests or lost:
            self._pending_lost.extend(lost)
            self._dirty.update(g.device for g in [*requests, *lost])
