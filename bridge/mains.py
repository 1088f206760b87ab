"""Mains sensing: a GPIO pin (and optionally the meter), debounced, confirmed, persisted.

Two layers:

* :class:`MainsDebouncer` is pure: it is fed raw levels with their times and says
  when a change is *confirmed* (the level stayed put for ``confirm_off`` /
  ``confirm_on``) or was a *blip* (it came back first).  No threads, no clock.
* :class:`MainsSensor` wires it to the world: gpiozero edge callbacks
  (``when_activated``/``when_deactivated`` with ``bounce_time``; never polling),
  the meter cross-check, a worker thread that sleeps until the next confirmation
  deadline on the injected monotonic clock, and the :class:`~bridge.outages.OutageStore`.

An announced change carries the time of its **first edge** (UTC and monotonic), not
the end of the confirmation window, and the next per-device sequence number.
Callbacks (``on_event``, ``on_edge``, ``on_blip``) always run on the sensor's own
worker thread, in order — never on a GPIO library's thread.

Wiring of the classic sensor: a USB phone charger on the *unprotected* side feeds
5 V through an 18 kΩ / 33 kΩ divider (≈3.2 V) into GPIO 4 with the pull-down on;
never put 5 V on a GPIO pin.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from bridge.clock import Clock, SystemClock
from bridge.config.bridge import MainsConfig
from bridge.errors import PowerbridgeError, UsageError
from bridge.log import RepeatedFailure
from bridge.model import MainsEvent, MainsState, Reading
from bridge.outages import OutageStore

log = logging.getLogger(__name__)

MAX_WAIT: Final = 1.0
"""Longest sleep of the worker between checks (bounds the delay with a non-system clock)."""

SOURCE_GPIO: Final = "gpio"
SOURCE_METER: Final = "meter"
SOURCE_SIMULATION: Final = "simulation"


class MainsPinError(PowerbridgeError):
    """The mains-sense GPIO pin cannot be opened (no GPIO here, busy, no permission)."""


# --------------------------------------------------------------------------- pure logic


@dataclass(frozen=True, slots=True)
class Edge:
    """A raw change of one input, before any confirmation."""

    state: MainsState
    monotonic: float
    utc: datetime
    source: str


@dataclass(frozen=True, slots=True)
class Blip:
    """A change that did not last its confirmation window: counted, never announced."""

    state: MainsState
    """The state the input went to briefly (``off`` for a short power cut)."""
    began: datetime
    began_monotonic: float
    duration_s: float
    source: str


@dataclass(frozen=True, slots=True)
class Announcement:
    """A confirmed change (becomes a :class:`~bridge.model.MainsEvent` once numbered)."""

    state: MainsState
    began: datetime
    began_monotonic: float
    source: str


class MainsDebouncer:
    """Confirmation windows as a pure state machine on caller-supplied times.

    ``feed(edge)`` reports a raw level; ``poll(now)`` announces a pending change
    whose window has passed.  A change that reverts before its window ends is a
    blip: ``flap_count`` grows by one.  Before the first announcement (state
    ``unknown``) the level may change freely without counting flaps.
    """

    def __init__(
        self,
        confirm_off: float,
        confirm_on: float,
        announced: MainsState = MainsState.UNKNOWN,
    ) -> None:
        if confirm_off < 0 or confirm_on < 0:
            raise ValueError("confirmation windows cannot be negative")
        self.confirm_off = confirm_off
        self.confirm_on = confirm_on
        self.announced = announced
        self.raw = MainsState.UNKNOWN
        self.pending: Edge | None = None
        self.flap_count = 0
        self._last_t: float | None = None

    def window(self, state: MainsState) -> float:
        return self.confirm_off if state is MainsState.OFF else self.confirm_on

    @property
    def deadline(self) -> float | None:
        """Monotonic time at which the pending change will be confirmed, if any."""
        if self.pending is None:
            return None
        return self.pending.monotonic + self.window(self.pending.state)

    def poll(self, now: float) -> Announcement | None:
        """Announce the pending change if it has lasted its whole window by ``now``."""
        deadline = self.deadline
        if self.pending is None or deadline is None or now < deadline:
            return None
        edge = self.pending
        self.pending = None
        self.announced = edge.state
        return Announcement(edge.state, edge.utc, edge.monotonic, edge.source)

    def feed(self, edge: Edge) -> list[Announcement | Blip]:
        """Take a raw level; return what it settles (an announcement due first, a blip)."""
        if edge.state not in (MainsState.ON, MainsState.OFF):
            raise ValueError(f"raw level must be on or off, not {edge.state!r}")
        # Keep time ordered: an edge reported late (meter silence) never precedes the last one.
        if self._last_t is not None and edge.monotonic < self._last_t:
            shift = self._last_t - edge.monotonic
            edge = replace(edge, monotonic=self._last_t, utc=edge.utc + timedelta(seconds=shift))
        out: list[Announcement | Blip] = []
        due = self.poll(edge.monotonic)
        if due is not None:
            out.append(due)
        if edge.state is self.raw:
            return out
        self.raw = edge.state
        self._last_t = edge.monotonic
        if edge.state is self.announced:
            if self.pending is not None:
                first = self.pending
                self.pending = None
                self.flap_count += 1
                out.append(
                    Blip(
                        state=first.state,
                        began=first.utc,
                        began_monotonic=first.monotonic,
                        duration_s=edge.monotonic - first.monotonic,
                        source=first.source,
                    )
                )
        elif self.pending is None or self.pending.state is not edge.state:
            self.pending = edge
        return out


def combine(source: str, gpio: MainsState, meter: MainsState) -> MainsState:
    """The mains state according to ``mains.source`` from the two inputs' raw states.

    ``gpio``/``meter``: that input alone.  ``any``: off as soon as one input says
    off.  ``all``: off only when every input says off.  An input still ``unknown``
    (no reading yet) is left out of ``any``/``all``.
    """
    if source == "gpio":
        return gpio
    if source == "meter":
        return meter
    known = [s for s in (gpio, meter) if s is not MainsState.UNKNOWN]
    if not known:
        return MainsState.UNKNOWN
    if source == "any":
        return MainsState.OFF if MainsState.OFF in known else MainsState.ON
    return MainsState.OFF if all(s is MainsState.OFF for s in known) else MainsState.ON


def meter_level(reading: Reading, threshold_v: float) -> MainsState:
    """What one reading says: mains off when its voltage is below the threshold."""
    if reading.voltage_v is not None and reading.voltage_v < threshold_v:
        return MainsState.OFF
    return MainsState.ON


# --------------------------------------------------------------------------- the sensor


class MainsSensor:
    """The bridge's mains input: gpiozero pin and/or meter, confirmed and persisted.

    ``state``/``current`` are restored from ``store`` at construction, so a bridge
    restarted during an outage keeps that outage (its start time and ``seq``) and
    numbers the next change after it.  The sensor records every announcement in
    the store itself (:meth:`OutageStore.record`) before calling ``on_event``.
    """

    def __init__(
        self,
        config: MainsConfig,
        store: OutageStore,
        *,
        on_event: Callable[[MainsEvent], None],
        clock: Clock | None = None,
        pin_factory: Any | None = None,
        simulation: bool = False,
        on_edge: Callable[[Edge], None] | None = None,
        on_blip: Callable[[Blip], None] | None = None,
    ) -> None:
        self.config = config
        self._store = store
        self._on_event = on_event
        self._on_edge = on_edge
        self._on_blip = on_blip
        self._clock: Clock = clock or SystemClock()
        self._pin_factory = pin_factory
        self._simulation = simulation
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._deliver_lock = threading.Lock()
        self._queue: list[Edge | Blip | Announcement] = []
        self._device: Any | None = None
        self._thread: threading.Thread | None = None
        self._started = False
        self._stopping = False
        self._db_failure = RepeatedFailure(log, "cannot store mains state")
        self._callback_failure = RepeatedFailure(log, "mains event handler failed")

        self._current = store.last_event()
        self._last_seq = max(store.last_seq(), self._current.seq if self._current else 0)
        # The restored state is history: after a start the input is confirmed afresh (its
        # first level is announced once it has lasted its window, even if it is unchanged).
        self._debouncer = MainsDebouncer(config.confirm_off, config.confirm_on)
        self._gpio = MainsState.UNKNOWN
        self._meter = MainsState.UNKNOWN
        self._meter_alive_mono: float | None = None
        self._meter_alive_utc: datetime | None = None
        if self._current is not None:
            log.info(
                "mains state restored: %s since %s (seq %d)",
                self._current.state,
                self._current.began.isoformat(),
                self._current.seq,
            )

    # ------------------------------------------------------------------ properties
    @property
    def state(self) -> MainsState:
        """The last announced state (``unknown`` before the first announcement ever)."""
        current = self._current
        return current.state if current is not None else MainsState.UNKNOWN

    @property
    def current(self) -> MainsEvent | None:
        """The last announced change (restored from the store after a restart)."""
        return self._current

    @property
    def flap_count(self) -> int:
        """Blips since this sensor started: changes that did not last their window."""
        with self._lock:
            return self._debouncer.flap_count

    @property
    def simulation(self) -> bool:
        return self._simulation

    @property
    def uses_gpio(self) -> bool:
        return self.config.source != SOURCE_METER

    @property
    def uses_meter(self) -> bool:
        return self.config.source != SOURCE_GPIO

    @property
    def pin_level(self) -> MainsState:
        """What the pin says right now (raw, unconfirmed); ``unknown`` without a pin."""
        with self._lock:
            return self._gpio

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Open the pin (if the source uses it) and start the worker thread."""
        if self._started:
            return
        device = self._open_pin() if (self.uses_gpio or self._simulation) else None
        with self._lock:
            self._device = device
            now, utc = self._clock.monotonic(), self._clock.utcnow()
            # The meter counts as alive at start: silence is measured from here.
            self._meter_alive_mono, self._meter_alive_utc = now, utc
            if device is not None:
                device.when_activated = self._gpio_activated
                device.when_deactivated = self._gpio_deactivated
                self._gpio_changed(bool(device.is_active), now, utc)
            self._started = True
            self._stopping = False
        self._thread = threading.Thread(target=self._run, name="mains-sensor", daemon=True)
        self._thread.start()
        log.info(
            "mains sensing started: source %s, pin GPIO%d%s",
            self.config.source,
            self.config.pin,
            " (simulated)" if self._simulation else "",
        )

    def close(self) -> None:
        """Stop the worker and release the pin (idempotent)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._lock:
            device, self._device = self._device, None
            self._started = False
        if device is not None:
            device.when_activated = None
            device.when_deactivated = None
            device.close()

    def __enter__(self) -> MainsSensor:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _open_pin(self) -> Any:
        from gpiozero import DigitalInputDevice, GPIOZeroError

        factory = self._pin_factory
        if self._simulation and factory is None:
            from gpiozero.pins.mock import MockFactory

            factory = MockFactory()
        pull_up = {"up": True, "down": False, "none": None}[self.config.pull]
        kwargs: dict[str, Any] = {
            "pull_up": pull_up,
            "bounce_time": self.config.bounce_time or None,
            "pin_factory": factory,
        }
        if pull_up is None:
            kwargs["active_state"] = self.config.active_high
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # gpiozero's fallback warnings: we report below
                device = DigitalInputDevice(self.config.pin, **kwargs)
        except (GPIOZeroError, OSError, RuntimeError, ImportError) as exc:
            raise MainsPinError(
                f"cannot open the mains-sense pin GPIO{self.config.pin}: "
                f"{exc or type(exc).__name__}"
                " (is another powerbridge running? on a machine without GPIO, set"
                " simulation.enabled: true)"
            ) from exc
        # gpiozero fixes the polarity for pulled pins (pull-up ⇒ active low); ours is free.
        gpio_active_high = self.config.active_high if pull_up is None else not pull_up
        self._invert = gpio_active_high != self.config.active_high
        if self._simulation:
            self._drive(device, MainsState.ON)  # a simulated bridge starts with mains present
        return device

    _invert = False

    def _drive(self, device: Any, state: MainsState) -> None:
        pin = device.pin
        if (state is MainsState.ON) == self.config.active_high:
            pin.drive_high()
        else:
            pin.drive_low()

    # ------------------------------------------------------------------ inputs
    def _gpio_activated(self) -> None:
        self._gpio_callback(active=True)

    def _gpio_deactivated(self) -> None:
        self._gpio_callback(active=False)

    def _gpio_callback(self, *, active: bool) -> None:
        with self._cond:
            self._gpio_changed(active, self._clock.monotonic(), self._clock.utcnow())
            self._cond.notify_all()

    def _gpio_changed(self, active: bool, now: float, utc: datetime) -> None:
        level = MainsState.ON if active != self._invert else MainsState.OFF
        label = SOURCE_SIMULATION if self._simulation else SOURCE_GPIO
        self._set_input("gpio", level, Edge(level, now, utc, label))

    def _set_input(self, which: str, level: MainsState, edge: Edge) -> None:
        """Update one input's raw state (lock held); feed the combined level on a change."""
        before = combine(self.config.source, self._gpio, self._meter)
        old = self._gpio if which == "gpio" else self._meter
        if which == "gpio":
            self._gpio = level
        else:
            self._meter = level
        if old is not level and self._on_edge is not None:
            self._queue.append(edge)
        after = combine(self.config.source, self._gpio, self._meter)
        if after is not before and after is not MainsState.UNKNOWN:
            self._queue.extend(self._debouncer.feed(replace(edge, state=after)))

    def feed_meter(self, reading: Reading | None) -> None:
        """The meter cross-check: a reading (or ``None`` for a failed poll).

        Voltage below ``meter_voltage_threshold`` means off from the reading's time;
        no good reading for ``meter_silence`` means off from the last sign of life
        (a PZEM is powered by the mains it measures and dies with it).
        """
        if not self.uses_meter:
            return
        with self._cond:
            if reading is not None:
                now = self._clock.monotonic()
                at = min(reading.monotonic, now)
                self._meter_alive_mono, self._meter_alive_utc = at, reading.time
                level = meter_level(reading, self.config.meter_voltage_threshold)
                self._set_input("meter", level, Edge(level, at, reading.time, SOURCE_METER))
            self._cond.notify_all()

    def meter_unavailable(self, reason: str) -> None:
        """The meter's serial port is gone (adapter unplugged): its input becomes *unknown*.

        Silence of a meter whose port is still there means the meter lost its power
        (a PZEM dies with the mains); a port that disappeared means a cable or adapter
        problem, which must never be announced as an outage.  Until the next reading
        the meter is left out of ``any``/``all`` and ``source: meter`` announces nothing.
        """
        if not self.uses_meter:
            return
        with self._cond:
            if self._meter_alive_mono is not None or self._meter is not MainsState.UNKNOWN:
                log.warning("meter port lost (%s): mains cross-check ignores the meter", reason)
            self._meter_alive_mono = None
            self._meter_alive_utc = None
            now = self._clock.monotonic()
            unknown = MainsState.UNKNOWN
            self._set_input(
                "meter", unknown, Edge(unknown, now, self._clock.utcnow(), SOURCE_METER)
            )
            self._cond.notify_all()

    def _check_meter_silence(self, now: float) -> None:
        if not self.uses_meter or self._meter is MainsState.OFF:
            return
        alive_mono, alive_utc = self._meter_alive_mono, self._meter_alive_utc
        if alive_mono is None or alive_utc is None:
            return
        if now - alive_mono >= self.config.meter_silence:
            edge = Edge(MainsState.OFF, alive_mono, alive_utc, SOURCE_METER)
            self._set_input("meter", MainsState.OFF, edge)

    def simulate(self, state: MainsState | str) -> None:
        """Drive the mock mains pin (simulation mode only; refused and logged otherwise)."""
        if not self._simulation:
            log.warning(
                "refused a request to simulate mains %s: simulation is not enabled on this bridge",
                state,
            )
            raise UsageError("mains simulation refused: simulation.enabled is false on this bridge")
        try:
            target = MainsState(state)
        except ValueError:
            raise UsageError(f"cannot simulate mains {state!r}: use 'on' or 'off'") from None
        if target is MainsState.UNKNOWN:
            raise UsageError("cannot simulate mains 'unknown': use 'on' or 'off'")
        device = self._device
        if device is None:
            raise UsageError("the mains sensor is not started")
        log.info("simulated mains %s", target.value)
        self._drive(device, target)

    # ------------------------------------------------------------------ worker
    def _next_deadline(self) -> float | None:
        deadlines: list[float] = []
        debounce = self._debouncer.deadline
        if debounce is not None:
            deadlines.append(debounce)
        alive = self._meter_alive_mono
        if self.uses_meter and self._meter is not MainsState.OFF and alive is not None:
            deadlines.append(alive + self.config.meter_silence)
        return min(deadlines) if deadlines else None

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._stopping and not self._queue:
                    deadline = self._next_deadline()
                    timeout = MAX_WAIT
                    if deadline is not None:
                        timeout = min(MAX_WAIT, max(0.0, deadline - self._clock.monotonic()))
                    if timeout > 0:
                        self._cond.wait(timeout)
                stopping = self._stopping
            if stopping:
                return
            self.poll()

    def poll(self) -> None:
        """Settle everything due by now and deliver it (the worker calls this; tests may too)."""
        with self._deliver_lock:
            with self._lock:
                now = self._clock.monotonic()
                self._check_meter_silence(now)
                due = self._debouncer.poll(now)
                if due is not None:
                    self._queue.append(due)
                items, self._queue = self._queue, []
            for item in items:
                self._deliver(item)

    def _deliver(self, item: Edge | Blip | Announcement) -> None:
        if isinstance(item, Announcement):
            event = self._persist(item)
            self._current = event
            log.warning(
                "mains %s (seq %d, source %s, since %s)",
                event.state.value,
                event.seq,
                event.source,
                event.began.isoformat(),
            )
            self._call(self._on_event, event)
        elif isinstance(item, Blip):
            log.info(
                "mains blip: %s for %.3f s (%s), not announced",
                item.state.value,
                item.duration_s,
                item.source,
            )
            if self._on_blip is not None:
                self._call(self._on_blip, item)
        elif self._on_edge is not None:
            self._call(self._on_edge, item)

    def _call(self, handler: Callable[[Any], None], value: object) -> None:
        try:
            handler(value)
        except Exception as exc:  # a handler's bug must not stop mains sensing
            self._callback_failure.failed(f"{type(exc).__name__}: {exc}")
            log.debug("handler failure", exc_info=True)

    def reserve_seq(self) -> int:
        """The next sequence number, for an announcement that is not a change (``unknown``
        at a start); on a database failure it is kept in memory, still above every other."""
        with self._deliver_lock:
            return self._take_seq()

    def _take_seq(self) -> int:
        """The next sequence number: above the store's and every one handed out before
        (on a database failure, counted on in memory)."""
        try:
            seq = max(self._store.next_seq(), self._last_seq + 1)
        except sqlite3.Error as exc:
            self._db_failure.failed(exc)
            seq = self._last_seq + 1
        self._last_seq = seq
        return seq

    def _persist(self, item: Announcement) -> MainsEvent:
        """Number the announcement and store it; on a database failure keep going in memory."""
        seq = self._take_seq()
        event = MainsEvent(
            state=item.state,
            began=item.began,
            began_monotonic=item.began_monotonic,
            seq=seq,
            source=item.source,
        )
        try:
            self._store.record(event)
        except sqlite3.Error as exc:
            self._db_failure.failed(exc)
        else:
            self._db_failure.recovered()
        return event
