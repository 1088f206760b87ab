"""The bridge daemon: wiring and lifecycle only.

Sources (meter, mains sensor) run in their own threads and *post* what they
produce to the main loop; paho's network thread does the same.  The main loop is
the only thread that touches the spool and decides what to publish, so nothing
needs a lock.  Order of a run:

1. open the database (spool, outage store, discovery record), load the signing key;
2. start the publisher (connects in the background: a broker down at boot is not
   fatal), the mains sensor and the meter source, the LEDs;
3. tell systemd we are ready; loop: run posted work, pump the publisher, publish
   ``mains`` every 30 s and ``health`` every ``health.interval``, update the LEDs,
   ping the watchdog (only while the loop turns);
4. on SIGTERM/SIGINT: stop the sources, send what is pending, wait briefly for
   acknowledgements, publish ``offline``, disconnect, make a final sync point of the
   spool, exit 0.
"""

from __future__ import annotations

import logging
import queue
import secrets
import signal
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any, Final, Protocol

from bridge import __version__
from bridge.clock import Clock, SystemClock
from bridge.config.bridge import BridgeConfig
from bridge.db import connect, db_path
from bridge.errors import PowerbridgeError, UsageError
from bridge.identity import device_id as configured_device_id
from bridge.identity import device_name as configured_device_name
from bridge.model import MainsEvent, MainsState, Outage, Reading
from bridge.mqtt import signing
from bridge.mqtt.contract import (
    BOOT_ID_LENGTH,
    MAINS_REFRESH_S,
    QOS_HEALTH,
    QOS_MAINS,
    QOS_OUTAGE,
    EventPayload,
    HealthPayload,
    OutagePayload,
)
from bridge.mqtt.discovery import discovery_messages
from bridge.mqtt.publisher import BridgePublisher, mains_payload
from bridge.mqtt.spool import Spool

log = logging.getLogger(__name__)

MAX_SLEEP_S: Final = 1.0
"""The main loop wakes at least this often (timers, watchdog)."""
HEALTH_SOON_S: Final = 0.5
"""After a meter link change or a connect, the health report follows this soon."""
STOP_DRAIN_S: Final = 1.5
"""On the way out: how long to wait for acknowledgements of what is in flight."""


