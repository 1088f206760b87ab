"""`powerbridge check`: run health checks before leaving a site."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from bridge.cli._common import add_command, add_config_option
from bridge.errors import ExitCode, UsageError

SYMBOLS = {"pass": "✓", "fail": "✗", "skip": "–"}
TITLE_WIDTH = 16

DESCRIPTION = """\
Check that this bridge works, here and now: each check prints ✓ or ✗ and, when it
fails, what is wrong and how to fix it.

  config     the configuration file is valid (and which device id it gives)
  meter      the meter's port is present and the meter answers with a valid frame
  mains      the mains-sense pin can be read (its state is shown)
  broker     the broker is reachable, accepts this bridge's credentials, and its ACL
             lets the bridge publish its topics (a message is published and read back)
  data_dir   the data directory is writable and has enough free space
  clock      the system clock is synchronised
  service    powerbridge.service is installed, enabled and running

While the service runs, the meter and the pin belong to it: they are judged from
what it publishes instead. `--skip NAME` skips a check and says so; with `--root
DIR` the service check inspects the unit files installed under DIR.

Ends with "Health checks passed" (exit 0) or "N checks failed" (exit 1).
"""


def print_result(result: Any, out: TextIO) -> None:
    """One check as a line (and an indented fix line when it failed)."""
    symbol = SYMBOLS[result.outcome.value]
    print(f"{symbol} {result.title:<{TITLE_WIDTH}} {result.detail}", file=out)
    if result.fix:
        print(f"  {'':<{TITLE_WIDTH}} fix: {result.fix}", file=out)
    out.flush()


def add_root_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("/"),
        metavar="DIR",
        help="installation prefix: units and state live under DIR, systemctl is not called",
    )


def _skip_list(values: list[str] | None) -> frozenset[str]:
    from bridge.deployment.checks import CHECK_NAMES, validate_names

    names = [n.strip() for value in values or [] for n in value.split(",") if n.strip()]
    unknown = validate_names(names)
    if unknown:
        raise UsageError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECK_NAMES)}")
    if "config" in names:
        raise UsageError("the configuration check cannot be skipped: every other check needs it")
    return frozenset(names)


def _run(args: argparse.Namespace) -> int:
    from bridge.deployment.checks import CheckContext, run_checks

    ctx = CheckContext(config_path=args.config, root=args.root, skip=_skip_list(args.skip))
    if args.json:
        report = run_checks(ctx)
        json.dump(report.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        report = run_checks(ctx, on_result=lambda r: print_result(r, sys.stdout))
        print(report.summary())
    return int(ExitCode.OK if report.ok else ExitCode.FAILURE)


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "check",
        "run health checks before leaving a site",
        _run,
        description=DESCRIPTION,
    )
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    add_root_option(parser)
    parser.add_argument(
        "--skip",
        action="append",
        metavar="NAME",
        help="skip a check (repeatable or comma-separated: meter, mains, broker, data_dir, "
        "clock, service); it is reported as skipped",
    )
