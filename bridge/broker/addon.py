"""Files for Home Assistant's Mosquitto broker add-on, made from a broker directory.

The add-on runs its own Mosquitto with an authentication plugin: Home Assistant's
internal users ``homeassistant`` and ``addons`` must keep ``readwrite #`` (the
add-on's documentation requires it), local users come from the add-on's
``logins`` option, and extra configuration is read from ``/share/<folder>/*.conf``
when ``customize.active`` is on.  So the add-on equivalent of our broker is:

* ``acl.conf`` (into ``/share/mosquitto/``): one line naming the ACL file;
* ``powerbridge.acl`` (into ``/share/mosquitto/``): the internal users, then the
  archiver block and every identity block from our ACL;
* ``logins.yaml`` (0600; its passwords go into the add-on's options, not a file
  anyone else reads): our users and their passwords.
"""

from __future__ import annotations

from pathlib import Path

from bridge.broker.acl import IDENTITY_MARKER, acl_users
from bridge.broker.directory import BrokerDirectory, BrokerSetupError, Report

ADDON_FOLDER = "/share/mosquitto"
ADDON_ACL_NAME = "powerbridge.acl"
"""Not ``*.conf``: the add-on parses every ``.conf`` in its folder as configuration."""
INTERNAL_USERS = ("addons", "homeassistant")


def addon_acl(acl_text: str) -> str:
    """Our ACL for the add-on: internal users first, our ``homeassistant`` block dropped."""
    if IDENTITY_MARKER not in acl_text:
        raise BrokerSetupError("the ACL has no identity marker line: not made by powerbridge")
    blocks = _blocks(acl_text)
    lines = [
        "# powerbridge ACL for the Home Assistant Mosquitto add-on (made by",
        "# `powerbridge broker ha-addon`). Home Assistant's internal users keep full access,",
        "# as the add-on requires. Every MQTT user that is not listed here gets nothing:",
        "# add a block for each of your other devices too.",
        "",
    ]
    for user in INTERNAL_USERS:
        lines += [f"user {user}", "topic readwrite #", ""]
    for user, block in blocks:
        if user not in INTERNAL_USERS:
            lines += [*block, ""]
    return "\n".join(lines)


def _blocks(acl_text: str) -> list[tuple[str, list[str]]]:
    """``(user, lines)`` for each ``user`` block, comments and blank lines left out."""
    out: list[tuple[str, list[str]]] = []
    for raw in acl_text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.split()[0] == "user":
            out.append((line.split(maxsplit=1)[1], [line]))
        elif out:
            out[-1][1].append(line)
    return out


def logins_yaml(store: BrokerDirectory, users: list[str], report: Report) -> str:
    """The add-on's ``logins`` option for ``users`` (those without a credentials file: warned)."""
    lines = ["logins:"]
    for user in users:
        password = store.password(user)
        if password is None:
            report.add(
                f"password: {user}",
                "warning",
                "no credentials file: add this user to the add-on's logins by hand",
            )
            continue
        lines += [f"  - username: {user}", f'    password: "{password}"']
    return "\n".join(lines) + "\n"


def write_addon_files(store: BrokerDirectory) -> tuple[Path, Report]:
    """Write ``<dir>/ha-addon/`` from the broker directory; returns it and what was done."""
    acl_text = store.acl.read_text(encoding="utf-8") if store.acl.exists() else None
    if acl_text is None:
        raise BrokerSetupError(
            f"{store.acl} does not exist: run `powerbridge broker init {store.path}` first"
        )
    target = store.path / "ha-addon"
    report = Report()
    users = sorted(u for u in acl_users(acl_text) if u not in INTERNAL_USERS)
    files = {
        "acl.conf": (f"acl_file {ADDON_FOLDER}/{ADDON_ACL_NAME}\n", 0o644),
        ADDON_ACL_NAME: (addon_acl(acl_text), 0o644),
        "logins.yaml": (logins_yaml(store, users, report), 0o600),
    }
    store.make_dir(target, 0o700)
    for name, (text, mode) in files.items():
        existed = (target / name).exists()
        store.write_file(target / name, text, mode)
        report.add(str(target / name), "updated" if existed else "created")
    return target, report
