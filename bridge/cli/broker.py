"""`powerbridge broker`: create broker credentials, certificates and ACL roles."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.broker import DEFAULT_DIR
from bridge.cli._common import add_command
from bridge.config import types as t
from bridge.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from bridge.broker.directory import BrokerDirectory, Report

DESCRIPTION = """\
Create and extend the Mosquitto configuration directory for powerbridge:
a password file, one ACL block per bridge and per PC, per-user credentials
files (mode 0600), a local CA and the broker's TLS certificate.

Running a command again is safe: existing passwords, keys and certificates are
kept and reported as kept; nothing is rotated unless you ask (--rotate,
--new-server-cert). Run as root so that the broker (user mosquitto) can read
its files and nobody else can.

examples:
  sudo powerbridge broker init --bridge rack-a --client office-pc
  sudo powerbridge broker add-client lab-pc
  sudo powerbridge broker add-nut nut
  sudo systemctl reload mosquitto
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "broker",
        "create broker credentials, certificates and ACL roles",
        _usage(None),
        description=DESCRIPTION,
    )
    commands = parser.add_subparsers(dest="broker_command", metavar="ACTION", title="actions")
    parser.set_defaults(func=_usage(parser))

    init = add_command(
        commands,
        "init",
        "create the broker directory (passwords, ACL, CA, server certificate)",
        _init,
    )
    init.add_argument(
        "directory",
        nargs="?",
        type=Path,
        default=DEFAULT_DIR,
        metavar="DIR",
        help=f"broker directory (default {DEFAULT_DIR})",
    )
    init.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME",
        help="host name or IP address clients use for the broker (repeatable; default: "
        "this machine's name, name.local, localhost, 127.0.0.1, ::1)",
    )
    init.add_argument(
        "--bridge", action="append", default=[], metavar="ID", help="add a bridge (repeatable)"
    )
    init.add_argument(
        "--client", action="append", default=[], metavar="ID", help="add a PC (repeatable)"
    )
    init.add_argument(
        "--base-topic", default="powerbridge", help="root of powerbridge topics (mqtt.base_topic)"
    )
    init.add_argument(
        "--discovery-prefix", default="homeassistant", help="Home Assistant discovery prefix"
    )
    init.add_argument(
        "--no-tls", action="store_true", help="make no CA or server certificate (bring your own)"
    )
    init.add_argument(
        "--new-server-cert",
        action="store_true",
        help="issue a new server certificate from the existing CA (new host names, renewal)",
    )
    _group_option(init)

    addon = add_command(
        commands,
        "ha-addon",
        "write the equivalent files for Home Assistant's Mosquitto broker add-on",
        _ha_addon,
    )
    _dir_option(addon)
    addon.set_defaults(group="mosquitto")

    for kind, what, handler, id_help in (
        ("bridge", "bridge", _add_bridge, "device id"),
        ("client", "PC (shutdown client)", _add_client, "client id"),
        ("nut", "NUT server facade (powerbridge nut serve)", _add_nut, "its nut.client_id"),
    ):
        sub = add_command(
            commands, f"add-{kind}", f"add one {what}: ACL block and password", handler
        )
        sub.add_argument("id", metavar="ID", help=id_help)
        _dir_option(sub)
        sub.add_argument(
            "--rotate", action="store_true", help="replace an existing password with a new one"
        )
        _group_option(sub)


def _dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        dest="directory",
        metavar="DIR",
        help=f"broker directory (default {DEFAULT_DIR})",
    )


def _group_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--group",
        default="mosquitto",
        help="group that may read passwd, acl and server.key when run as root (default mosquitto)",
    )


def _usage(parser: argparse.ArgumentParser | None) -> Any:
    def handler(_args: argparse.Namespace) -> int:
        if parser is not None:
            parser.print_help()
        return int(ExitCode.USAGE)

    return handler


def _topic(value: str, what: str) -> str:
    import voluptuous as vol

    try:
        checked = t.topic_level(value)
    except vol.Invalid as exc:
        raise UsageError(f"{what} {value!r}: {exc.msg}") from None
    if any(c.isspace() or c == ";" for c in checked):
        raise UsageError(f"{what} {value!r}: no spaces or ';' please")
    return str(checked)


