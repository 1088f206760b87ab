"""The configuration snippets ``powerbridge broker`` prints for each role (pure text).

Secrets are never printed: a snippet names the credentials file to copy.
"""

from __future__ import annotations

import socket
from pathlib import Path

from bridge.mqtt.contract import bridge_user, client_user, nut_user

REMOTE_CONFIG_DIR = "/etc/powerbridge"
"""Where the bridge/client configuration keeps its password and CA files (Linux)."""


def default_broker_host() -> str:
    """The name PCs on the LAN reach this machine by (mDNS)."""
    return f"{socket.gethostname().split('.')[0]}.local"


def install(directory: Path) -> str:
    conf = directory.resolve() / "powerbridge.conf"
    return "\n".join(
        [
            "Use it (Debian, Raspberry Pi OS; Mosquitto 2.0):",
            f"  sudo ln -sf {conf} /etc/mosquitto/conf.d/powerbridge.conf",
            "  sudo systemctl restart mosquitto",
            "Open TCP 8883 (TLS) to the LAN if a firewall runs here;"
            " 1883 listens on loopback only.",
        ]
    )


def own_certificate(directory: Path) -> str:
    root = directory.resolve()
    return "\n".join(
        [
            "No CA or server certificate was made (--no-tls). The TLS listener expects:",
            f"  {root / 'server.crt'}  your server certificate (with its chain)",
            f"  {root / 'server.key'}  its key (readable by the mosquitto user)",
            f"  {root / 'ca.crt'}      the CA that clients trust",
            f"or edit {root / 'powerbridge.conf'} to point elsewhere.",
        ]
    )


def reload_hint() -> str:
    return (
        "Tell the running broker (re-reads passwd and acl; connected clients stay connected):\n"
        "  sudo systemctl reload mosquitto"
    )


def bridge(directory: Path, device_id: str, host: str) -> str:
    user = bridge_user(device_id)
    cred = directory.resolve() / "credentials" / f"{user}.password"
    return "\n".join(
        [
            f"Bridge {device_id}: in /etc/powerbridge/bridge.yaml",
            f"  sudo install -D -m 600 {cred} {REMOTE_CONFIG_DIR}/mqtt.password",
            "  device:",
            f"    id: {device_id}",
            "  mqtt:",
            "    host: localhost          # the broker on this Pi: loopback port 1883",
            f"    username: {user}",
            f"    password_file: {REMOTE_CONFIG_DIR}/mqtt.password",
            "  # A bridge on another machine uses TLS instead (copy ca.crt there too):",
            f"  #   host: {host}",
            "  #   tls: {enabled: true, ca_file: " + REMOTE_CONFIG_DIR + "/ca.crt}",
        ]
    )


def client(directory: Path, client_id: str, host: str) -> str:
    user = client_user(client_id)
    root = directory.resolve()
    cred = root / "credentials" / f"{user}.password"
    return "\n".join(
        [
            f"Shutdown client {client_id}: copy two files to the PC "
            f"(Linux paths; Windows: C:\\ProgramData\\powerbridge\\)",
            f"  {cred}  ->  {REMOTE_CONFIG_DIR}/client.password  (mode 0600)",
            f"  {root / 'ca.crt'}  ->  {REMOTE_CONFIG_DIR}/ca.crt",
            "then in its client.yaml:",
            "  client:",
            f"    id: {client_id}",
            "  mqtt:",
            f"    host: {host}",
            f"    username: {user}",
            f"    password_file: {REMOTE_CONFIG_DIR}/client.password",
            "    tls:",
            "      enabled: true          # port 8883",
            f"      ca_file: {REMOTE_CONFIG_DIR}/ca.crt",
        ]
    )


def nut(directory: Path, client_id: str, host: str) -> str:
    """Where the NUT facade's identity goes (it reads bridges' topics; writes its status)."""
    user = nut_user(client_id)
    secret = directory.resolve() / "credentials" / f"{user}.password"
    lines = (
        f"NUT server facade {client_id}: in /etc/powerbridge/nut.yaml (docs/nut.md)",
        f"  nut: {{client_id: {client_id}}}",
        f"  mqtt: {{host: {host}, username: {user}, password_file: <a copy of {secret}>}}",
    )
    return "\n".join(lines)


def homeassistant(directory: Path, host: str) -> str:
    root = directory.resolve()
    return "\n".join(
        [
            "Home Assistant: Settings > Devices & services > MQTT (add, or Reconfigure):",
            f"  Broker: {host}    Port: 8883    Username: homeassistant",
            f"  Password: the line in {root / 'credentials' / 'homeassistant.password'}",
            "  Advanced options: Broker certificate validation: Custom,",
            f"    upload {root / 'ca.crt'} as the CA certificate",
        ]
    )


def archiver(directory: Path, host: str) -> str:
    cred = directory.resolve() / "credentials" / "archiver.password"
    return (
        f"Archiver (reads samples, events, mains, health, status, deployment, state; writes "
        f"only cmd/resend): {host}:8883 with TLS, "
        f"user archiver, password in {cred}"
    )


def ha_addon(directory: Path, target: Path, folder: str) -> str:
    root = directory.resolve()
    return "\n".join(
        [
            "Home Assistant Mosquitto broker add-on:",
            f"  1. Copy {target / 'acl.conf'} and {target / 'powerbridge.acl'} to {folder}/",
            f"  2. Copy {root / 'server.crt'} and {root / 'server.key'} to /ssl/",
            "     (made with --host naming Home Assistant, e.g. homeassistant.local and its IP)",
            "  3. Add-on Configuration (YAML): customize: {active: true, folder: mosquitto},",
            "     certfile: server.crt, keyfile: server.key, and the logins list from",
            f"     {target / 'logins.yaml'} (then delete that file)",
            "  4. Network: leave 1883 empty so that only TLS (8883) is reachable;",
            "     restart the add-on",
            "Bridges and PCs then connect to Home Assistant's host on 8883 with ca.crt.",
        ]
    )
