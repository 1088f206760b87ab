"""The bridge daemon: wiring and lifecycle only.

Every part — database, spool, publisher, mains report, mains sensor, meter source,
UPS source, LEDs, mDNS advertisement — is a :class:`bridge.parts.Part`, started in that order by
one :class:`~bridge.parts.Parts` and stopped in reverse on SIGTERM/SIGINT (sources
first; the publisher sends what is pending before it disconnects; the spool makes its
final sync point).  Sources run in their own threads and *post* what they produce to
the :class:`~bridge.parts.MainLoop`; the main thread runs it, pumps the publisher, lets
the reports and the link status do what is due and pings the watchdog, and is the only
thread that touches the spool.  The daemon keeps no facts of its own: the mains state
is in the :class:`~bridge.mains.OutageStore`, health in :mod:`bridge.health`, LED policy in
:mod:`bridge.leds`, simulation in the simulated sources (:mod:`bridge.mains.pin`).
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any, Final, Protocol

from bridge import __version__
from bridge.advertiser import Advertiser
from bridge.clock import Clock, SystemClock
from bridge.config.bridge import BridgeConfig
from bridge.db import connect, db_path
from bridge.errors import PowerbridgeError
from bridge.health import HealthMonitor, HealthReport, daemon_health
from bridge.identity import device_id as configured_device_id
from bridge.identity import device_name as configured_device_name
from bridge.leds import FaultLeds, LinkStatus
from bridge.mains import MainsSensor, OutageStore
from bridge.mains.pin import simulate_command
from bridge.mains.report import MainsReport
from bridge.meters.source import create_meter_source
from bridge.model import Reading
from bridge.mqtt import signing
from bridge.mqtt.discovery import discovery_messages
from bridge.mqtt.publisher import BridgePublisher
from bridge.mqtt.spool import Spool
from bridge.parts import Hooks, MainLoop, Parts, PublisherPart
from bridge.stopsignals import StopSignals
from bridge.ups.source import UpsPublication, ups_source

__all__ = ["Daemon", "MainLoop", "Notifier"]

log = logging.getLogger(__name__)

MAX_SLEEP_S: Final = 1.0
"""The main loop wakes at least this often (timers, watchdog)."""


class Notifier(Protocol):
    """What the daemon needs from the service manager (``bridge.deployment.notify``)."""

    def ready(self, status: str | None = None) -> bool: ...
    def stopping(self, status: str | None = None) -> bool: ...
    def status(self, text: str) -> bool: ...
    def watchdog(self) -> bool: ...


class Daemon:
    """The running bridge (see the module docstring).  ``run()`` blocks until stopped."""

    def __init__(
        self,
        config: BridgeConfig,
        *,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        pin_factory: Any | None = None,
        install_signals: bool = True,
    ) -> None:
        self.config, self.clock = config, clock or SystemClock()
        self.device_id = configured_device_id(config)
        self.loop = MainLoop()
        self.parts = Parts()
        self.started = threading.Event()
        """Set once everything is running (tests wait for it)."""
        self.publisher: BridgePublisher | None = None
        self._notifier, self._pin_factory = notifier, pin_factory
        self._install_signals = install_signals
        self._stop = threading.Event()
        self._tickers: list[UpsPublication] = []
        """More ``tick(now) -> next`` of the main loop (the UPS publication)."""

    def request_stop(self) -> None:
        """Ask the daemon to stop (any thread, or a signal handler)."""
        self._stop.set()
        self.loop.post(None)

    def _signal(self, signum: int) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.request_stop()

    def run(self) -> int:
        """Start everything, loop until asked to stop, stop everything; return the exit code."""
        signals = StopSignals(self._signal)
        if self._install_signals:
            signals.install()  # off the main thread (tests), it leaves signals alone
        try:
            self._loop(*self._start())
        finally:
            if self._notifier is not None:
                self._notifier.stopping("stopping")
            self.parts.stop_all()
            signals.restore()
            log.info("bridge %s stopped", self.device_id)
        return 0

    def _start(self) -> tuple[BridgePublisher, MainsReport, HealthReport, LinkStatus]:
        config, clock, parts, post = self.config, self.clock, self.parts, self.loop.post
        data_dir = Path(config.device.data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            conns = [connect(db_path(data_dir)) for _ in range(3)]
            for conn in conns:
                parts.start("database connection", Hooks(stop=conn.close))
            spool = Spool(conns[0], config.spool, clock=clock)
        except (OSError, sqlite3.Error) as exc:
            raise PowerbridgeError(f"cannot open the database in {data_dir}: {exc}") from None
        parts.start("spool", Hooks(stop=spool.close))
        store = OutageStore(conns[1], clock=clock)
        key = signing.configured_key(config.signing.key_file, "bridge.yaml")
        sensor = MainsSensor(
            config.mains,
            store,
            on_change=lambda change: post(lambda: report.changed(change)),
            clock=clock,
            pin_factory=self._pin_factory,
            simulation=config.simulation.enabled,
            with_ups=config.ups.enabled and config.meter.type == "none",
        )

        def on_reading(reading: Reading) -> None:  # meter thread: the cross-check at once
            sensor.feed_meter(reading)
            post(lambda: _discard(publisher.add_reading(reading)))

        def on_link(up: bool, error: str | None) -> None:  # main loop
            log.info("meter link %s%s", "up" if up else "down", f": {error}" if error else "")
            if not up and meter is not None and meter.port_lost:
                sensor.meter_unavailable(error or "port lost")
            health.soon()

        meter = create_meter_source(
            config,
            clock=clock,
            on_reading=on_reading,
            on_link=lambda up, error: post(lambda: on_link(up, error)),
        )
        followers = [meter.follow_mains] if meter is not None else []
        publisher = self.publisher = BridgePublisher(
            config,
            spool,
            device_id=self.device_id,
            conn=conns[2],
            post=post,
            discovery=discovery_messages(
                config,
                device_id=self.device_id,
                device_name=configured_device_name(config),
                sw_version=__version__,
            ),
            commands={"simulate": simulate_command(sensor, followers)},
            signing_key=key,
            clock=clock,
        )
        report = MainsReport(publisher, store, self.device_id, clock, key)
        monitor = HealthMonitor(config.health, data_dir, clock=clock)
        health = HealthReport(
            monitor,
            publisher,
            lambda: daemon_health(
                clock=clock, publisher=publisher, spool=spool, meter=meter, sensor=sensor, ups=ups
            ),
            device_id=self.device_id,
        )
        ups = None
        if config.ups.enabled:
            publication = UpsPublication(publisher, self.device_id, clock, report.mark, key)
            self._tickers.append(publication)
            ups = ups_source(config.ups, sensor, publication, post, on_link=health.soon)
        leds = FaultLeds(config.leds, clock=clock, pin_factory=self._pin_factory)
        status = LinkStatus(
            leds,
            broker_ok=lambda: publisher.connected,
            meter_ok=(lambda: meter.link_up) if meter is not None else None,
            status=self._notifier.status if self._notifier is not None else None,
            on_broker_up=health.soon,
        )
        parts.start("publisher", PublisherPart(publisher, self.loop, clock))
        parts.start("mains report", report)
        parts.start("mains sensor", sensor)
        if meter is not None:
            parts.start("meter", meter)
        if ups is not None:
            parts.start("UPS", ups)
        parts.start("LEDs", leds)
        if config.mqtt.advertise:
            parts.start("mDNS advertisement", Advertiser(config.mqtt, self.device_id))
        link = publisher.link
        what = (config.meter.type, config.mains.source, f"{link.host}:{link.port}")
        log.info("bridge %s running (meter %s, mains %s, broker %s)", self.device_id, *what)
        if self._notifier is not None:
            self._notifier.ready(f"running; connecting to {link.host}")
        self.started.set()
        return publisher, report, health, status

    def _loop(
        self,
        publisher: BridgePublisher,
        report: MainsReport,
        health: HealthReport,
        status: LinkStatus,
    ) -> None:
        beat = _heartbeat(self._notifier)
        timeout = 0.0
        while not self._stop.is_set():
            self.loop.run(timeout)
            if self._stop.is_set():
                break
            now = self.clock.monotonic()
            deadlines = [now + MAX_SLEEP_S, report.tick(now), health.tick(now)]
            deadlines.extend(ticker.tick(now) for ticker in self._tickers)
            pumped = publisher.pump()
            if pumped is not None:
                deadlines.append(pumped)
            status.tick()
            if beat is not None:
                beat.tick()
            timeout = max(0.0, min(deadlines) - self.clock.monotonic())


def _heartbeat(notifier: Notifier | None) -> Any:
    """The watchdog gate, with systemd's notifier only (a test's notifier has none)."""
    if notifier is None:
        return None
    from bridge.deployment.notify import Heartbeat
    from bridge.deployment.notify import Notifier as SystemdNotifier

    return Heartbeat(notifier) if isinstance(notifier, SystemdNotifier) else None


def _discard(_value: object) -> None:
    """Make a callable with a result fit for :meth:`MainLoop.post`."""