def _print_report(store: BrokerDirectory, report: Report) -> None:
    print(f"Broker directory {store.path.resolve()}")
    for action in report.actions:
        print(f"  {action}")
    rotated = [a.subject for a in report.actions if a.outcome == "rotated"]
    if rotated:
        print("Rotated on request: " + ", ".join(rotated))
    else:
        print("Nothing that existed was rotated or overwritten.")


def _host(store: BrokerDirectory, hosts: list[str]) -> str:
    from bridge.broker import snippets

    if hosts:
        return str(hosts[0])
    if store.server_crt.exists():
        from bridge.broker import tls

        names = [h for h in tls.describe(store.server_crt.read_bytes()).hosts if "." in h]
        local = [h for h in names if h.endswith(".local")]
        if local or names:
            return (local or names)[0]
    return snippets.default_broker_host()


def _init(args: argparse.Namespace) -> int:
    from bridge.broker import snippets
    from bridge.broker.directory import BrokerDirectory
    from bridge.broker.runner import shipped_file
    from bridge.mqtt.contract import topic_roots_overlap

    base = _topic(args.base_topic, "base topic")
    prefix = _topic(args.discovery_prefix, "discovery prefix")
    overlap = topic_roots_overlap(base, prefix)
    if overlap:
        raise UsageError(f"--base-topic and --discovery-prefix: {overlap}")
    store = BrokerDirectory(args.directory, group=args.group)
    report = store.init(
        conf_template=shipped_file("powerbridge.conf"),
        acl_template=shipped_file("acl"),
        bridges=args.bridge,
        clients=args.client,
        base=base,
        prefix=prefix,
        with_tls=not args.no_tls,
        hosts=args.host or None,
        new_server_cert=args.new_server_cert,
    )
    _print_report(store, report)
    host = _host(store, args.host)
    print()
    print(snippets.install(store.path))
    if args.no_tls:
        print()
        print(snippets.own_certificate(store.path))
    for device_id in args.bridge:
        print()
        print(snippets.bridge(store.path, device_id, host))
    if not args.bridge:
        from bridge.identity import default_device_id

        print()
        print(
            "No bridge yet: `sudo powerbridge broker add-bridge ID` "
            f"(this machine's default device id is {default_device_id()})."
        )
    for client_id in args.client:
        print()
        print(snippets.client(store.path, client_id, host))
    print()
    print(snippets.homeassistant(store.path, host))
    print()
    print(snippets.archiver(store.path, host))
    return _exit(report)


def _add(args: argparse.Namespace, kind: str) -> int:
    from bridge.broker import snippets
    from bridge.broker.directory import BrokerDirectory

    store = BrokerDirectory(args.directory, group=args.group)
    report = store.add(kind, args.id, rotate=args.rotate)
    _print_report(store, report)
    host = _host(store, [])
    snippet = {"bridge": snippets.bridge, "client": snippets.client, "nut": snippets.nut}[kind]
    print()
    print(snippet(store.path, args.id, host))
    print()
    print(snippets.reload_hint())
    return _exit(report)


def _ha_addon(args: argparse.Namespace) -> int:
    from bridge.broker import snippets
    from bridge.broker.addon import ADDON_FOLDER, write_addon_files
    from bridge.broker.directory import BrokerDirectory

    store = BrokerDirectory(args.directory, group=None)
    target, report = write_addon_files(store)
    _print_report(store, report)
    print()
    print(snippets.ha_addon(store.path, target, ADDON_FOLDER))
    return _exit(report)


def _add_bridge(args: argparse.Namespace) -> int:
    return _add(args, "bridge")


def _add_client(args: argparse.Namespace) -> int:
    return _add(args, "client")


def _add_nut(args: argparse.Namespace) -> int:
    return _add(args, "nut")


def _exit(report: Report) -> int:
    """Warnings (kept files that need a look) are printed; the directory is usable: exit 0."""
    if report.warnings:
        print()
        print(f"{len(report.warnings)} warning(s) above: nothing was changed for them.")
    return int(ExitCode.OK)
