"""`powerbridge demo`: see the whole system work: broker, bridge, client, scenario."""

from __future__ import annotations

import argparse
from typing import Any

from bridge.cli._common import add_command
from bridge.errors import UsageError

DESCRIPTION = """\
See the whole system work on this machine, with no Pi and no meter:

  - a private Mosquitto (the shipped configuration, generated credentials, a free
    loopback port, a temporary directory);
  - the bridge (`powerbridge run`) with a wire-level meter simulator behind a
    pseudo-terminal and a simulated mains pin;
  - a shutdown client (`powerbridge client run`) in dry run with a short delay;
  - the archive (`powerbridge archive run`) on SQLite: its management view's URL
    is printed, and the summary counts what it stored.

It plays a scenario: normal load; three blips shorter than the bridge's
confirmation window (no outage announced, no shutdown); an outage longer than
the client's delay (it "would shut down"); power restored. Then it prints what it
saw over MQTT and exits 0 if that is what should happen, 1 otherwise.
Ctrl-C stops everything and removes the temporary directory.

examples:
  powerbridge demo
  powerbridge demo --delay 5 --normal 2          # a shorter run
  powerbridge demo --forever                     # keep running for Home Assistant
"""


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600: {text!r}")
    return value


def _run(args: argparse.Namespace) -> int:
    from bridge.demo import DemoOptions, Timings, run_demo

    timings = Timings(delay=args.delay, normal=args.normal, blips=args.blips, blip=args.blip)
    if args.blips < 0 or args.blips > 20:
        raise UsageError("--blips must be between 0 and 20")
    options = DemoOptions(
        timings=timings,
        forever=args.forever,
        listen=args.listen,
        port=args.port,
        keep=args.keep,
        meter_protocol=args.meter,
    )
    return run_demo(options)


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "demo",
        "see the whole system work: broker, bridge, client, scenario",
        _run,
        DESCRIPTION,
    )
    parser.add_argument(
        "--delay",
        type=_positive,
        default=20.0,
        metavar="SECONDS",
        help="the shutdown client's delay (default 20)",
    )
    parser.add_argument(
        "--normal",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="normal load before the first blip (default 10)",
    )
    parser.add_argument(
        "--blips", type=int, default=3, metavar="N", help="number of blips (default 3)"
    )
    parser.add_argument(
        "--blip",
        type=_positive,
        default=0.3,
        metavar="SECONDS",
        help="length of each blip (default 0.3; the bridge's confirmation window is 1 s)",
    )
    parser.add_argument(
        "--meter",
        choices=("pzem004t", "mcp39f511n", "sdm120", "sdm630"),
        default="pzem004t",
        help="wire protocol of the simulated meter (default pzem004t)",
    )
    parser.add_argument(
        "--forever",
        action="store_true",
        help="after the scenario keep everything running (for Home Assistant) until Ctrl-C",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address the broker listens on (default 127.0.0.1; 0.0.0.0 for the network)",
    )
    parser.add_argument(
        "--port", type=int, metavar="PORT", help="broker port (default: a free port)"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary directory (logs, configurations) afterwards",
    )
