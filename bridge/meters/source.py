"""The sampling loop: read every configured channel each interval, survive anything.

:class:`MeterSource` owns one driver in its own thread.  It is the *one place*
where meter failures are handled, and :class:`ReconnectPolicy` the one retry policy for
meters (drivers never retry; nothing else in the bridge retries a meter):

* a read that times out or fails its checks is counted (:attr:`MeterSource.read_errors`)
  and logged at debug level; after :attr:`ReconnectPolicy.down_after` failed cycles in a
  row the link is declared down;
* a lost port (unplugged, pty closed) closes the driver and reopens it with exponential
  backoff (:data:`RECONNECT`, driven by tenacity) until it comes back;
* the outage is logged once with its cause (:class:`bridge.log.RepeatedFailure`), then
  summarised at most every five minutes, then once more when readings resume;
* an unexpected error in the loop itself is logged and the loop restarts after
  :attr:`ReconnectPolicy.maximum` — the sampling thread never dies;
* energy totals pass the :class:`~bridge.meters.energy.EnergyGuard` before anyone sees them.

Consumers get two callbacks, both called from the sampling thread:
``on_reading(reading)`` for every reading and ``on_link(up, error)`` when the link
changes state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tenacity

from bridge.clock import Clock
from bridge.config.bridge import BridgeConfig, MeterConfig
from bridge.errors import MeterDisconnectedError, MeterError
from bridge.log import RepeatedFailure
from bridge.meters import create_driver
from bridge.meters.base import MeterDriver
from bridge.meters.energy import EnergyGuard
from bridge.meters.simulator import SimulatedMeter
from bridge.model import Reading
from bridge.parts import Worker

log = logging.getLogger(__name__)

OnReading = Callable[[Reading], None]
OnLink = Callable[[bool, str | None], None]
DriverFactory = Callable[[], MeterDriver]


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How the source retries: the only retry policy for meters."""

    initial: float = 0.1
    """First wait after a failed open (s); doubles per failure ..."""
    maximum: float = 1.0
    """... up to this (s).  Small on purpose: an open of a missing device costs nothing,
    and readings must resume within a second or two of the port returning."""
    down_after: int = 3
    """Failed read cycles in a row (timeouts, bad replies) before the link is down."""


RECONNECT = ReconnectPolicy()


