"""ACL ``user`` blocks for each role (the templates behind ``mosquitto/acl``), and the shipped
ACL rendered for other topic roots (:func:`render_acl`, read back by :func:`acl_topics`).

Why per-identity blocks and not ``pattern`` lines: Mosquitto substitutes only the
*whole* user name (``%u``) or client id (``%c``) into a pattern, and a pattern
applies to every user.  Our topics use the bare id (``powerbridge/<device_id>/``)
while user names carry the role (``bridge-<device_id>``), so no ``%u`` pattern
can name a bridge's own topics.  A ``%c`` pattern could, but the client id is
chosen by the connecting client: a shutdown client that connects with client id
``rack-a`` would be granted bridge ``rack-a``'s topics.  The one place where the
user name *is* the topic level — a shutdown client's discovery ``node_id``,
``client-<id>`` — would give every bridge, Home Assistant and the archiver a
write grant on ``<prefix>/+/<their own user name>/#`` too, which is harmless
only while no device id ever equals another role's user name.  Explicit blocks
cost one block per identity, are generated here from one template per role,
and are proven by the role-matrix test (``tests/broker/test_acl_matrix.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bridge.errors import UsageError
from bridge.mqtt.contract import (
    ALL_CLIENTS,
    CLIENTS_LEVEL,
    DEFAULT_BASE,
    DEFAULT_DISCOVERY_PREFIX,
    DEVICE_ID_RE,
    bridge_user,
    client_node_id,
    client_user,
    nut_user,
)

IDENTITY_MARKER = (
    "# ---- identities (managed by `powerbridge broker add-bridge` / `add-client`) ----"
)
"""(``add-nut`` adds its blocks there too; the marker's text is kept for existing files.)"""

_ID = DEVICE_ID_RE
_USER_LINE = re.compile(r"^\s*user\s+(.+?)\s*$", re.MULTILINE)
_TOPICS_LINE = re.compile(
    r"^# Base topic: (\S+); Home Assistant discovery prefix: (\S+)\.$", re.MULTILINE
)


def _check_id(kind: str, value: str) -> str:
    if not _ID.match(value):
        raise UsageError(
            f"{kind} id {value!r}: expected 1–64 characters of A–Z, a–z, 0–9, '_' or '-'"
        )
    return value


def check_bridge_id(device_id: str) -> str:
    """A device id that is safe as a topic level, a user name suffix and a discovery node id.

    ``clients`` is the clients' topic level, and an id starting with ``client-``
    would be a shutdown client's discovery ``node_id``: both would let the bridge
    write where a client does.
    """
    _check_id("bridge", device_id)
    if device_id == CLIENTS_LEVEL or device_id.startswith(client_node_id("")):
        raise UsageError(
            f"bridge id {device_id!r} is reserved "
            f"({CLIENTS_LEVEL!r} and 'client-…' belong to shutdown clients)"
        )
    return device_id


def check_client_id(client_id: str) -> str:
    """A client id; ``all`` addresses every client in commands, so no client may own it."""
    _check_id("client", client_id)
    if client_id == ALL_CLIENTS:
        raise UsageError(f"client id {ALL_CLIENTS!r} is reserved (commands to every client)")
    return client_id


def acl_users(text: str) -> set[str]:
    """The user names that have a ``user`` block in an ACL file."""
    return {m.group(1) for m in _USER_LINE.finditer(text)}


def bridge_block(
    device_id: str, base: str = DEFAULT_BASE, prefix: str = DEFAULT_DISCOVERY_PREFIX
) -> str:
    """A bridge publishes only under its own topics and reads only its own topics.

    It reads its own root (``cmd/#`` and its own retained messages, e.g. to clear
    stale ones) and Home Assistant's birth message, to republish discovery.
    """
    root = f"{base}/{device_id}"
    return "\n".join(
        [
            f"user {bridge_user(device_id)}",
            f"topic readwrite {root}/#",
            f"topic write {prefix}/+/{device_id}/#",
            f"topic read {prefix}/status",
            "",
        ]
    )


def client_block(
    client_id: str, base: str = DEFAULT_BASE, prefix: str = DEFAULT_DISCOVERY_PREFIX
) -> str:
    """A shutdown client reads bridges' status/mains/events/ups; writes only its own topics."""
    root = f"{base}/{CLIENTS_LEVEL}/{client_id}"
    node = client_node_id(client_id)
    return "\n".join(
        [
            f"user {client_user(client_id)}",
            f"topic read {base}/+/status",
            f"topic read {base}/+/mains",
            f"topic read {base}/+/events",
            f"topic read {base}/+/ups",  # a UPS behind a bridge (shutdown.min_runtime)
            f"topic readwrite {root}/#",
            f"topic read {base}/{CLIENTS_LEVEL}/{ALL_CLIENTS}/cmd/#",
            f"topic write {prefix}/+/{node}/#",
            f"topic read {prefix}/status",
            "",
        ]
    )


def nut_block(
    client_id: str, base: str = DEFAULT_BASE, prefix: str = DEFAULT_DISCOVERY_PREFIX
) -> str:
    """A NUT server facade reads what it serves as UPS variables; writes only its status.

    It reads every bridge's ``status``, ``mains``, ``state`` (readings) and ``ups``, and
    the commands addressed to it or to all clients (a signed remote ``shutdown_now``
    becomes ``FSD``); it publishes nothing but its own ``status`` (its last will).  No
    ``events``, ``samples``, ``health`` or ``outage``, and no discovery.
    """
    del prefix  # the facade has no Home Assistant entities
    root = f"{base}/{CLIENTS_LEVEL}/{client_id}"
    return "\n".join(
        [
            f"user {nut_user(client_id)}",
            *(f"topic read {base}/+/{leaf}" for leaf in ("status", "mains", "state", "ups")),
            f"topic readwrite {root}/status",
            f"topic read {root}/cmd/#",
            f"topic read {base}/{CLIENTS_LEVEL}/{ALL_CLIENTS}/cmd/#",
            "",
        ]
    )


@dataclass(frozen=True, slots=True)
class Role:
    """An identity that ``broker add-<kind>`` adds: its id check, user name and ACL block."""

    check_id: Callable[[str], str]
    user: Callable[[str], str]
    block: Callable[[str, str, str], str]
    """``block(id, base, prefix)``."""


ROLES: Final = {
    "bridge": Role(check_bridge_id, bridge_user, bridge_block),
    "client": Role(check_client_id, client_user, client_block),
    "nut": Role(check_client_id, nut_user, nut_block),
}


def render_acl(template: str, base: str, prefix: str) -> str:
    """The shipped ACL with its topic roots replaced by ``base`` and ``prefix``."""
    out: list[str] = []
    for raw in template.splitlines():
        line = raw
        words = line.split(maxsplit=2)
        if len(words) == 3 and words[0] == "topic":
            topic = words[2]
            if topic == DEFAULT_BASE or topic.startswith(DEFAULT_BASE + "/"):
                topic = base + topic[len(DEFAULT_BASE) :]
            elif topic == DEFAULT_DISCOVERY_PREFIX or topic.startswith(
                DEFAULT_DISCOVERY_PREFIX + "/"
            ):
                topic = prefix + topic[len(DEFAULT_DISCOVERY_PREFIX) :]
            line = f"topic {words[1]} {topic}"
        elif _TOPICS_LINE.match(line):
            line = f"# Base topic: {base}; Home Assistant discovery prefix: {prefix}."
        out.append(line)
    return "\n".join(out) + "\n"


def acl_topics(text: str) -> tuple[str, str]:
    """The base topic and discovery prefix an ACL file was made for (from its header)."""
    found = _TOPICS_LINE.search(text)
    if found is None:
        return DEFAULT_BASE, DEFAULT_DISCOVERY_PREFIX
    return found.group(1), found.group(2)
