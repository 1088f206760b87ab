"""`powerbridge meter`: list serial ports, probe power meters, run a simulated meter."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from bridge.cli._common import add_command
from bridge.errors import (
    ExitCode,
    MeterDisconnectedError,
    MeterProtocolError,
    MeterTimeoutError,
    UsageError,
)
from bridge.stopsignals import StopSignals

METER_TYPES = ("mcp39f511n", "pzem004t", "sdm120", "sdm630")

LIST_HELP = """\
List serial ports that could have a meter on them, with USB VID:PID and the drivers
that fit. Configure the /dev/serial/by-id/... path when there is one: it stays the same
when the meter is replugged or other USB devices come and go.
"""

PROBE_HELP = """\
Read a meter and print each reading as one JSON line (SI units):
voltage_v, current_a, power_w, frequency_hz, power_factor, energy_wh (null where the
meter lacks a quantity), plus ts, meter and channel.

exit codes: 0 all readings arrived; 1 no answer or a bad answer (the message names the
port and the likely causes); 2 bad arguments.

example:
  powerbridge meter probe --type pzem004t --port /dev/ttyUSB0 --count 5 --interval 1
"""

SIMULATE_HELP = """\
Run a simulated meter behind a pseudo-terminal and print its port path, so that
`powerbridge meter probe` (or a bridge) can talk to it as to a real meter. Until Ctrl-C,
lines on stdin change it:
  mains on|off     mains present or not (a PZEM then goes silent)
  load WATTS       change the load
  garbage N [KIND] spoil the next N replies (crc, noise, short, exception, silence)
  unplug | replug  remove the port / bring it back at the same path
  quit
"""


def register(subparsers: Any) -> None:
    parser = add_command(subparsers, "meter", "list serial ports and probe power meters", _usage)
    commands = parser.add_subparsers(dest="meter_command", metavar="COMMAND", title="commands")

    listing = add_command(commands, "list", "serial ports and which meter driver fits", _list)
    listing.description = LIST_HELP
    listing.add_argument("--json", action="store_true", help="print a JSON list")

    probe = add_command(commands, "probe", "read a meter, print JSON lines", _probe)
    probe.description = PROBE_HELP
    probe.add_argument("--type", required=True, choices=METER_TYPES, help="meter driver")
    probe.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    probe.add_argument(
        "--address", type=_int, default=None, help="Modbus address (PZEM default 0xF8, SDM 1)"
    )
    probe.add_argument("--baud", type=int, default=None, help="baud rate (default: the meter's)")
    probe.add_argument("--channel", type=int, default=1, help="channel (MCP39F511N: 1 or 2)")
    probe.add_argument("--count", type=int, default=1, help="readings to take (default 1)")
    probe.add_argument(
        "--interval", type=float, default=1.0, help="seconds between readings (default 1)"
    )
    probe.add_argument(
        "--timeout", type=float, default=0.5, help="seconds to wait for a reply (default 0.5)"
    )

    simulate = add_command(commands, "simulate", "run a simulated meter on a pty", _simulate)
    simulate.description = SIMULATE_HELP
    simulate.add_argument("--type", required=True, choices=METER_TYPES, help="wire protocol")
    simulate.add_argument("--baud", type=int, default=None, help="line speed to emulate")
    simulate.add_argument("--address", type=_int, default=None, help="Modbus address")
    # the destinations are the simulator's keyword names (see _SIMULATOR_OPTIONS)
    simulate.add_argument(
        "--load",
        dest="load_w",
        metavar="LOAD",
        type=float,
        default=120.0,
        help="load in W (default 120)",
    )
    simulate.add_argument(
        "--voltage",
        dest="voltage_v",
        metavar="VOLTAGE",
        type=float,
        default=230.0,
        help="mains V (default 230)",
    )
    simulate.add_argument("--noise", type=float, default=0.02, help="relative noise (0.02)")
    simulate.add_argument(
        "--link-dir", default=None, help="directory for the port link (default: a temp dir)"
    )


def _int(text: str) -> int:
    """``248`` or ``0xF8``."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _usage(_args: argparse.Namespace) -> int:
    raise UsageError("choose a command: powerbridge meter list | probe | simulate (see --help)")


# -- list --------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from bridge.meters.ports import list_ports

    ports = list_ports()
    if args.json:
        print(json.dumps([p.as_dict() for p in ports], indent=2))
        return int(ExitCode.OK)
    if not ports:
        print(
            "no serial ports found: plug the meter in (USB), or enable the Pi's UART "
            "(raspi-config → Interface Options → Serial Port) for a PZEM on GPIO 14/15",
            file=sys.stderr,
        )
        return int(ExitCode.OK)
    rows = [("PORT", "VID:PID", "FITS", "DESCRIPTION")]
    for p in ports:
        port = p.recommended_port if p.stable_path is None else f"{p.stable_path} → {p.device}"
        rows.append((port, p.vid_pid or "-", ",".join(p.fits) or "?", p.description))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    return int(ExitCode.OK)


