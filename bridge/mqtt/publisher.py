"""The bridge's publisher: what leaves the spool for the broker, and when.

The bridge's MQTT side is three modules: the connection (:class:`~bridge.mqtt.link.MqttLink`
in :mod:`bridge.mqtt.link`), what is published (payloads made by
:mod:`bridge.mqtt.producers`) and the verification of incoming commands
(:mod:`bridge.mqtt.commands`).  This module ties them together, and keeps the names
the daemon imports (``BridgePublisher``, ``mains_payload``).

* :class:`BridgePublisher` runs on the daemon's main thread and owns the spool.
  Samples and events are committed to the spool before they are published and
  leave it only on PUBACK.  While connected, new samples go out in small *live*
  batches; everything older (spooled while the broker was away, or left over from
  a previous run) is *replayed* oldest first, in batches of ``spool.batch_size``,
  with at most :data:`REPLAY_WINDOW` batches awaiting acknowledgement, so live data
  keeps flowing during a long replay.  Retained topics (``state``, ``mains``,
  ``outage``, ``health``) are republished with discovery after every connect, on
  ``cmd/republish`` and, after a short random delay, when Home Assistant announces
  itself (``<prefix>/status`` = ``online``).  Discovery configs that are no longer
  generated are cleared with empty retained payloads (the record of what was published
  is :mod:`bridge.mqtt.discovery_topics`).
* ``cmd/resend`` (from an archive that found a gap) sends a range again from the spool,
  acknowledged items it still keeps (``spool.keep_acknowledged``) included, in the
  replay's window.

paho keeps unacknowledged QoS 1 messages in memory and sends them again after a
reconnect; the publisher therefore never hands the same spooled item to paho twice
in one process, and only ever hands it a bounded number of messages.
"""

from __future__ import annotations

import logging
import random
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from bridge.clock import Clock, SystemClock
from bridge.config.bridge import BridgeConfig
from bridge.log import RepeatedFailure
from bridge.model import Reading
from bridge.mqtt.commands import CommandGate, CommandHandler
from bridge.mqtt.contract import (
    ONLINE,
    PACKET_OVERHEAD,
    QOS_CMD,
    QOS_EVENTS,
    QOS_SAMPLES,
    QOS_STATE,
    BridgeTopics,
    encode_sample_batch,
    ha_status_topic,
    resend_range,
)
from bridge.mqtt.discovery import STATE_MIN_INTERVAL_S, DiscoveryMessage
from bridge.mqtt.discovery_topics import DiscoveryTopics
from bridge.mqtt.link import MqttLink
from bridge.mqtt.producers import LatestState, mains_payload
from bridge.mqtt.spool import Spool, SpoolItem

log = logging.getLogger(__name__)

__all__ = ["BridgePublisher", "CommandGate", "MqttLink", "PublisherStats", "mains_payload"]

REPLAY_WINDOW: Final = 8
"""Replayed messages (batches or events) handed to paho and not yet acknowledged."""
LIVE_LINGER_S: Final = 0.5
"""A live sample waits at most this long to share a ``samples`` message with the next ones."""
BIRTH_DELAY_S: Final = (0.5, 3.0)
"""Random delay before republishing after Home Assistant's birth message."""
STOP_ACK_WAIT_S: Final = 1.0
"""On the way out: how long to wait for acknowledgements of what was just published."""

Post = Callable[[Callable[[], None]], None]
"""Run a callable on the owner's (the daemon's main) thread, later."""


# ============================================================================ the publisher


@dataclass
class _Retained:
    producer: Callable[[], bytes]
    qos: int


@dataclass
class PublisherStats:
    """Figures for health and tests."""

    samples_published: int = 0
    replay_batches: int = 0
    live_batches: int = 0
    acks: int = 0
    failed_acks: int = 0
    republishes: int = 0
    discovery_cleared: int = 0
    connected_at: float | None = None
    """Monotonic time of the last connection (as seen by the owner thread)."""
    last_replay_done: float | None = None
    resent: int = 0
    """Items sent again because an archive asked (``cmd/resend``)."""
    extra: dict[str, int] = field(default_factory=dict)


