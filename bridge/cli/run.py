"""`powerbridge run`: run the bridge daemon (meter, mains, health → MQTT)."""

from __future__ import annotations

import argparse
from typing import Any

from bridge.cli._common import add_command, add_config_option

DESCRIPTION = """\
Run the bridge daemon: read the power meter and the mains-sense pin, watch the
bridge's own health, and publish everything to the MQTT broker with Home
Assistant discovery. Every sample and outage event is written to a durable
spool before it is published, so nothing is lost while the broker is away.

Stops cleanly on SIGTERM (systemctl stop) or Ctrl-C: publishes `offline`,
flushes the spool and exits 0. Under systemd (Type=notify) it reports readiness
and pings the watchdog while its main loop is healthy.
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "run",
        "run the bridge daemon (meter, mains, health → MQTT)",
        _run,
        DESCRIPTION,
    )
    add_config_option(parser)
    parser.set_defaults(service=True)  # logs at INFO without -v: its lines go to the journal


def _run(args: argparse.Namespace) -> int:
    from bridge.config import load_bridge_config
    from bridge.daemon import Daemon
    from bridge.deployment.notify import Notifier

    config = load_bridge_config(args.config)
    notifier = Notifier.from_env(unset=True)
    try:
        return Daemon(config, notifier=notifier).run()
    finally:
        notifier.close()
