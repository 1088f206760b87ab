"""`powerbridge nut`: the NUT server facade (`serve`) and a configuration check (`check`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bridge.cli._common import add_command, config_option

DEFAULT_NUT_CONFIG = Path("/etc/powerbridge/nut.yaml")


def _config_option(parser: argparse.ArgumentParser) -> None:
    config_option(parser, DEFAULT_NUT_CONFIG, "NUT facade configuration")


def _serve(args: argparse.Namespace) -> int:
    from bridge.nut.app import serve
    from bridge.nut.config import load_nut_config

    config = load_nut_config(args.config)
    if args.port is not None or args.listen:
        from dataclasses import replace

        nut = replace(
            config.nut,
            port=config.nut.port if args.port is None else args.port,
            listen=tuple(args.listen) if args.listen else config.nut.listen,
        )
        config = replace(config, nut=nut)
    import asyncio

    return asyncio.run(serve(config))


def _check(args: argparse.Namespace) -> int:
    from bridge.nut.config import load_nut_config, load_users

    config = load_nut_config(args.config)
    users = load_users(config.nut.users_file)
    for ups in config.ups:
        print(f"UPS {ups.alias}: bridge {ups.bridge}")
    print(f"{len(users)} user(s); listening on {', '.join(config.nut.listen)}:{config.nut.port}")
    return 0


def _help(args: argparse.Namespace) -> int:
    args._parser.print_help(sys.stderr)
    return 2


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "nut",
        "serve the bridges as UPSes to NUT clients (Synology, QNAP, TrueNAS, upsmon, ...)",
        _help,
        description=(
            "A read-only server of Network UPS Tools' network protocol (TCP 3493): each watched\n"
            "bridge appears as a UPS.  ups.status is OL on mains, OB DISCHRG during an announced\n"
            "outage, FSD OB LB once the shutdown policy's deadline (shutdown.delay) is reached,\n"
            "FSD after a signed remote 'shutdown now'; a bridge that is offline answers\n"
            "ERR DATA-STALE, so NUT secondaries (upsmon) shut down at powerbridge's deadline and\n"
            "never on a blip.  Documentation: docs/nut.md"
        ),
    )
    parser.set_defaults(_parser=parser)
    sub = parser.add_subparsers(dest="nut_command", metavar="ACTION")
    serve = add_command(
        sub,
        "serve",
        "run the NUT server in the foreground (what the systemd unit runs)",
        _serve,
        description=(
            "Run the NUT server until SIGTERM or Ctrl-C: it reads the bridges' retained MQTT\n"
            "topics as a shutdown client does and answers NUT clients on TCP (default port 3493).\n"
            "Users and passwords come from nut.users_file (upsd.users format); write commands\n"
            "(SET, INSTCMD, FSD, PRIMARY) are refused.  Example configuration: docs/nut.md"
        ),
    )
    _config_option(serve)
    serve.add_argument("--port", type=int, metavar="N", help="override nut.port")
    serve.add_argument(
        "--listen", action="append", metavar="ADDR", help="override nut.listen (repeatable)"
    )
    serve.set_defaults(service=True)
    check = add_command(
        sub, "check", "validate the configuration and the users file, then exit", _check
    )
    _config_option(check)