class BridgePublisher:
    """Everything the bridge publishes, on the owner's thread (see the module docstring).

    Args:
        config: the bridge configuration.
        spool: the durable spool (owned by this publisher from now on).
        conn: a database connection for the record of published discovery topics.
        post: runs a callable on the owner's thread (paho callbacks are marshalled by it).
        discovery: the discovery messages to publish (``discovery_messages(...)``).
        commands: handlers by command name (``simulate``, ``republish`` is built in).
    """

    def __init__(
        self,
        config: BridgeConfig,
        spool: Spool,
        *,
        device_id: str,
        conn: sqlite3.Connection,
        post: Post,
        discovery: Sequence[DiscoveryMessage] = (),
        commands: Mapping[str, CommandHandler] | None = None,
        signing_key: bytes | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        link_factory: Callable[..., MqttLink] = MqttLink,
    ) -> None:
        self.config = config
        self.spool = spool
        self.device_id = device_id
        self.topics = BridgeTopics(config.mqtt.base_topic, device_id)
        self._discovery = DiscoveryTopics(conn, discovery)
        self._post = post
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - a jitter, not a secret
        self._batch = config.spool.batch_size
        self._unwritten_events: list[Callable[[int], bytes]] = []
        self._max_payload = config.mqtt.max_packet_size - PACKET_OVERHEAD
        """Larger batches are split: the broker drops a client that sends a bigger packet."""
        handlers: dict[str, CommandHandler] = {
            "republish": lambda _args: self.republish(),
            "resend": self._resend_requested,
        }
        handlers.update(commands or {})
        self.commands = CommandGate(
            handlers, key=signing_key, max_age=config.signing.max_age, clock=self._clock
        )
        self._ha_status = ha_status_topic(config.mqtt.discovery.prefix)
        subscriptions = [(self.topics.cmd_filter, QOS_CMD)]
        if config.mqtt.discovery.enabled:
            subscriptions.append((self._ha_status, 1))
        self.link = link_factory(
            config.mqtt,
            device_id=device_id,
            will_topic=self.topics.status,
            subscriptions=subscriptions,
            on_connected=lambda: post(self._connected),
            on_disconnected=lambda reason: post(lambda: self._disconnected(reason)),
            on_ack=lambda mid, ok: post(lambda: self._acknowledged(mid, ok)),
            on_message=lambda t, p, r: post(lambda: self._message(t, p, r)),
        )
        self.stats = PublisherStats()
        self.connected = False
        self._live_from = spool.next_seq
        self._cursor = 0
        self._replay_done = True
        self._live: list[SpoolItem] = []
        self._live_since: float | None = None
        self._inflight: dict[int, list[int]] = {}
        self._inflight_seqs: set[int] = set()
        self._replay_mids: set[int] = set()
        self._retained: dict[str, _Retained] = {}
        self._state = LatestState(device_id)
        self._state_due: float | None = None
        self._state_last = float("-inf")
        self._republish_at: float | None = None
        self._resends: list[tuple[int, int]] = []
        """Ranges an archive asked for again (``cmd/resend``), oldest request first."""
        self._spool_failure = RepeatedFailure(log, "cannot write to the spool")
        self._ack_failure = RepeatedFailure(log, "broker refused spooled messages")

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.link.start()

    def stop(self) -> None:
        """Send what is pending, wait briefly for acknowledgements, ``offline``, disconnect."""
        if self.connected:
            self.flush_live()
        self.link.stop(timeout=STOP_ACK_WAIT_S)

    # ------------------------------------------------------------------ figures
    @property
    def reconnects(self) -> int:
        return self.link.reconnects

    @property
    def inflight_messages(self) -> int:
        return len(self._inflight)

    @property
    def replaying(self) -> bool:
        return self.connected and not self._replay_done

    # ------------------------------------------------------------------ inputs (owner thread)
    def add_reading(self, reading: Reading) -> SpoolItem | None:
        """Spool a reading (before anything else), then queue it for live publishing."""
        item: SpoolItem | None = None
        try:
            item = self.spool.add_sample(reading)
        except sqlite3.Error as exc:
            self._spool_failure.failed(exc)
        self._update_state(reading, item.seq if item else None)
        if item is None:
            return None
        if self._spool_failure.failing:
            self._spool_failure.recovered()
        if self.connected:
            if not self._live:
                self._live_since = self._clock.monotonic()
            self._live.append(item)
            if len(self._live) >= self._batch:
                self.flush_live()
        return item

    def add_event(self, build: Callable[[int], bytes]) -> SpoolItem | None:
        """Spool an event whose payload ``build(seq)`` makes; publish it now if connected.

        An event that cannot be written now (a full disk) is kept in memory, in order, and
        written by :meth:`pump` as soon as the database accepts it: outages are never lost
        to a full disk while the bridge runs.
        """
        self._unwritten_events.append(build)
        return self._write_events()

    def _write_events(self) -> SpoolItem | None:
        item: SpoolItem | None = None
        while self._unwritten_events:
            try:
                item = self._add_event(self._unwritten_events[0])
            except sqlite3.Error as exc:
                self._spool_failure.failed(
                    f"{exc} ({len(self._unwritten_events)} event(s) kept in memory until "
                    "they can be written)"
                )
                return None
            self._unwritten_events.pop(0)
        return item

    def _add_event(self, build: Callable[[int], bytes]) -> SpoolItem:
        item = self.spool.add_event(build)
        if self.connected:
            self.flush_live()  # keep the order of samples and events for live consumers
            self._send([item])
        if self._spool_failure.failing:
            self._spool_failure.recovered()
        return item

    def retain(self, topic: str, producer: Callable[[], bytes], qos: int) -> None:
        """Set the current value of a retained topic (made fresh by ``producer`` each time)."""
        self._retained[topic] = _Retained(producer, qos)
        if self.connected:
            self._publish_retained(topic)

    def republish(self, delay: float = 0.0) -> None:
        """Republish discovery and every retained state after ``delay`` seconds."""
        at = self._clock.monotonic() + delay
        if self._republish_at is None or at < self._republish_at:
            self._republish_at = at

    # ------------------------------------------------------------------ the pump
    def pump(self) -> float | None:
        """Do what is due; return the monotonic time when it should be called again."""
        now = self._clock.monotonic()
        deadlines: list[float] = []
        if self.connected:
            if self._republish_at is not None and now >= self._republish_at:
                self._republish_at = None
                self._publish_all()
            if self._live and self._live_since is not None:
                if now - self._live_since >= LIVE_LINGER_S:
                    self.flush_live()
                else:
                    deadlines.append(self._live_since + LIVE_LINGER_S)
            self._replay()
            self._resend()
            if self._state_due is not None:
                if now >= self._state_due:
                    self._publish_state(now)
                else:
                    deadlines.append(self._state_due)
            if self._republish_at is not None:
                deadlines.append(self._republish_at)
        if self._unwritten_events:
            self._write_events()
        self.spool.tick()
        return min(deadlines) if deadlines else None

    # ------------------------------------------------------------------ link events (owner)
    def _connected(self) -> None:
        self.connected = True
        self.stats.connected_at = self._clock.monotonic()
        self._live_from = self.spool.next_seq
        self._cursor = 0
        self._replay_done = False
        self._live = []
        self._live_since = None
        self._publish_all()
        self._replay()

    def _disconnected(self, reason: str) -> None:
        del reason  # logged by the link
        self.connected = False
        # Not yet handed to paho: they stay in the spool and are replayed after reconnecting.
        self._live = []
        self._live_since = None

    def _acknowledged(self, mid: int, ok: bool) -> None:
        cleared = self._discovery.acknowledged(mid, ok)
        if cleared is not None:
            if cleared:
                self.stats.discovery_cleared += 1
            return
        seqs = self._inflight.pop(mid, None)
        if seqs is None:
            return
        self._replay_mids.discard(mid)
        self._inflight_seqs.difference_update(seqs)
        if ok:
            self.stats.acks += 1
            self.spool.acknowledge(seqs)
            if self._ack_failure.failing:
                self._ack_failure.recovered()
        else:
            # MQTT 5 only: the broker refused them; they stay spooled for the next session.
            self.stats.failed_acks += 1
            self._ack_failure.failed(f"{len(seqs)} item(s) from seq {seqs[0]}")
        self._replay()
        self._resend()

    def _message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self._ha_status:
            if payload.strip() == ONLINE.encode() and not retained:
                delay = self._rng.uniform(*BIRTH_DELAY_S)
                log.info("Home Assistant started; republishing in %.1f s", delay)
                self.republish(delay)
            return
        prefix = self.topics.cmd("")
        if topic.startswith(prefix) and not retained:
            self.commands.handle(topic, topic[len(prefix) :], payload)

    # ------------------------------------------------------------------ publishing
    def _publish_all(self) -> None:
        """Discovery (clearing stale configs), then every retained state."""
        self.stats.republishes += 1
        self._discovery.publish(self.link)
        for topic in self._retained:
            self._publish_retained(topic)
        if not self._state.empty:
            self._publish_state(self._clock.monotonic())

    def _publish_retained(self, topic: str) -> None:
        entry = self._retained[topic]
        try:
            payload = entry.producer()
        except Exception:
            log.exception("cannot build the payload of %s", topic)
            return
        self.link.publish(topic, payload, entry.qos, True)

    def _update_state(self, reading: Reading, seq: int | None) -> None:
        self._state.update(reading, seq)
        if self._state_due is None:
            self._state_due = max(self._clock.monotonic(), self._state_last + STATE_MIN_INTERVAL_S)

    def state_payload(self) -> bytes | None:
        """The retained ``state``: the newest reading of every channel (``None`` before one)."""
        return self._state.payload()

    def _publish_state(self, now: float) -> None:
        payload = self.state_payload()
        self._state_due = None
        if payload is None:
            return
        self._state_last = now
        self.link.publish(self.topics.state, payload, QOS_STATE, True)

    def flush_live(self) -> None:
        """Publish the live samples that are waiting for company, now."""
        items, self._live, self._live_since = self._live, [], None
        if items:
            self.stats.live_batches += 1
            self._send(items)

    def _replay(self) -> None:
        """Hand the oldest spooled items to paho while the replay window has room."""
        if not self.connected or self._replay_done:
            return
        while len(self._replay_mids) < REPLAY_WINDOW:
            items = self.spool.backlog(
                after=self._cursor,
                before=self._live_from,
                limit=self._batch,
                exclude=self._inflight_seqs,
            )
            if not items:
                if not self._replay_mids:
                    self._replay_done = True
                    self.stats.last_replay_done = self._clock.monotonic()
                    log.info("spool replay complete")
                return
            items = _up_to_first_event(items)
            self._cursor = items[-1].seq
            self._replay_mids.update(self._send(items))
            self.stats.replay_batches += 1

    def _resend_requested(self, args: dict[str, object]) -> None:
        first, last = resend_range(dict(args))
        log.info("an archive asks for seq %d..%d again", first, last)
        self._resends.append((first, last))
        self._resend()

    def _resend(self) -> None:
        """Send requested ranges again from the spool (acknowledged items it still keeps
        included), sharing the replay's window; what the spool no longer has is skipped."""
        while self.connected and self._resends and len(self._replay_mids) < REPLAY_WINDOW:
            first, last = self._resends[0]
            items = self.spool.items_between(
                first, last, limit=self._batch, exclude=self._inflight_seqs
            )
            if not items:
                self._resends.pop(0)
                continue
            items = _up_to_first_event(items)
            self._resends[0] = (items[-1].seq + 1, last)
            self._replay_mids.update(self._send(items))
            self.stats.resent += len(items)

    def _send(self, items: list[SpoolItem]) -> list[int]:
        """Publish items (events singly, runs of samples as batches); track their mids."""
        mids: list[int] = []
        run: list[SpoolItem] = []

        def publish_run(part: list[SpoolItem]) -> None:
            payload = encode_sample_batch(self.device_id, [i.body for i in part])
            if len(payload) > self._max_payload and len(part) > 1:
                half = len(part) // 2
                publish_run(part[:half])
                publish_run(part[half:])
                return
            self._track(
                self.link.publish(self.topics.samples, payload, QOS_SAMPLES, False), part, mids
            )
            self.stats.samples_published += len(part)

        def flush_run() -> None:
            if run:
                publish_run(list(run))
                run.clear()

        for item in items:
            if item.is_event:
                flush_run()
                mid = self.link.publish(self.topics.events, item.body, QOS_EVENTS, False)
                self._track(mid, [item], mids)
            else:
                run.append(item)
                if len(run) >= self._batch:
                    flush_run()
        flush_run()
        return mids

    def _track(self, mid: int | None, items: list[SpoolItem], mids: list[int]) -> None:
        if mid is None:
            return  # refused by paho: still spooled, replayed after the next connect
        seqs = [i.seq for i in items]
        self._inflight[mid] = seqs
        self._inflight_seqs.update(seqs)
        mids.append(mid)


def _up_to_first_event(items: list[SpoolItem]) -> list[SpoolItem]:
    """Stop a batch at the first event: events go out one by one, in order."""
    first_event = next((i for i, it in enumerate(items) if it.is_event), None)
    return items if first_event is None else items[: max(1, first_event)]
