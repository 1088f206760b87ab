"""``powerbridge demo``: start the stack, play the scenario, show it live, sum it up.

The demo watches the system the way Home Assistant would: over MQTT, logged in as
the ``homeassistant`` role (which may read everything of ours and send commands
to bridges).  It cuts and restores the simulated mains with ``simulate``
commands, records every change it sees and compares the counts with what the
scenario must produce (:mod:`bridge.demo.scenario`).

SIGINT, SIGTERM and SIGHUP only set a flag; the loop notices it within one tick
and everything is stopped and removed in ``finally``.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bridge.demo.scenario import SHUTDOWN_PHASES, Recorder, Timings, checks, summary_lines
from bridge.demo.stack import BASE, BRIDGE_ID, CLIENT_ID, DemoError, DemoStack, StackOptions
from bridge.model import MainsState
from bridge.mqtt.contract import BridgeTopics, CommandPayload
from bridge.stopsignals import StopSignals
from bridge.tui.fleet import Change
from bridge.tui.observer import BrokerAddress, FleetObserver
from bridge.tui.render import Screen, client_line, duration, render_fleet

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    timings: Timings = field(default_factory=Timings)
    forever: bool = False
    listen: str = "127.0.0.1"
    port: int | None = None
    keep: bool = False
    meter_protocol: str = "pzem004t"
    startup_timeout: float = 45.0
    tick: float = 0.25
    plain_every: float = 5.0
    """In plain-text mode, print the readings and the countdown this often."""


class Interrupted(Exception):  # noqa: N818 - a signal, not an error
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Stopper:
    """Turns SIGINT/SIGTERM/SIGHUP into a flag that the demo's loop checks."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._signals = StopSignals(self._handle, HANDLED_SIGNALS)

    def install(self) -> None:
        self._signals.install()

    def restore(self) -> None:
        self._signals.restore()

    def _handle(self, signum: int) -> None:  # the signal watcher's thread
        if self.signum is None:
            self.signum = signum
        self.event.set()

    def check(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.event.wait(seconds)
        self.check()


def _blips(t: Timings) -> str:
    return f"{t.blips} blip" if t.blips == 1 else f"{t.blips} blips"


def clock_label() -> str:
    return datetime.now().astimezone().strftime("%H:%M:%S")


class Demo:
    def __init__(self, options: DemoOptions, screen: Screen) -> None:
        self.options = options
        self.timings = options.timings
        self.screen = screen
        self.stopper = Stopper()
        self.stack: DemoStack | None = None
        self.observer: FleetObserver | None = None
        self.recorder = Recorder(time.monotonic())
        self.started = time.monotonic()
        self.step_title = "starting"
        self.step_index = 0
        self.last_plain = 0.0
        self.finished = False
        self.result_code = 1

    # ------------------------------------------------------------------ entry point
    def run(self) -> int:
        self.stopper.install()
        code = 1
        try:
            code = self._run()
        except Interrupted as exc:
            code = self._interrupted(exc)
        finally:
            self._close()
            self.stopper.restore()
        return code

    def _interrupted(self, exc: Interrupted) -> int:
        self.screen.close()
        self.screen.line(f"{exc} received: stopping the client, the bridge and the broker")
        if self.options.forever and self.finished:
            return self.result_code
        return 128 + exc.signum

    def _close(self) -> None:
        if self.observer is not None:
            self.observer.stop()
        if self.stack is not None:
            workdir = self.stack.workdir
            self.stack.close()
            if self.options.keep:
                self.screen.line(f"kept {workdir} (logs and configurations)")
            else:
                self.screen.line(f"stopped everything and removed {workdir}")

    # ------------------------------------------------------------------ the story
    def _run(self) -> int:
        t = self.timings
        self.screen.line(
            "powerbridge demo: a private Mosquitto, a bridge with a simulated meter (behind a "
            "pseudo-terminal) and mains pin, and a shutdown client in dry run"
        )
        self.screen.line(
            f"scenario: normal load; {_blips(t)} of {t.blip:g} s; an outage longer than "
            f"the client's {t.delay:g} s delay; power restored (about {t.estimate():.0f} s)."
            " Ctrl-C stops everything."
        )
        self.stack = DemoStack(
            StackOptions(
                timings=t,
                listen=self.options.listen,
                port=self.options.port,
                keep=self.options.keep,
                meter_protocol=self.options.meter_protocol,
            )
        )
        for old in self.stack.removed_stale:
            self.screen.line(f"removed {old}, left behind by a demo that was killed")
        self.screen.line(f"working directory: {self.stack.workdir}")
        broker = self.stack.start_broker()
        self.stopper.check()
        bridge_path, client_path = self.stack.write_configs()
        self.stack.start_programs(bridge_path, client_path)
        self._start_archive()
        bridge, client = self.stack.bridge, self.stack.client
        self.screen.line(
            f"started mosquitto (pid {self.stack.mosquitto.pid if self.stack.mosquitto else '?'}, "
            f"port {broker.port}), "
            f"bridge (pid {bridge.pid if bridge else '?'}), "
            f"shutdown client (pid {client.pid if client else '?'})"
        )
        ha = broker.homeassistant
        self.observer = FleetObserver(
            BrokerAddress(
                host=self.stack.connect_host,
                port=broker.port,
                username=ha.username,
                password=ha.password,
            ),
            BASE,
            client_id="powerbridge-demo-watch",
        )
        self.observer.start()
        if self.options.forever:
            self._home_assistant_help()
        self._wait_ready()
        self._play()
        self.finished = True
        results = checks(self.recorder, t)
        self.result_code = 0 if all(c.ok for c in results) else 1
        self.screen.close()
        for line in summary_lines(results):
            self.screen.line(line)
        self._archive_summary()
        if self.result_code != 0:
            self._show_logs()
        if self.options.forever:
            self.step_title = "running until Ctrl-C"
            self.screen.line("still running (--forever); Ctrl-C stops everything")
            self._home_assistant_help()
            self._pace(float("inf"))
        return self.result_code

    def _start_archive(self) -> None:
        """The archive on SQLite beside the bridge: every sample of the demo, and its view."""
        import importlib.util

        if self.stack is None:
            return
        if importlib.util.find_spec("starlette") is None:
            self.screen.line("archive: not started (pip install 'powerbridge[archive]')")
            return
        self.stack.start_archive()
        url = self.stack.archive_url()
        if url is None:
            archive = self.stack.archive
            tail = archive.log_tail() if archive else ""
            raise DemoError(f"the archive did not start; its log ends with:\n{tail}")
        self.screen.line(f"archive on SQLite: management view at {url}")

    def _archive_summary(self) -> None:
        """What the archive stored of the demo, counted by a query of its database."""
        if self.stack is None or self.stack.archive is None:
            return
        from bridge.archive.store.sqlite import SqliteStore

        store = SqliteStore(self.stack.workdir / "archive.db")
        try:
            stored, missing = store.stored_count(), sum(store.missing().values())
        except Exception as exc:  # noqa: BLE001 - a summary line, not a verdict
            self.screen.line(f"archive: could not be read ({exc.__class__.__name__})")
            return
        finally:
            store.close()
        self.screen.line(f"archive: {stored} samples stored, {missing} sequence numbers missing")

    def _wait_ready(self) -> None:
        self._begin_step("waiting for the bridge and the client to come online")

        def ready() -> bool:
            assert self.observer is not None  # noqa: S101 - set before this runs
            with self.observer.locked() as fleet:
                b = fleet.bridges.get(BRIDGE_ID)
                c = fleet.clients.get(CLIENT_ID)
                return bool(
                    b is not None
                    and b.status == "online"
                    and b.mains is not None
                    and b.mains.state is MainsState.ON
                    and b.readings > 0
                    and c is not None
                    and c.status == "online"
                    and c.phase == "idle"
                )

        if not self._pace(self.options.startup_timeout, until=ready):
            raise DemoError(
                f"the bridge and the client were not both online and idle within "
                f"{self.options.startup_timeout:.0f} s.\n{self._log_tails()}"
            )
        self.screen.line(f"{clock_label()}  ready: bridge online with mains on, client idle")

    def _play(self) -> None:
        t = self.timings
        self._phase("normal", f"normal load for {t.normal:g} s")
        self._pace(t.normal)

        self._phase(
            "blips",
            f"{_blips(t)} of {t.blip:g} s each (the bridge announces an outage only "
            f"after {t.confirm_off:g} s off)",
        )
        for i in range(t.blips):
            self._note(f"blip {i + 1} of {t.blips}: mains cut for {t.blip:g} s")
            self._simulate("off")
            self.stopper.sleep(t.blip)
            self._simulate("on")
            self._pace(t.blip_gap)
        self._pace(t.settle)

        self._phase("outage", f"an outage longer than the client's {t.delay:g} s delay")
        self._simulate("off")
        limit = t.delay + t.confirm_off + t.margin
        if self._pace(limit, until=lambda: self.recorder.current.shutdowns > 0):
            self._pace(t.hold)
        else:
            self._note(f"no shutdown reported within {limit:g} s")

        self._phase("restore", "power restored")
        self._simulate("on")
        self._pace(
            t.confirm_on + t.margin,
            until=lambda: self.recorder.current.restores_announced > 0,
        )
        self._pace(1.0)  # reports that follow the restore (the client going idle)
        self.recorder.end(time.monotonic(), self._readings())

    # ------------------------------------------------------------------ helpers
    def _phase(self, key: str, title: str) -> None:
        self.recorder.begin(key, title, time.monotonic(), self._readings())
        self._begin_step(title)

    def _begin_step(self, title: str) -> None:
        self.step_index += 1
        self.step_title = title
        self.screen.line(f"{clock_label()}  ── {title}")

    def _note(self, text: str) -> None:
        self.screen.line(f"{clock_label()}  {text}")

    def _readings(self) -> int:
        if self.observer is None:
            return 0
        with self.observer.locked() as fleet:
            view = fleet.bridges.get(BRIDGE_ID)
            return view.readings if view is not None else 0

    def _simulate(self, mains: str) -> None:
        if self.observer is None:
            raise DemoError("not connected to the broker")
        command = CommandPayload(
            name="simulate",
            args={"mains": mains},
            ts=datetime.now(UTC),
            nonce=uuid.uuid4().hex,
        )
        self.observer.publish(BridgeTopics(BASE, BRIDGE_ID).cmd("simulate"), command.encode())

    def _pump(self) -> None:
        if self.observer is None:
            return
        for change in self.observer.drain():
            self.recorder.observe(change)
            self._show_change(change)

    def _show_change(self, change: Change) -> None:
        text = change.describe()
        if change.kind == "client_state" and change.value in SHUTDOWN_PHASES:
            text += "  ← it would shut down now" if "dry run" in change.detail else ""
        self.screen.line(f"{clock_label()}  {text}")

    def _pace(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        """Let ``seconds`` pass while showing what happens; True as soon as ``until()``."""
        end = time.monotonic() + seconds
        while True:
            self.stopper.check()
            self._pump()
            if self.stack is not None:
                self.stack.check_children()
            if until is not None and until():
                return True
            now = time.monotonic()
            if now >= end:
                return False
            self._draw(now)
            self.stopper.sleep(min(self.options.tick, end - now))

    def _draw(self, now: float) -> None:
        if self.observer is None:
            return
        elapsed = now - self.started
        if self.screen.live:
            with self.observer.locked() as fleet:
                body = render_fleet(fleet, now, ascii_only=self.screen.ascii_only)
            header = f"powerbridge demo  {duration(elapsed)}  ▸ {self.step_title}"
            if self.screen.ascii_only:
                header = header.replace("▸", ">")
            self.screen.frame([header, *body, "Ctrl-C stops everything"])
            return
        if now - self.last_plain < self.options.plain_every:
            return
        self.last_plain = now
        with self.observer.locked() as fleet:
            b = fleet.bridges.get(BRIDGE_ID)
            c = fleet.clients.get(CLIENT_ID)
            parts = []
            if b is not None:
                power, volts = b.reading("power_w"), b.reading("voltage_v")
                mains = "?" if b.mains is None else b.mains.state.value
                parts.append(
                    f"{BRIDGE_ID}: mains {mains}, "
                    f"{'—' if power is None else f'{power:.1f}'} W, "
                    f"{'—' if volts is None else f'{volts:.1f}'} V"
                )
            if c is not None:
                parts.append(" ".join(client_line(c, now, ascii_only=True).split()))
        if parts:
            self.screen.line(f"{clock_label()}  " + " | ".join(parts))

    def _log_tails(self) -> str:
        if self.stack is None:
            return ""
        return "\n".join(
            f"--- {child.name} log ({child.log_path.name}):\n{child.log_tail()}"
            for child in self.stack.children
        )

    def _show_logs(self) -> None:
        for line in self._log_tails().splitlines():
            self.screen.line(line)

    def _home_assistant_help(self) -> None:
        if self.stack is None or self.stack.broker is None:
            return
        broker = self.stack.broker
        ha = broker.homeassistant
        where = (
            "this machine only; use --listen 0.0.0.0 to reach it from another"
            if self.options.listen == "127.0.0.1"
            else f"listening on {self.options.listen}"
        )
        bridge_yaml = self.stack.workdir / "bridge.yaml"
        for line in (
            "Home Assistant: add the MQTT integration (Settings → Devices & services) with",
            f"  broker    {self.stack.connect_host}   ({where})",
            f"  port      {broker.port}",
            f"  username  {ha.username}",
            f"  password  {ha.password}",
            '  The bridge appears as the device "powerbridge demo", the client as "demo PC".',
            "Cut and restore the simulated mains from another terminal:",
            f"  powerbridge simulate mains off -c {bridge_yaml}",
            f"  powerbridge simulate mains on -c {bridge_yaml}",
            "Watch everything:",
            f"  powerbridge watch --broker {self.stack.connect_host}:{broker.port} "
            f"--username {ha.username} --password-file {self.stack.workdir / 'ha.password'}",
        ):
            self.screen.line(line)


def run_demo(options: DemoOptions, screen: Screen | None = None) -> int:
    """Run the demo; returns the exit code (0 as expected, 1 not, 128+N on signal N)."""
    return Demo(options, screen or Screen()).run()
