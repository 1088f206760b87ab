"""`powerbridge watch`: live terminal view of every bridge and client on a broker."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

from bridge.cli._common import add_command, file_option

DESCRIPTION = """\
Live terminal view of every bridge (status, announced mains state, newest reading,
health) and every shutdown client (status, countdown) on a broker. Read-only.

Log in as a user that may read everything of ours, e.g. the `homeassistant` role
created by `powerbridge broker init`. With -c, the broker, credentials, TLS and base
topic come from a bridge or client configuration; options given here win.
On a terminal the view is redrawn in place; piped, it prints one line per change.

examples:
  powerbridge watch --broker 192.168.1.10 --username homeassistant --password-file ha.pw
  powerbridge watch --broker mqtt.example.org --tls --ca ca.crt --username homeassistant \\
      --password-file ha.pw --once
"""


def _run(args: argparse.Namespace) -> int:
    from bridge.config.common import MqttConfig
    from bridge.tui.render import Screen
    from bridge.watch import WatchOptions, resolve, watch_live, watch_once

    mqtt_config: MqttConfig | None = None
    if args.config is not None:
        mqtt_config = _load_mqtt(args.config)
    # every option but ``mqtt`` is the command-line option of the same name
    given = {f.name: getattr(args, f.name) for f in fields(WatchOptions) if f.name != "mqtt"}
    options = WatchOptions(**given, mqtt=mqtt_config)
    address, base = resolve(options)
    screen = Screen()
    if args.once:
        return watch_once(address, base, screen)
    return watch_live(address, base, screen, interval=args.interval)


def _load_mqtt(path: Path) -> Any:
    from bridge.cli.config_cmd import looks_like_client
    from bridge.config import load_bridge_config, load_client_config

    if looks_like_client(path):
        return load_client_config(path).mqtt
    return load_bridge_config(path).mqtt


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "watch",
        "live terminal view of every bridge and client on a broker",
        _run,
        DESCRIPTION,
    )
    parser.add_argument(
        "--broker",
        metavar="HOST[:PORT]",
        help="broker address (default localhost, or the configuration's; port 1883, 8883 with TLS)",
    )
    parser.add_argument("--username", metavar="USER", help="MQTT user name")
    file_option(
        parser,
        "--password-file",
        doc="file whose first line is the password (never give a password on the command line)",
    )
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    file_option(parser, "--ca", dest="ca_file", doc="CA certificate of the broker (implies --tls)")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="TLS without host name verification (testing only)",
    )
    file_option(
        parser,
        "-c",
        "--config",
        doc="take the broker settings from a bridge or client configuration",
    )
    parser.add_argument("--base", metavar="TOPIC", help="base topic (default powerbridge)")
    parser.add_argument(
        "--once", action="store_true", help="print one snapshot and exit (for scripts and tests)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="redraw interval of the live view (default 0.5)",
    )
