"""The mains sensor: the pin and the meter cross-check, debounced, confirmed, recorded.

:class:`MainsSensor` wires the pure :class:`~bridge.mains.debounce.MainsDebouncer` to
the world: the GPIO pin (:mod:`bridge.mains.pin`), the meter cross-check
(:mod:`bridge.mains.crosscheck`), a worker thread (a :class:`bridge.parts.Worker`) that
sleeps until the next confirmation or silence deadline on the injected monotonic clock,
and the :class:`~bridge.mains.store.OutageStore`, which numbers and records every
announcement and holds the announced state (the sensor keeps only its raw inputs and
the debouncer).

An announced change carries the time of its **first edge** (UTC and monotonic), not
the end of the confirmation window, and the next per-device sequence number.
Callbacks (``on_change``, ``on_event``, ``on_edge``, ``on_blip``) always run on the
sensor's own worker thread, in order — never on a GPIO library's thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from bridge.clock import Clock, SystemClock
from bridge.config.bridge import MainsConfig
from bridge.log import RepeatedFailure
from bridge.mains.crosscheck import (
    SOURCE_GPIO,
    SOURCE_METER,
    SOURCE_SIMULATION,
    SOURCE_UPS,
    MeterCrossCheck,
    combine,
)
from bridge.mains.debounce import Announcement, Blip, Edge, MainsDebouncer
from bridge.mains.pin import MainsPin, simulated_state
from bridge.mains.store import MainsChange, OutageStore
from bridge.model import MainsEvent, MainsState, Reading
from bridge.parts import Worker

log = logging.getLogger(__name__)

MAX_WAIT: Final = 1.0
"""Longest sleep of the worker between checks (bounds the delay with a non-system clock)."""


class MainsSensor(Worker):
    """The bridge's mains input: gpiozero pin and/or meter, confirmed and recorded.

    ``state``/``current`` come from ``store``, restored at its construction, so a bridge
    restarted during an outage keeps that outage (its start time and ``seq``) and
    numbers the next change after it.  Every announcement is recorded in the store
    (:meth:`OutageStore.announce`) before ``on_change``/``on_event`` are called.
    """

    thread_name = "mains-sensor"

    def __init__(
        self,
        config: MainsConfig,
        store: OutageStore,
        *,
        on_event: Callable[[MainsEvent], None] | None = None,
        on_change: Callable[[MainsChange], None] | None = None,
        clock: Clock | None = None,
        pin_factory: Any | None = None,
        simulation: bool = False,
        on_edge: Callable[[Edge], None] | None = None,
        on_blip: Callable[[Blip], None] | None = None,
        with_ups: bool = False,
    ) -> None:
        super().__init__()
        self.config = config
        self.with_ups = with_ups or config.source == SOURCE_UPS
        """The second input is a UPS (:meth:`feed_ups`), not the meter."""
        self._ups = MainsState.UNKNOWN
        self._store = store
        self._on_event, self._on_change = on_event, on_change
        self._on_edge, self._on_blip = on_edge, on_blip
        self._clock: Clock = clock or SystemClock()
        self._pin = MainsPin(config, pin_factory=pin_factory, simulation=simulation)
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._deliver_lock = threading.Lock()
        self._queue: list[Edge | Blip | Announcement] = []
        self._callback_failure = RepeatedFailure(log, "mains event handler failed")
        # The restored state is history: after a start the input is confirmed afresh (its
        # first level is announced once it has lasted its window, even if it is unchanged).
        self._debouncer = MainsDebouncer(config.confirm_off, config.confirm_on)
        self._gpio = MainsState.UNKNOWN
        self._meter = MeterCrossCheck(config.meter_voltage_threshold, config.meter_silence)
        current = store.latest
        if current is not None:
            log.info(
                "mains state restored: %s since %s (seq %d)",
                current.state,
                current.began.isoformat(),
                current.seq,
            )

    # ------------------------------------------------------------------ properties
    @property
    def state(self) -> MainsState:
        """The last announced state (``unknown`` before the first announcement ever)."""
        current = self._store.latest
        return current.state if current is not None else MainsState.UNKNOWN

    @property
    def current(self) -> MainsEvent | None:
        """The last announced change (restored from the store after a restart)."""
        return self._store.latest

    @property
    def flap_count(self) -> int:
        """Blips since this sensor started: changes that did not last their window."""
        with self._lock:
            return self._debouncer.flap_count

    @property
    def simulation(self) -> bool:
        return self._pin.simulation

    @property
    def uses_gpio(self) -> bool:
        return self.config.source not in (SOURCE_METER, SOURCE_UPS)

    @property
    def uses_meter(self) -> bool:
        return self.config.source != SOURCE_GPIO and not self.with_ups

    @property
    def uses_ups(self) -> bool:
        return self.config.source != SOURCE_GPIO and self.with_ups

    @property
    def pin_level(self) -> MainsState:
        """What the pin says right now (raw, unconfirmed); ``unknown`` without a pin."""
        with self._lock:
            return self._gpio

    # ------------------------------------------------------------------ lifecycle
    def _starting(self) -> None:
        """Open the pin (if the source uses it); the meter counts as alive from now."""
        with self._lock:
            now, utc = self._clock.monotonic(), self._clock.utcnow()
            self._meter.started(now, utc)
            if self.uses_gpio or self.simulation:
                present = self._pin.open(self._pin_changed)
                self._gpio_changed(present, now, utc)
        log.info(
            "mains sensing started: source %s, pin GPIO%d%s",
            self.config.source,
            self.config.pin,
            " (simulated)" if self.simulation else "",
        )

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _stopped(self) -> None:
        self._pin.close()

    # ------------------------------------------------------------------ inputs
    def _pin_changed(self, present: bool) -> None:
        with self._cond:
            self._gpio_changed(present, self._clock.monotonic(), self._clock.utcnow())
            self._cond.notify_all()

    def _gpio_changed(self, present: bool, now: float, utc: datetime) -> None:
        level = MainsState.ON if present else MainsState.OFF
        label = SOURCE_SIMULATION if self.simulation else SOURCE_GPIO
        self._set_input("gpio", level, Edge(level, now, utc, label))

    def _other(self) -> MainsState:
        return self._ups if self.with_ups else self._meter.level

    def _set_input(self, which: str, level: MainsState, edge: Edge) -> None:
        """Update one input's raw state (lock held); feed the combined level on a change."""
        before = combine(self.config.source, self._gpio, self._other())
        old = {"gpio": self._gpio, "ups": self._ups}.get(which, self._meter.level)
        if which == "gpio":
            self._gpio = level
        elif which == "ups":
            self._ups = level
        else:
            self._meter.level = level
        if old is not level and self._on_edge is not None:
            self._queue.append(edge)
        after = combine(self.config.source, self._gpio, self._other())
        if after is not before and after is not MainsState.UNKNOWN:
            self._queue.extend(self._debouncer.feed(replace(edge, state=after)))

    def feed_meter(self, reading: Reading | None) -> None:
        """The meter cross-check: a reading (or ``None`` for a failed poll).

        Voltage below ``meter_voltage_threshold`` means off from the reading's time;
        no good reading for ``meter_silence`` means off from the last sign of life.
        """
        if not self.uses_meter:
            return
        with self._cond:
            if reading is not None:
                edge = self._meter.reading(reading, self._clock.monotonic())
                self._set_input("meter", edge.state, edge)
            self._cond.notify_all()

    def feed_ups(self, level: MainsState) -> None:
        """What the UPS says of the mains (``OB`` off, ``OL`` on; unknown without data).

        Fed through the same confirmation window as the pin; a UPS that cannot be read
        is *unknown*, never *off*, and is left out of ``any``/``all``.
        """
        if not self.uses_ups:
            return
        with self._cond:
            now, utc = self._clock.monotonic(), self._clock.utcnow()
            self._set_input("ups", level, Edge(level, now, utc, SOURCE_UPS))
            self._cond.notify_all()

    def meter_unavailable(self, reason: str) -> None:
        """The meter's serial port is gone (adapter unplugged): its input becomes *unknown*.

        A port that disappeared means a cable or adapter problem, which must never be
        announced as an outage.  Until the next reading the meter is left out of
        ``any``/``all`` and ``source: meter`` announces nothing.
        """
        if not self.uses_meter:
            return
        with self._cond:
            known, edge = self._meter.unavailable(self._clock.monotonic(), self._clock.utcnow())
            if known:
                log.warning("meter port lost (%s): mains cross-check ignores the meter", reason)
            self._set_input("meter", edge.state, edge)
            self._cond.notify_all()

    def simulate(self, state: MainsState | str) -> None:
        """Drive the mock mains pin (simulation mode only; refused and logged otherwise)."""
        target = simulated_state(state, enabled=self.simulation)
        log.info("simulated mains %s", target.value)
        self._pin.drive(target)

    # ------------------------------------------------------------------ worker
    def _next_deadline(self) -> float | None:
        deadlines = [self._debouncer.deadline]
        if self.uses_meter:
            deadlines.append(self._meter.deadline)
        known = [d for d in deadlines if d is not None]
        return min(known) if known else None

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._stopping.is_set() and not self._queue:
                    deadline = self._next_deadline()
                    timeout = MAX_WAIT
                    if deadline is not None:
                        timeout = min(MAX_WAIT, max(0.0, deadline - self._clock.monotonic()))
                    if timeout > 0:
                        self._cond.wait(timeout)
            if self._stopping.is_set():
                return
            self.poll()

    def poll(self) -> None:
        """Settle everything due by now and deliver it (the worker calls this; tests may too)."""
        with self._deliver_lock:
            with self._lock:
                now = self._clock.monotonic()
                if self.uses_meter:
                    silent = self._meter.silence(now)
                    if silent is not None:
                        self._set_input("meter", silent.state, silent)
                due = self._debouncer.poll(now)
                if due is not None:
                    self._queue.append(due)
                items, self._queue = self._queue, []
            for item in items:
                self._deliver(item)

    def _deliver(self, item: Edge | Blip | Announcement) -> None:
        if isinstance(item, Announcement):
            change = self._store.announce(
                MainsEvent(
                    state=item.state,
                    began=item.began,
                    began_monotonic=item.began_monotonic,
                    seq=self._store.take_seq(),
                    source=item.source,
                )
            )
            event = change.event
            log.warning(
                "mains %s (seq %d, source %s, since %s)",
                event.state.value,
                event.seq,
                event.source,
                event.began.isoformat(),
            )
            self._call(self._on_change, change)
            self._call(self._on_event, event)
        elif isinstance(item, Blip):
            log.info(
                "mains blip: %s for %.3f s (%s), not announced",
                item.state.value,
                item.duration_s,
                item.source,
            )
            self._call(self._on_blip, item)
        else:
            self._call(self._on_edge, item)

    def _call(self, handler: Callable[[Any], None] | None, value: object) -> None:
        if handler is None:
            return
        try:
            handler(value)
        except Exception as exc:  # a handler's bug must not stop mains sensing
            self._callback_failure.failed(f"{type(exc).__name__}: {exc}")
            log.debug("handler failure", exc_info=True)

    def reserve_seq(self) -> int:
        """The next sequence number, for an announcement that is not a change (``unknown``
        at a start); on a database failure it is kept in memory, still above every other."""
        with self._deliver_lock:
            return self._store.take_seq()