class MeterSource(Worker):
    """One meter, sampled in a background thread (a :class:`bridge.parts.Worker`).

    Args:
        config: the ``meter`` section (channels, interval, timeout, ...).
        driver_factory: makes a fresh, unopened driver; called again after each loss.
        clock: stamps readings (through the driver) and schedules the loop.
        on_reading: called with every reading (energy already guarded).
        on_link: called with ``(True, None)`` when readings flow, ``(False, cause)`` when
            they stop; only on changes.
        policy: reconnect and link-down policy.
        simulator: a :class:`SimulatedMeter` this source starts and stops with itself
            (``meter.type: simulated``); tests and the demo drive it through
            :attr:`simulator`.
    """

    def __init__(
        self,
        config: MeterConfig,
        driver_factory: DriverFactory,
        clock: Clock,
        *,
        on_reading: OnReading | None = None,
        on_link: OnLink | None = None,
        policy: ReconnectPolicy = RECONNECT,
        simulator: SimulatedMeter | None = None,
    ) -> None:
        super().__init__()
        self.config, self.clock, self.policy = config, clock, policy
        self.simulator = simulator
        self._factory = driver_factory
        self._on_reading = on_reading or (lambda _reading: None)
        self._on_link = on_link or (lambda _up, _error: None)
        self._driver: MeterDriver | None = None
        self._link: bool | None = None
        self._port_lost = False
        self._guards: dict[int, EnergyGuard] = {}
        self._callback_failure = RepeatedFailure(log, "meter reading consumer failed")
        self._failure = RepeatedFailure(log, "meter")
        self._internal_failure = RepeatedFailure(log, "meter loop")
        self.last_reading_monotonic: float | None = None
        """When the last reading arrived (``clock.monotonic()``), ``None`` before the first."""
        self.read_errors = 0
        """Reads that failed (timeouts, bad replies, lost port) since start."""
        self.readings = 0
        """Readings delivered since start."""
        self.reconnects = 0
        """Times the port was reopened after a loss."""

    # -- lifecycle -----------------------------------------------------------------------------

    thread_name = "meter-source"

    @property
    def join_timeout(self) -> float:
        """A read in progress may take a timeout per attempt; wait for it."""
        return 3 * self.config.timeout + 5

    def _starting(self) -> None:
        """Start the simulator (if any) before the sampling thread."""
        if self.simulator is not None:
            self.simulator.start()

    def _stopped(self) -> None:
        """Close the port, stop the simulator."""
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.close()
        if self.simulator is not None:
            self.simulator.stop()

    def follow_mains(self, present: bool) -> None:
        """A simulated meter follows simulated mains (0 V, or a silent PZEM); a real one cannot."""
        if self.simulator is not None:
            self.simulator.set_mains(present)

    @property
    def port_lost(self) -> bool:
        """The link is down because the serial port is gone or cannot be opened.

        An unplugged adapter says nothing about the mains (unlike a PZEM that falls
        silent because the mains it is powered by died): the mains cross-check
        treats the meter as *unknown* then, never as *off*.
        """
        return self._port_lost and not self.link_up

    @property
    def link_up(self) -> bool:
        """Readings are flowing (the last read cycle, or one of the last few, succeeded)."""
        return bool(self._link)

    @property
    def energy_rejected(self) -> int:
        """Energy values withheld by the guard (decreases, implausible jumps)."""
        return sum(guard.rejected for guard in self._guards.values())

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                driver = self._connect()
                if driver is None:
                    return
                self._driver = driver
                try:
                    self._sample(driver)
                finally:
                    self._driver = None
                    driver.close()
            except Exception as exc:  # the sampling thread must never die
                if not self._internal_failure.failing:
                    log.exception("meter loop failed unexpectedly; restarting it")
                self._internal_failure.failed(repr(exc))
                self._link_down(f"internal error: {exc}")
                self._stopping.wait(self.policy.maximum)

    def _connect(self) -> MeterDriver | None:
        """Open a driver, retrying with backoff; ``None`` if stopped first."""
        policy = self.policy
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(MeterError),
            wait=tenacity.wait_exponential(
                multiplier=policy.initial, min=policy.initial, max=policy.maximum
            ),
            stop=lambda _state: self._stopping.is_set(),
            sleep=self._pause,
            before_sleep=self._open_failed,
            reraise=True,
        )
        try:
            return retrying(self._open)
        except MeterError:
            return None  # stopping while the meter was away

    def _pause(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _open(self) -> MeterDriver:
        driver = self._factory()
        driver.open()
        return driver

    def _open_failed(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        self._port_lost = isinstance(exc, MeterDisconnectedError)
        self._lost(str(exc) if exc is not None else "cannot open the meter")

    def _lost(self, cause: str) -> None:
        self._failure.failed(cause)
        self._link_down(cause)

    def _sample(self, driver: MeterDriver) -> None:
        channels = self._channels(driver)
        failed_cycles = 0
        next_due = self.clock.monotonic()
        while not self._stopping.is_set():
            try:
                error = self._cycle(driver, channels)
            except MeterDisconnectedError as exc:
                self.read_errors += 1
                self.reconnects += 1
                self._port_lost = True
                self._lost(str(exc))
                return
            if error is None:
                failed_cycles = 0
                if not self._link:
                    self._failure.recovered()
                    self._set_link(True, None)
            else:
                failed_cycles += 1
                if failed_cycles >= self.policy.down_after:
                    self._lost(error)
            now = self.clock.monotonic()
            next_due = max(next_due + self.config.interval, now)
            self._stopping.wait(next_due - now)

    def _channels(self, driver: MeterDriver) -> Sequence[int]:
        wanted = [c for c in self.config.channels if c in driver.channels]
        if len(wanted) != len(self.config.channels):
            log.warning(
                "meter.channels %s: %s has channels %s; reading %s",
                list(self.config.channels),
                driver.name,
                list(driver.channels),
                wanted or [driver.channels[0]],
            )
        return wanted or [driver.channels[0]]

    def _cycle(self, driver: MeterDriver, channels: Sequence[int]) -> str | None:
        """Read every channel once; ``None`` if at least one reading arrived, else the cause."""
        error: str | None = None
        delivered = False
        for channel in channels:
            if self._stopping.is_set():
                return None
            try:
                reading = driver.read(channel)
            except MeterDisconnectedError:
                raise
            except MeterError as exc:
                self.read_errors += 1
                error = str(exc)
                log.debug("meter read failed: %s", exc)
                continue
            self._deliver(self._guard(driver, reading))
            delivered = True
        return None if delivered else error

    def _guard(self, driver: MeterDriver, reading: Reading) -> Reading:
        guard = self._guards.get(reading.channel)
        if guard is None:
            guard = self._guards[reading.channel] = EnergyGuard(
                max_power_w=driver.max_power_w, resolution_wh=driver.energy_resolution_wh
            )
        before = guard.outcome
        energy = guard.check(reading.energy_wh, reading.monotonic, reading.power_w)
        if guard.outcome == "rejected" and before != "rejected":
            log.warning(
                "meter energy counter of channel %d went from %s to %s Wh: not published "
                "(counted in energy_rejected)",
                reading.channel,
                guard.published_wh,
                reading.energy_wh,
            )
        elif guard.outcome == "rebased":
            log.warning(
                "meter energy counter of channel %d settled on a new level (%s Wh); the "
                "published total continues from %s Wh",
                reading.channel,
                reading.energy_wh,
                energy,
            )
        if energy == reading.energy_wh:
            return reading
        return dataclasses.replace(reading, energy_wh=energy)

    def _deliver(self, reading: Reading) -> None:
        self.readings += 1
        self.last_reading_monotonic = reading.monotonic
        try:
            self._on_reading(reading)
        except Exception as exc:  # noqa: BLE001 - a consumer's bug must not stop sampling
            self._callback_failure.failed(repr(exc))
        else:
            if self._callback_failure.failing:
                self._callback_failure.recovered()

    def _link_down(self, cause: str) -> None:
        self._set_link(False, cause)

    def _set_link(self, up: bool, error: str | None) -> None:
        if up:
            self._port_lost = False
        if self._link is up:
            return
        self._link = up
        with contextlib.suppress(Exception):
            self._on_link(up, error)


def create_meter_source(
    config: BridgeConfig,
    *,
    clock: Clock,
    on_reading: OnReading | None = None,
    on_link: OnLink | None = None,
    policy: ReconnectPolicy = RECONNECT,
) -> MeterSource | None:
    """The meter source the configuration asks for; ``None`` for ``meter.type: none``.

    ``meter.type: simulated`` starts a :class:`SimulatedMeter` speaking
    ``simulation.meter_protocol`` behind a pseudo-terminal (in a temporary directory;
    ``meter.port`` is not used) and points the real driver at it, so the real driver code
    runs; the simulator is :attr:`MeterSource.simulator` and stops with the source.
    """
    meter = config.meter
    if meter.type == "none":
        return None
    simulator: SimulatedMeter | None = None
    if meter.type == "simulated":
        sim = config.simulation
        simulator = SimulatedMeter(
            sim.meter_protocol,
            baud=meter.baud,
            address=meter.address,
            voltage_v=sim.voltage_v,
            load_w=sim.load_w,
            noise=sim.noise,
        )
        meter_type = sim.meter_protocol
    else:
        meter_type = meter.type

    def port() -> str:
        if simulator is not None:
            return simulator.port
        if meter.port is None:  # the configuration's cross-checks require it
            raise MeterDisconnectedError(f"meter.port is not set for meter type {meter_type}")
        return meter.port

    def factory() -> MeterDriver:
        return create_driver(
            meter_type,
            port(),
            baud=meter.baud,
            address=meter.address,
            timeout=meter.timeout,
            clock=clock,
        )

    return MeterSource(
        meter,
        factory,
        clock,
        on_reading=on_reading,
        on_link=on_link,
        policy=policy,
        simulator=simulator,
    )
