"""`powerbridge mains`: watch the mains-sense pin live."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from bridge.cli._common import DEFAULT_BRIDGE_CONFIG, add_command, add_config_option
from bridge.errors import ExitCode, UsageError

DESCRIPTION = """\
Watch the mains-sense pin of this bridge live, as the daemon would judge it: every
raw edge, every blip (a change shorter than its confirmation window: counted, not
announced) and every announced change, with the time of its first edge.

  powerbridge mains watch -c /etc/powerbridge/bridge.yaml

Uses the `mains` settings of the configuration (pin, pull, active_high, bounce_time,
confirm_off, confirm_on; the defaults when there is no configuration yet) and always
watches the pin, whatever `mains.source` says; `--pin N` watches another BCM pin.
It keeps its own count and sequence numbers and writes nothing to the bridge's
database. Stop the powerbridge service first: the pin belongs to it while it runs.

With `simulation.enabled: true` the pin is a mock pin: type `off`, `on` or
`blip [MS]` (default 200 ms) and Enter to drive it, `quit` to stop.
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "mains", "watch the mains-sense pin live", _usage, description=DESCRIPTION
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", title="actions")
    watch = add_command(
        actions,
        "watch",
        "print live edges, blips and announced changes of the mains-sense pin",
        run_watch,
        description=DESCRIPTION,
    )
    watch.add_argument(
        "--for",
        dest="duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after SECONDS (default: run until Ctrl-C)",
    )
    watch.add_argument("--pin", type=int, default=None, help="watch this BCM pin instead")
    add_config_option(watch)


def _usage(_args: argparse.Namespace) -> int:
    raise UsageError("say what to do: `powerbridge mains watch`")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _stamp(value: datetime) -> str:
    return value.astimezone().strftime("%H:%M:%S.%f")[:-3]


class _Printer:
    """Formats the sensor's callbacks as lines (called from the sensor's thread)."""

    def __init__(self, out: TextIO, sensor_ref: list[Any]) -> None:
        self.out = out
        self._sensor = sensor_ref
        self.edges = 0
        self.blips = 0
        self.events = 0
        self._lock = threading.Lock()

    def line(self, when: datetime, kind: str, text: str) -> None:
        with self._lock:
            print(f"{_stamp(when)}  {kind:<6} {text}", file=self.out, flush=True)

    def edge(self, edge: Any) -> None:
        self.edges += 1
        self.line(edge.utc, "edge", f"pin says mains {edge.state.value}")

    def blip(self, blip: Any) -> None:
        self.blips += 1
        count = self._sensor[0].flap_count if self._sensor else self.blips
        self.line(
            blip.began + timedelta(seconds=blip.duration_s),
            "blip",
            f"mains {blip.state.value} for {blip.duration_s * 1000:.0f} ms from"
            f" {_stamp(blip.began)}: not announced (flap #{count})",
        )

    def event(self, event: Any) -> None:
        self.events += 1
        self.line(
            datetime.now(UTC),
            "EVENT",
            f"mains {event.state.value.upper()} announced (seq {event.seq}, since the first edge"
            f" at {_stamp(event.began)})",
        )


def run_watch(args: argparse.Namespace) -> int:
    from bridge.clock import SystemClock
    from bridge.config import BridgeConfig, load_bridge_config
    from bridge.mains import MainsSensor, OutageStore

    if args.duration is not None and args.duration <= 0:
        raise UsageError("--for must be more than 0 seconds")
    if args.config == DEFAULT_BRIDGE_CONFIG and not args.config.exists():
        # Wiring a new Pi before it has a configuration: the default mains settings.
        print(f"no {args.config}: using the default mains settings", file=sys.stderr)
        config = BridgeConfig()
    else:
        config = load_bridge_config(args.config)
    mains = dataclasses.replace(config.mains, source="gpio")
    if args.pin is not None:
        if not 0 <= args.pin <= 27:
            raise UsageError("--pin must be a BCM pin number from 0 to 27")
        mains = dataclasses.replace(mains, pin=args.pin)
    simulation = config.simulation.enabled
    # A private, in-memory store: watching never touches the bridge's outage history.
    import sqlite3

    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    store = OutageStore(conn)
    out = sys.stdout
    holder: list[Any] = []
    printer = _Printer(out, holder)
    sensor = MainsSensor(
        mains,
        store,
        on_event=printer.event,
        on_edge=printer.edge,
        on_blip=printer.blip,
        clock=SystemClock(),
        simulation=simulation,
    )
    holder.append(sensor)
    mains_log = logging.getLogger("bridge.mains")
    log_level = mains_log.level
    if not getattr(args, "verbose", 0):
        # The lines below say it all; the daemon's log lines would repeat them.
        mains_log.setLevel(logging.ERROR)
    level = "high" if mains.active_high else "low"
    print(
        f"watching GPIO{mains.pin}{' (simulated)' if simulation else ''}: pull {mains.pull},"
        f" mains on = pin {level}, bounce {mains.bounce_time * 1000:g} ms,"
        f" confirm off {mains.confirm_off:g} s / on {mains.confirm_on:g} s; Ctrl-C to stop",
        file=out,
        flush=True,
    )
    if simulation:
        print("type off, on, blip [MS] or quit, then Enter", file=out, flush=True)
    stop = threading.Event()
    try:
        sensor.start()
        if simulation:
            threading.Thread(
                target=_read_commands,
                args=(sensor, sys.stdin, stop, out, args.duration is None),
                daemon=True,
            ).start()
        stop.wait(args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        sensor.close()
        mains_log.setLevel(log_level)
        conn.close()
    print(
        f"{_plural(printer.edges, 'edge')}, {_plural(sensor.flap_count, 'blip')},"
        f" {_plural(printer.events, 'announced change')}",
        file=out,
        flush=True,
    )
    return int(ExitCode.OK)


def _read_commands(
    sensor: Any, stdin: TextIO, stop: threading.Event, out: TextIO, stop_at_eof: bool
) -> None:
    """Drive the mock pin from typed commands (simulation mode only).

    ``quit`` stops the watch; so does the end of input (Ctrl-D) unless ``--for`` was given.
    """
    from bridge.errors import PowerbridgeError

    for raw in stdin:
        words = raw.split()
        if not words:
            continue
        command = words[0].lower()
        try:
            if command in ("off", "on"):
                sensor.simulate(command)
            elif command == "blip":
                length = float(words[1]) / 1000 if len(words) > 1 else 0.2
                sensor.simulate("off")
                time.sleep(max(0.0, length))
                sensor.simulate("on")
            elif command in ("quit", "exit", "q"):
                stop.set()
                return
            else:
                print(f"unknown command {command!r}: off, on, blip [MS], quit", file=out)
        except (PowerbridgeError, ValueError) as exc:
            print(f"cannot do that: {exc}", file=out, flush=True)
    if stop_at_eof:
        stop.set()
