"""`powerbridge deployment`: record and manage this bridge's deployment (start/stop/status)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bridge.cli._common import add_command, add_config_option, add_group
from bridge.cli.check import _skip_list, add_root_option
from bridge.errors import ExitCode, UsageError

START_DESCRIPTION = """\
Deploy this bridge where it stands, step by step:

  1. run the health checks (as `powerbridge check`, without the service check) and
     stop if one fails;
  2. record the deployment (name, coordinates, start time, device id, software
     version, configuration hash) in the bridge's database;
  3. publish it, retained, on <base>/<device_id>/deployment;
  4. install powerbridge.service, its system user and the udev rules;
  5. enable and (re)start the service.

Missing --name/--lat/--lon are asked for on a terminal. A deployment still open is
closed first. --root DIR writes everything under DIR and runs no systemctl;
--dry-run prints what would be done and writes nothing.
"""

STATUS_DESCRIPTION = """\
Report the service (active / inactive / failed), the broker link, the meter, the
age of the newest reading, the spool depth and the deployment record.

Exit 0 when healthy: the service is active, the broker is reachable and says the
bridge is online, and (with a meter) the meter answers and the newest reading is
recent. Exit 1 otherwise, including when something cannot be known. Fields of
--json: docs/deployment.md.
"""


def _deployer(args: argparse.Namespace) -> Any:
    from bridge.deployment.lifecycle import Deployer

    return Deployer(
        config_path=args.config,
        root=args.root,
        dry_run=getattr(args, "dry_run", False),
        exec_argv=args.exec.split() if getattr(args, "exec", None) else None,
        skip=_skip_list(getattr(args, "skip", None)),
    )


def _ask(prompt: str, convert: Any) -> Any:
    while True:
        try:
            text = input(prompt).strip()
        except EOFError:
            raise UsageError("no answer: give the value on the command line") from None
        if not text:
            continue
        try:
            return convert(text)
        except ValueError as exc:
            print(f"  {exc}", file=sys.stderr)


def _coordinate(kind: str, limit: float) -> Any:
    def convert(text: str) -> float:
        try:
            value = float(text.replace(",", "."))
        except ValueError:
            raise ValueError(f"{kind} must be a number of degrees, e.g. 48.137") from None
        if not -limit <= value <= limit:
            raise ValueError(f"{kind} must be within -{limit:g}–{limit:g}")
        return value

    return convert


def _start(args: argparse.Namespace) -> int:
    interactive = sys.stdin.isatty() and not args.yes
    missing = [
        flag
        for flag, value in (("--name", args.name), ("--lat", args.lat), ("--lon", args.lon))
        if value is None
    ]
    if missing and not interactive:
        raise UsageError(f"{', '.join(missing)} required (no terminal to ask on, or --yes)")
    name = args.name or _ask("Deployment name (site, rack): ", str)
    lat = args.lat if args.lat is not None else _ask("Latitude (°): ", _coordinate("latitude", 90))
    lon = (
        args.lon if args.lon is not None else _ask("Longitude (°): ", _coordinate("longitude", 180))
    )
    if interactive and not args.dry_run:
        answer = input(f'Deploy "{name}" at {lat:g}, {lon:g} and start the service? [y/N] ')
        if answer.strip().lower() not in ("y", "yes"):
            print("not deployed")
            return int(ExitCode.FAILURE)
    return int(_deployer(args).start(name, lat, lon))


def _stop(args: argparse.Namespace) -> int:
    return int(_deployer(args).stop())


def _status(args: argparse.Namespace) -> int:
    from bridge.deployment.status import format_status

    doc, healthy = _deployer(args).status()
    if args.json:
        json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(format_status(doc))
    return int(ExitCode.OK if healthy else ExitCode.FAILURE)


def _common(parser: argparse.ArgumentParser, *, dry_run: bool = True) -> None:
    add_config_option(parser)
    add_root_option(parser)
    if dry_run:
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be done; write nothing"
        )


def _degrees(kind: str, limit: float) -> Any:
    convert = _coordinate(kind, limit)

    def parse(text: str) -> float:
        try:
            return float(convert(text))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def register(subparsers: Any) -> None:
    sub = add_group(
        subparsers, "deployment", "record and manage this bridge's deployment (start/stop/status)"
    )

    start = add_command(
        sub, "start", "check, record, publish, install and start", _start, START_DESCRIPTION
    )
    _common(start)
    start.add_argument("--name", help="deployment name: the site, rack or room")
    start.add_argument("--lat", type=_degrees("latitude", 90), help="latitude in degrees")
    start.add_argument("--lon", type=_degrees("longitude", 180), help="longitude in degrees")
    start.add_argument("-y", "--yes", action="store_true", help="do not ask; fail if incomplete")
    start.add_argument(
        "--skip",
        action="append",
        metavar="NAME",
        help="skip a health check (reported as skipped), e.g. --skip clock",
    )
    start.add_argument(
        "--exec",
        metavar="COMMAND",
        help="the command the unit runs (default: this installation's powerbridge)",
    )

    stop = add_command(
        sub,
        "stop",
        "stop and disable the service, close the deployment record",
        _stop,
        "Stop and disable powerbridge.service, close the open deployment record (end\n"
        "time) and publish the closed record, retained. The unit file stays installed.",
    )
    _common(stop)

    status = add_command(
        sub, "status", "is this bridge healthy? (exit 0 yes, 1 no)", _status, STATUS_DESCRIPTION
    )
    _common(status, dry_run=False)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
