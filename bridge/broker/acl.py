"""ACL ``user`` blocks for each role (the templates behind ``mosquitto/acl``).

Mosquitto's ``pattern`` substitution only inserts the whole user name (``%u``)
or client id (``%c``); our topics use the bare device/client id while user names
carry the role (``bridge-<id>``), and a pattern applies to *every* user, so a
client id chosen by a hostile client could widen its rights.  Per-identity
``user`` blocks are therefore generated here, from one template per role.
"""

from __future__ import annotations

from bridge.mqtt.contract import (
    CLIENTS_LEVEL,
    DEFAULT_BASE,
    DEFAULT_DISCOVERY_PREFIX,
    client_node_id,
)

IDENTITY_MARKER = (
    "# ---- identities (managed by `powerbridge broker add-bridge` / `add-client`) ----"
)


def bridge_user(device_id: str) -> str:
    return f"bridge-{device_id}"


def client_user(client_id: str) -> str:
    return f"client-{client_id}"


def bridge_block(
    device_id: str, base: str = DEFAULT_BASE, prefix: str = DEFAULT_DISCOVERY_PREFIX
) -> str:
    """A bridge publishes only under its own topics and reads only its commands."""
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
    """A shutdown client reads bridges' status/mains/events; writes only its own topics."""
    root = f"{base}/{CLIENTS_LEVEL}/{client_id}"
    node = client_node_id(client_id)
    return "\n".join(
        [
            f"user {client_user(client_id)}",
            f"topic read {base}/+/status",
            f"topic read {base}/+/mains",
            f"topic read {base}/+/events",
            f"topic readwrite {root}/#",
            f"topic read {base}/{CLIENTS_LEVEL}/all/cmd/#",
            f"topic write {prefix}/+/{node}/#",
            f"topic read {prefix}/status",
            "",
        ]
    )