class Notifier(Protocol):
    """What the daemon needs from the service manager (``bridge.deployment.notify``)."""

    def ready(self, status: str | None = None) -> bool: ...
    def stopping(self, status: str | None = None) -> bool: ...
    def status(self, text: str) -> bool: ...
    def watchdog(self) -> bool: ...


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
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.device_id = configured_device_id(config)
        self.device_name = configured_device_name(config)
        self.loop = MainLoop()
        self._notifier = notifier
        self._pin_factory = pin_factory
        self._install_signals = install_signals
        self._stop = threading.Event()
        self._key: bytes | None = None
        self._outage_count = 0
        self._last_outage: Outage | None = None
        self._mains: MainsEvent | None = None
        self._next_mains = 0.0
        self.boot = secrets.token_hex(BOOT_ID_LENGTH // 2)
        """This run's id in every ``mains`` message (a new one at every start)."""
        self._mains_n = 0
        self._restored_off = False
        """The state persisted before this start was an open outage (history until confirmed)."""
        self._next_health = 0.0
        self._leds_state: tuple[bool, bool] | None = None
        self._status_line = ""
        self.started = threading.Event()
        """Set once everything is running (tests wait for it)."""
        # Created in run():
        self.spool: Spool | None = None
        self.publisher: BridgePublisher | None = None
        self.sensor: Any = None
        self.meter: Any = None
        self._store: Any = None
        self._health: Any = None
        self._leds: Any = None
        self._beat: Any = None
        self._conns: list[Any] = []
        self._advertisement: Any = None
        self._advertiser: threading.Thread | None = None

    # ------------------------------------------------------------------ control
    def request_stop(self) -> None:
        """Ask the daemon to stop (any thread, or a signal handler)."""
        self._stop.set()
        self.loop.post(None)

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.request_stop()

    # ------------------------------------------------------------------ run
    def run(self) -> int:
        """Start everything, loop until asked to stop, stop everything; return the exit code."""
        if self._install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._signal)
            signal.signal(signal.SIGINT, self._signal)
        try:
            self._open()
            self._start()
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _open(self) -> None:
        from bridge.outages import OutageStore

        data_dir = Path(self.config.device.data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            path = db_path(data_dir)
            self.spool = Spool(connect(path), self.config.spool, clock=self.clock)
            store_conn, pub_conn = connect(path), connect(path)
        except (OSError, sqlite3.Error) as exc:
            raise PowerbridgeError(f"cannot open the database in {data_dir}: {exc}") from None
        self._conns = [store_conn, pub_conn]
        self._store = OutageStore(store_conn, clock=self.clock)
        if self.config.signing.key_file:
            try:
                self._key = signing.load_key(self.config.signing.key_file)
            except signing.SigningKeyError as exc:
                raise UsageError(f"signing.key_file: {exc}") from None
        discovery = discovery_messages(
            self.config,
            device_id=self.device_id,
            device_name=self.device_name,
            sw_version=__version__,
        )
        self.publisher = BridgePublisher(
            self.config,
            self.spool,
            device_id=self.device_id,
            conn=pub_conn,
            post=self.loop.post,
            discovery=discovery,
            commands={"simulate": self._simulate},
            signing_key=self._key,
            clock=self.clock,
        )

    def _start(self) -> None:
        from bridge.health import HealthMonitor
        from bridge.leds import FaultLeds
        from bridge.mains import MainsSensor
        from bridge.meters.source import create_meter_source

        publisher = self.publisher
        assert publisher is not None  # noqa: S101 - set by _open
        self._refresh_outages()
        self.sensor = MainsSensor(
            self.config.mains,
            self._store,
            on_event=lambda event: self.loop.post(lambda: self._on_mains(event)),
            clock=self.clock,
            pin_factory=self._pin_factory,
            simulation=self.config.simulation.enabled,
        )
        self.meter = create_meter_source(
            self.config,
            clock=self.clock,
            on_reading=self._reading_from_meter,
            on_link=lambda up, error: self.loop.post(lambda: self._on_link(up, error)),
        )
        self._health = HealthMonitor(
            self.config.health, Path(self.config.device.data_dir), clock=self.clock
        )
        self._leds = FaultLeds(self.config.leds, clock=self.clock, pin_factory=self._pin_factory)
        publisher.start()
        restored = self.sensor.current
        self._restored_off = restored is not None and restored.state is MainsState.OFF
        # What was persisted before this start is history: until the input has been stable
        # for its confirmation window, this run announces "unknown" (with a sequence number
        # of its own, so that nothing said before the start can pass for newer).
        self._set_mains(self._confirming())
        self.sensor.start()
        if self.meter is not None:
            self.meter.start()
        self._leds.start()
        if self.config.mqtt.advertise:
            self._advertiser = threading.Thread(
                target=self._advertise, name="mdns-advertise", daemon=True
            )
            self._advertiser.start()
        self._next_health = self.clock.monotonic()
        self._beat = self._heartbeat()
        meter = self.config.meter.type
        log.info(
            "bridge %s running (meter %s, mains %s, broker %s:%d)",
            self.device_id,
            meter,
            self.config.mains.source,
            publisher.link.host,
            publisher.link.port,
        )
        if self._notifier is not None:
            self._notifier.ready(f"running; connecting to {publisher.link.host}")
        self.started.set()

    def _confirming(self) -> MainsEvent:
        return MainsEvent(
            state=MainsState.UNKNOWN,
            began=self.clock.utcnow(),
            began_monotonic=self.clock.monotonic(),
            seq=self.sensor.reserve_seq(),
            source="start",
        )

    def _heartbeat(self) -> Any:
        if self._notifier is None:
            return None
        from bridge.deployment.notify import Heartbeat, Notifier

        if not isinstance(self._notifier, Notifier):
            return None
        return Heartbeat(self._notifier)

    def _loop(self) -> None:
        publisher = self.publisher
        assert publisher is not None  # noqa: S101 - set by _open
        timeout = 0.0
        while not self._stop.is_set():
            self.loop.run(timeout)
            if self._stop.is_set():
                break
            now = self.clock.monotonic()
            deadlines = [now + MAX_SLEEP_S]
            pumped = publisher.pump()
            if pumped is not None:
                deadlines.append(pumped)
            deadlines.append(self._timers(now))
            self._update_leds_and_status()
            if self._beat is not None:
                self._beat.tick()
            timeout = max(0.0, min(deadlines) - self.clock.monotonic())

    def _timers(self, now: float) -> float:
        publisher = self.publisher
        assert publisher is not None  # noqa: S101 - set by _open
        if self._mains is not None and now >= self._next_mains:
            self._publish_mains()
        if now >= self._next_health:
            self._next_health = now + self.config.health.interval
            self._publish_health()
        return min(self._next_mains if self._mains else now + MAX_SLEEP_S, self._next_health)

    def _advertise(self) -> None:
        """Announce the broker by mDNS (``mqtt.advertise``); blocks ~1 s, hence a thread."""
        from bridge.mqtt import mdns

        mqtt = self.config.mqtt
        host, port, tls = mdns.advertised_endpoint(mqtt.host, mqtt.effective_port, mqtt.tls.enabled)
        try:
            advertisement = mdns.advertise_broker(host, port, self.device_id, tls)
        except OSError as exc:
            log.warning("cannot advertise the broker by mDNS: %s", exc)
            return
        if self._stop.is_set():
            advertisement.close()
        else:
            self._advertisement = advertisement

    # ------------------------------------------------------------------ sources
    def _reading_from_meter(self, reading: Reading) -> None:
        """Meter thread: the mains cross-check at once, the rest on the main loop."""
        sensor = self.sensor
        if sensor is not None:
            sensor.feed_meter(reading)
        publisher = self.publisher
        if publisher is not None:
            self.loop.post(lambda: _discard(publisher.add_reading(reading)))

    def _on_link(self, up: bool, error: str | None) -> None:
        log.info("meter link %s%s", "up" if up else "down", f": {error}" if error else "")
        meter, sensor = self.meter, self.sensor
        if not up and meter is not None and sensor is not None and meter.port_lost:
            sensor.meter_unavailable(error or "port lost")
        self._next_health = min(self._next_health, self.clock.monotonic() + HEALTH_SOON_S)

    def _refresh_outages(self) -> None:
        self._outage_count = self._store.count()
        self._last_outage = self._store.last_finished()

    def _on_mains(self, event: MainsEvent) -> None:
        publisher = self.publisher
        assert publisher is not None  # noqa: S101 - set by _open
        self._refresh_outages()
        now = self.clock.utcnow()
        payload: EventPayload | None = None
        continued, self._restored_off = self._restored_off, False
        if event.state is MainsState.OFF and continued:
            log.warning("mains still off after the start: the outage stored before goes on")
        elif event.state is MainsState.OFF:
            payload = EventPayload(
                self.device_id, "outage_started", 0, event.seq, now, started=event.began
            )
        elif event.state is MainsState.ON:
            last = self._last_outage
            if last is not None and last.ended == event.began:
                payload = EventPayload(
                    self.device_id,
                    "outage_ended",
                    0,
                    event.seq,
                    now,
                    started=last.started,
                    ended=last.ended,
                    duration_s=last.duration_s,
                )
        if payload is not None:
            template = payload
            publisher.add_event(lambda seq: replace(template, seq=seq).encode())
        self._set_mains(event)

    def _set_mains(self, event: MainsEvent) -> None:
        publisher = self.publisher
        assert publisher is not None  # noqa: S101 - set by _open
        self._mains = event
        if event.state is not MainsState.UNKNOWN:
            since = event.began if event.state is MainsState.OFF else None
            try:
                open_outage = self._store.current() if since is not None else None
            except sqlite3.Error:
                open_outage = None
            if open_outage is not None:
                since = open_outage.started  # an outage that went on across a restart
            outage = OutagePayload(self.device_id, since, event.seq).encode()
            publisher.retain(publisher.topics.outage, lambda: outage, QOS_OUTAGE)
        self._publish_mains()

    def _publish_mains(self) -> None:
        publisher = self.publisher
        event = self._mains
        if publisher is None or event is None:
            return
        self._next_mains = self.clock.monotonic() + MAINS_REFRESH_S
        last = self._last_outage
        count, key, device = self._outage_count, self._key, self.device_id
        last_s = last.duration_s if last is not None else None
        boot = self.boot

        def produce() -> bytes:
            # Numbered when it is produced (sent), so that n grows in the order of sending.
            self._mains_n += 1
            return mains_payload(
                device,
                event,
                clock=self.clock,
                outage_count=count,
                last_outage_s=last_s,
                boot=boot,
                n=self._mains_n,
                key=key,
            )

        publisher.retain(publisher.topics.mains, produce, QOS_MAINS)

    def _publish_health(self) -> None:
        from bridge.health import DynamicHealth, health_values

        publisher, spool = self.publisher, self.spool
        if publisher is None or spool is None or self._health is None:
            return
        meter = self.meter
        age = None
        if meter is not None and meter.last_reading_monotonic is not None:
            age = max(0.0, self.clock.monotonic() - meter.last_reading_monotonic)
        dynamic = DynamicHealth(
            meter_link=bool(meter.link_up) if meter is not None else None,
            last_reading_age_s=age,
            broker_connected=publisher.connected,
            broker_reconnects=publisher.reconnects,
            spool_depth=spool.depth,
            spool_dropped=spool.dropped,
            flap_count=self.sensor.flap_count if self.sensor is not None else None,
        )
        snapshot = self._health.snapshot(dynamic)
        payload = HealthPayload(self.device_id, health_values(snapshot)).encode()
        publisher.retain(publisher.topics.health, lambda: payload, QOS_HEALTH)

    def _update_leds_and_status(self) -> None:
        publisher = self.publisher
        if publisher is None:
            return
        meter_ok = self.meter is None or bool(self.meter.link_up)
        state = (publisher.connected, meter_ok)
        if state == self._leds_state:
            return
        self._leds_state = state
        if self._leds is not None:
            self._leds.update(broker_ok=state[0], meter_ok=meter_ok)
        if self._notifier is not None:
            broker = "connected" if state[0] else "broker unreachable"
            meter = "" if self.meter is None else ("; meter ok" if meter_ok else "; meter silent")
            self._notifier.status(f"{broker}{meter}")
        if state[0]:
            self._next_health = min(self._next_health, self.clock.monotonic() + HEALTH_SOON_S)

    # ------------------------------------------------------------------ commands
    def _simulate(self, args: dict[str, Any]) -> None:
        state = args.get("mains")
        if not isinstance(state, str):
            raise UsageError("simulate needs args.mains = 'on' or 'off'")
        if self.sensor is None:
            raise UsageError("the mains sensor is not running")
        self.sensor.simulate(state)
        # A simulated meter follows the simulated mains (0 V, or a silent PZEM), so that
        # `mains.source: meter|any|all` can be tried without hardware too.
        simulator = getattr(self.meter, "simulator", None)
        if simulator is not None:
            simulator.set_mains(state == "on")

    # ------------------------------------------------------------------ shutdown
    def _shutdown(self) -> None:
        if self._notifier is not None:
            self._notifier.stopping("stopping")
        for name, stop in (("meter", self.meter), ("mains sensor", self.sensor)):
            if stop is None:
                continue
            try:
                stop.stop() if name == "meter" else stop.close()
            except Exception:
                log.exception("error while stopping the %s", name)
        publisher = self.publisher
        if publisher is not None:
            self.loop.run(0.0)  # readings and events already posted: spool them
            self._drain(publisher)
            publisher.stop()
            self.loop.run(0.0)  # acknowledgements that arrived meanwhile
        if self.spool is not None:
            try:
                self.spool.close()
            except Exception:
                log.exception("cannot close the spool")
        if self._leds is not None:
            self._leds.close()
        if self._advertiser is not None:
            self._advertiser.join(5)
        if self._advertisement is not None:
            try:
                self._advertisement.close()
            except Exception:
                log.exception("cannot withdraw the mDNS advertisement")
        for conn in self._conns:
            conn.close()
        log.info("bridge %s stopped", self.device_id)

    def _drain(self, publisher: BridgePublisher) -> None:
        """Flush live samples and wait (briefly) until the broker has acknowledged them."""
        if not publisher.connected:
            return
        publisher.pump()
        publisher.flush_live()
        deadline = self.clock.monotonic() + STOP_DRAIN_S
        while publisher.inflight_messages and publisher.connected:
            left = deadline - self.clock.monotonic()
            if left <= 0:
                break
            self.loop.run(min(left, 0.1))


def _discard(_value: object) -> None:
    """Make a callable with a result fit for :meth:`MainLoop.post`."""
