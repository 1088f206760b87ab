"""``powerbridge watch``: a live terminal view of every bridge and client on a broker.

Read-only: it subscribes to ``<base>/+/{status,mains,state,health}`` and
``<base>/clients/+/{status,state}`` and publishes nothing.  Use credentials that
may read them all (the ``homeassistant`` or ``observer`` role of the shipped
broker); a bridge's or a client's own credentials see only part of the fleet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bridge.config.common import MqttConfig, read_secret
from bridge.errors import UsageError
from bridge.mqtt.contract import DEFAULT_BASE
from bridge.tui.fleet import Change
from bridge.tui.observer import BrokerAddress, FleetObserver
from bridge.tui.render import Screen, render_fleet


def parse_broker(text: str, *, tls: bool) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` → (host, port); default port 1883 / 8883 (TLS)."""
    default = 8883 if tls else 1883
    text = text.strip()
    if not text:
        raise UsageError("--broker needs a host name or address")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UsageError(f"--broker {text!r}: expected [ADDRESS]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""  # a bare name, or a bare IPv6 address
    if not port_text:
        return host, default
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(f"--broker {text!r}: port {port_text!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"--broker {text!r}: port {port} is out of range 1–65535")
    return host, port


@dataclass(frozen=True, slots=True)
class WatchOptions:
    broker: str | None = None
    username: str | None = None
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    insecure: bool = False
    base: str | None = None
    mqtt: MqttConfig | None = None
    """The ``mqtt`` section of a bridge or client configuration given with ``-c``."""


def resolve(options: WatchOptions) -> tuple[BrokerAddress, str]:
    """The broker to watch and the base topic, from the options over the configuration."""
    cfg = options.mqtt
    tls = options.tls or options.ca_file is not None or (cfg is not None and cfg.tls.enabled)
    if options.broker is not None:
        host, port = parse_broker(options.broker, tls=tls)
    elif cfg is not None:
        if cfg.host == "auto":
            raise UsageError("the configuration says `host: auto`; name the broker with --broker")
        host, port = cfg.host, cfg.port if cfg.port is not None else (8883 if tls else 1883)
    else:
        host, port = "localhost", 8883 if tls else 1883
    username = options.username or (cfg.username if cfg else None)
    if options.password_file is not None:
        password = read_secret(str(options.password_file), None, "watch")
    elif cfg is not None and options.username is None:
        password = cfg.password()
    else:
        password = None
    if password is not None and username is None:
        raise UsageError("a password was given without --username")
    ca = (
        str(options.ca_file)
        if options.ca_file is not None
        else (cfg.tls.ca_file if cfg is not None else None)
    )
    address = BrokerAddress(
        host=host,
        port=port,
        username=username,
        password=password,
        tls=tls,
        ca_file=ca,
        insecure=options.insecure or (cfg is not None and cfg.tls.insecure),
        protocol=cfg.protocol if cfg is not None else "3.1.1",
    )
    base = options.base or (cfg.base_topic if cfg is not None else DEFAULT_BASE)
    return address, base


def clock_label() -> str:
    return datetime.now().astimezone().strftime("%H:%M:%S")


def change_line(change: Change) -> str:
    prefix = "(retained) " if change.retained else ""
    return f"{clock_label()}  {prefix}{change.describe()}"


def snapshot(observer: FleetObserver, *, ascii_only: bool = False) -> list[str]:
    with observer.locked() as fleet:
        lines = render_fleet(fleet, time.monotonic(), ascii_only=ascii_only)
    if observer.denied:
        lines.append("not allowed to read: " + ", ".join(observer.denied))
    return lines


def watch_once(address: BrokerAddress, base: str, screen: Screen) -> int:
    observer = FleetObserver(address, base)
    observer.start()
    try:
        observer.settle()
        for line in snapshot(observer, ascii_only=screen.ascii_only):
            screen.stream.write(line + "\n")
        screen.stream.flush()
    finally:
        observer.stop()
    return 0


def watch_live(
    address: BrokerAddress,
    base: str,
    screen: Screen,
    *,
    interval: float = 0.5,
    until: Callable[[], bool] = lambda: False,
) -> int:
    """Redraw until Ctrl-C (or ``until()`` is true); on a pipe, print one line per change."""
    observer = FleetObserver(address, base)
    observer.start()
    try:
        observer.settle()
        header = f"powerbridge watch  {address.describe()}  base {base}"
        if not screen.live:
            for _ in observer.drain():
                pass  # what happened before the snapshot is in the snapshot
            screen.line(header)
            for line in snapshot(observer, ascii_only=True):
                screen.line(line)
        was_connected = True
        while not until():
            for change in observer.drain():
                screen.line(change_line(change))
            connected = observer.connected.is_set()
            if connected != was_connected:
                screen.line(
                    f"{clock_label()}  {'broker reconnected' if connected else 'broker lost'}"
                )
                was_connected = connected
            if screen.live:
                state = "" if connected else "  (broker lost, reconnecting)"
                top = f"{header}  {clock_label()}{state}  (Ctrl-C to quit)"
                screen.frame([top, *snapshot(observer, ascii_only=screen.ascii_only)])
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        observer.stop()
        screen.close()
    return 0
