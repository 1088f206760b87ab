"""`powerbridge archive`: store every sample of a fleet and show it (run, check, export)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from bridge.cli._common import add_command, config_option
from bridge.errors import ExitCode, UsageError
from bridge.stopsignals import StopSignals

log = logging.getLogger("bridge.archive")

DEFAULT_CONFIG = Path("/etc/powerbridge/archive.yaml")

DESCRIPTION = """\
The archive: subscribes to every bridge's samples, events, mains, health, status and
deployment topics as the broker's `archiver` role (a persistent session at QoS 1),
stores them in SQLite (one file, the default) or PostgreSQL (fleets), asks bridges
to resend what went missing, and serves the management view (fleet table, charts,
CSV export, JSON API, Prometheus /metrics).

actions:
  run      run the archive service in the foreground (what the systemd unit runs)
  check    health checks: configuration, database, broker, management view, fleet
  export   write a device's samples in a time range as CSV
  unit     print the systemd unit that runs `archive run`

Its own configuration file (default /etc/powerbridge/archive.yaml); every key is in
docs/fleets.md. Documentation: docs/fleets.md
"""

RUN_DESCRIPTION = """\
Run the archive in the foreground until SIGTERM or Ctrl-C: open the database
(waiting while it is down), connect to the broker as `archiver` and serve the
management view. Prints the view's URL once it listens.

A message is acknowledged to the broker only after its rows are committed: stop or
kill the archive at any time and nothing is lost; the broker keeps its queue.
"""

CHECK_DESCRIPTION = """\
Check that this archive works, here and now: each check prints ✓ or ✗ and, when it
fails, what is wrong and how to fix it.

  config     the archive's configuration file is valid
  database   the database answers (tables are created if missing)
  broker     the broker accepts the archiver's credentials (a separate session)
  http       the management view's port is free, or the running archive answers
  fleet      every device has a sample newer than http.stale_after; no gap was lost

Ends with "Health checks passed" (exit 0) or "N checks failed" (exit 1).
"""

EXPORT_DESCRIPTION = """\
Write the samples of one device between two times as CSV (header: seq, time,
channel, quantities), oldest first. Times are ISO-8601 with a zone
(2026-03-14T00:00:00Z); --from defaults to 24 hours before --to, --to to now.

example:
  powerbridge archive export berlin-rack-a --from 2026-03-14T00:00Z --to 2026-03-15T00:00Z \\
      -o berlin-rack-a.csv
"""


def _need_extra() -> None:
    """The archive's libraries are an extra: say how to install them instead of a traceback."""
    import importlib.util

    missing = [
        name
        for name in ("psycopg", "starlette", "uvicorn", "prometheus_client")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise UsageError(
            f"the archive needs {', '.join(missing)}: pip install 'powerbridge[archive]'"
        )


def _config_option(parser: argparse.ArgumentParser) -> None:
    config_option(parser, DEFAULT_CONFIG, "archive configuration")


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "archive",
        "the fleet archive: store every sample, management view (run, check, export)",
        _help,
        DESCRIPTION,
    )
    parser.set_defaults(_parser=parser)
    sub = parser.add_subparsers(dest="archive_command", metavar="ACTION")
    run = add_command(
        sub, "run", "run the archive service in the foreground", _run, RUN_DESCRIPTION
    )
    _config_option(run)
    run.set_defaults(service=True)  # logs at INFO without -v: its lines go to the journal
    check = add_command(sub, "check", "health checks of the archive", _check, CHECK_DESCRIPTION)
    _config_option(check)
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    export = add_command(
        sub, "export", "a device's samples in a time range as CSV", _export, EXPORT_DESCRIPTION
    )
    _config_option(export)
    export.add_argument("device", help="the device id")
    export.add_argument("--from", dest="start", metavar="TIME", help="start (inclusive)")
    export.add_argument("--to", dest="end", metavar="TIME", help="end (exclusive); default now")
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: stdout")
    unit = add_command(
        sub,
        "unit",
        "print the systemd unit that runs the archive",
        _unit,
        "Print a systemd unit that runs `powerbridge archive run` with this Python, as\n"
        "--user, with the configuration -c. Install it with:\n\n"
        "  powerbridge archive unit > /etc/systemd/system/powerbridge-archive.service\n"
        "  systemctl daemon-reload && systemctl enable --now powerbridge-archive",
    )
    _config_option(unit)
    unit.add_argument("--user", default="powerbridge", help="system user (default powerbridge)")


def _help(args: argparse.Namespace) -> int:
    args._parser.print_help(sys.stderr)
    return int(ExitCode.USAGE)


def _run(args: argparse.Namespace) -> int:
    _need_extra()
    from bridge.archive.config import load
    from bridge.archive.service import SWITCH_INTERVAL_S, ArchiveService

    config = load(args.config)
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # this process is the archive's alone
    service = ArchiveService(config)

    def on_signal(signum: int) -> None:  # the signal watcher's thread, never the handler
        log.info("received %s: stopping", signal.Signals(signum).name)
        service.request_stop()

    with StopSignals(on_signal):
        try:
            service.start()
            if service.served is not None:
                print(f"management view: {service.served.url}", flush=True)
            service.wait()
        finally:
            service.stop()
    return int(ExitCode.OK)


def _check(args: argparse.Namespace) -> int:
    _need_extra()
    import json

    from bridge.archive.checks import run_archive_checks
    from bridge.cli.check import print_result

    if args.json:
        report = run_archive_checks(args.config)
        json.dump(report.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        report = run_archive_checks(args.config, on_result=lambda r: print_result(r, sys.stdout))
        print(report.summary())
    return int(ExitCode.OK if report.ok else ExitCode.FAILURE)


def _time_ms(text: str | None, default: int, what: str) -> int:
    from bridge.clock import parse_utc

    if text is None:
        return default
    try:
        return int(parse_utc(text).timestamp() * 1000)
    except ValueError:
        raise UsageError(f"{what}: not an ISO-8601 time with a zone: {text!r}") from None


def _export(args: argparse.Namespace) -> int:
    _need_extra()
    import time

    from bridge.archive.config import load
    from bridge.archive.store import open_store
    from bridge.archive.web.app import csv_lines

    config = load(args.config)
    end = _time_ms(args.end, int(time.time() * 1000), "--to")
    start = _time_ms(args.start, end - 86_400_000, "--from")
    if start >= end:
        raise UsageError("--from must be before --to")
    store = open_store(config.archive.database)
    out = args.output.open("w", encoding="utf-8", newline="") if args.output else sys.stdout
    try:
        for chunk in csv_lines(store, args.device, start, end):
            out.write(chunk)
    finally:
        store.close()
        if args.output:
            out.close()
    return int(ExitCode.OK)


def _unit(args: argparse.Namespace) -> int:
    from bridge.archive.unit import render_unit

    sys.stdout.write(render_unit(user=args.user, config=args.config))
    return int(ExitCode.OK)