# -- probe -------------------------------------------------------------------------------------


def _probe(args: argparse.Namespace) -> int:
    from bridge.clock import isoformat_utc
    from bridge.meters import create_driver

    if args.count < 1:
        raise UsageError("--count must be at least 1")
    if args.interval < 0 or args.timeout <= 0:
        raise UsageError("--interval must be ≥ 0 and --timeout > 0")
    driver = create_driver(
        args.type, args.port, baud=args.baud, address=args.address, timeout=args.timeout
    )
    if args.channel not in driver.channels:
        channels = list(driver.channels)
        raise UsageError(f"{driver.title} has channel(s) {channels}, not {args.channel}")
    try:
        driver.open()
        for index in range(args.count):
            if index:
                time.sleep(args.interval)
            reading = driver.read(args.channel)
            line = {
                "ts": isoformat_utc(reading.time),
                "meter": reading.meter,
                "channel": reading.channel,
                "voltage_v": reading.voltage_v,
                "current_a": reading.current_a,
                "power_w": reading.power_w,
                "frequency_hz": reading.frequency_hz,
                "power_factor": reading.power_factor,
                "energy_wh": reading.energy_wh,
                "apparent_power_va": reading.apparent_power_va,
                "reactive_power_var": reading.reactive_power_var,
                "alarm": reading.alarm,
            }
            print(json.dumps(line), flush=True)
    except MeterTimeoutError as exc:
        causes = "\n".join(f"  - {hint}" for hint in driver.hints)
        raise MeterTimeoutError(
            f"{exc}.\nLikely causes:\n{causes}\nCheck the port with `powerbridge meter list`."
        ) from exc
    except MeterProtocolError as exc:
        raise MeterProtocolError(
            f"something on {args.port} answered, but its reply is not a valid {driver.title} "
            f"reply: {exc}.\n"
            "Check --type, --baud and --address (and, on RS-485, the A/B wiring)."
        ) from exc
    except MeterDisconnectedError:
        raise
    finally:
        driver.close()
    return int(ExitCode.OK)


# -- simulate ----------------------------------------------------------------------------------


_SIMULATOR_OPTIONS = ("baud", "address", "load_w", "voltage_v", "noise", "link_dir")
"""Options of ``meter simulate`` passed to :class:`SimulatedMeter` as keywords of the same name."""


def _simulate(args: argparse.Namespace) -> int:
    from bridge.meters.simulator import SimulatedMeter

    settings = {name: getattr(args, name) for name in _SIMULATOR_OPTIONS}
    simulator = SimulatedMeter(args.type, **settings)
    done = threading.Event()  # `quit` on stdin, SIGTERM or Ctrl-C
    simulator.start()
    try:
        with StopSignals(lambda _signum: done.set()):
            print(simulator.port, flush=True)
            print(
                f"simulated {args.type} at {simulator.port} ({simulator.baud} baud, "
                f"pty {simulator.device}); try:\n"
                f"  powerbridge meter probe --type {args.type} --port {simulator.port} --count 5\n"
                "stdin: mains on|off, load W, garbage N [KIND], unplug, replug, quit; "
                "Ctrl-C stops",
                file=sys.stderr,
                flush=True,
            )
            console = threading.Thread(
                target=_console, args=(simulator, done), name="console", daemon=True
            )
            console.start()
            done.wait()
    except KeyboardInterrupt:  # Ctrl-C before the handlers above were in place
        pass
    finally:
        simulator.stop()
    return int(ExitCode.OK)


def _console(simulator: Any, done: threading.Event) -> None:
    """Apply commands from stdin until ``quit``; at end of input, run on until a signal."""
    for raw in sys.stdin:
        words = raw.split()
        if not words:
            continue
        try:
            if _apply(simulator, words):
                done.set()
                return
        except (ValueError, IndexError) as exc:
            print(f"? {exc}", file=sys.stderr, flush=True)


def _apply(simulator: Any, words: list[str]) -> bool:
    """One console command; ``True`` to quit."""
    command = words[0].lower()
    if command in ("quit", "exit"):
        return True
    if command == "mains":
        simulator.set_mains(words[1].lower() in ("on", "1", "true"))
    elif command == "load":
        simulator.set_load(float(words[1]))
    elif command == "garbage":
        count = int(words[1]) if len(words) > 1 else 1
        simulator.inject_garbage(count, words[2] if len(words) > 2 else "crc")
    elif command == "unplug":
        simulator.unplug()
    elif command == "replug":
        simulator.replug()
    else:
        raise ValueError(f"unknown command {command!r}")
    print(f"ok: {' '.join(words)}", file=sys.stderr, flush=True)
    return False
