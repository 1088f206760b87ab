"""Topic names, QoS levels, limits, and each role's broker user name.

Part of :mod:`bridge.mqtt.contract`; import from there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, overload

from bridge.model import MainsState

PAYLOAD_VERSION: Final = 1
DEFAULT_BASE: Final = "powerbridge"
DEFAULT_DISCOVERY_PREFIX: Final = "homeassistant"
ONLINE: Final = "online"
OFFLINE: Final = "offline"
CLIENTS_LEVEL: Final = "clients"
"""Reserved topic level for shutdown clients; no bridge may use it as its device id."""
ALL_CLIENTS: Final = "all"
"""Pseudo client id addressing every shutdown client in commands."""
MAX_CONTROL_PAYLOAD: Final = 4096
"""Largest ``mains``/``status``/command payload a client accepts (bytes)."""
MAX_STATE_PAYLOAD: Final = 64 * 1024
"""Largest ``state``/``health``/client ``state`` payload a reader accepts (bytes): they are
not control messages, and a client's ``state`` grows with the bridges it watches."""
DEVICE_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""A device or client id: one topic level of safe characters."""
MAINS_REFRESH_S: Final = 30.0
"""The bridge republishes ``mains`` (same ``seq``, fresh ``ts``/``elapsed_s``) this often."""

QOS_STATUS: Final = 1
QOS_MAINS: Final = 1
QOS_OUTAGE: Final = 1
QOS_DEPLOYMENT: Final = 1
QOS_EVENTS: Final = 1
QOS_SAMPLES: Final = 1
QOS_STATE: Final = 0
QOS_HEALTH: Final = 0
QOS_DISCOVERY: Final = 1
QOS_CMD: Final = 1

MAINS_STATES: Final = (MainsState.ON.value, MainsState.OFF.value, MainsState.UNKNOWN.value)
"""``unknown``: the bridge has just started and is still confirming its input."""
BOOT_ID_LENGTH: Final = 16
_BOOT_RE: Final = re.compile(r"[0-9a-f]{8,64}")

BRIDGE_COMMANDS: Final = ("simulate", "republish", "resend")
RESEND_MAX_RANGE: Final = 100_000
"""The most sequence numbers one ``cmd/resend`` asks for (``args``: ``first``, ``last``)."""
CLIENT_COMMANDS: Final = ("shutdown_now", "cancel")


class _Leaf:
    """A topic one level below a participant's root, named like the attribute it is.

    ``mains = _Leaf("…")`` in a participant's class gives ``topics.mains ==
    f"{topics.root}/mains"``; the text is the attribute's documentation.
    """

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self._level = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._level = name

    @overload
    def __get__(self, participant: None, owner: type) -> _Leaf: ...
    @overload
    def __get__(self, participant: _Participant, owner: type) -> str: ...
    def __get__(self, participant: _Participant | None, owner: type) -> str | _Leaf:
        return self if participant is None else f"{participant.root}/{self._level}"


class _Participant:
    """The topics every participant (a bridge, a shutdown client) has under its ``root``."""

    __slots__ = ()

    @property
    def root(self) -> str:
        raise NotImplementedError

    status = _Leaf("Retained ``online``/``offline`` (plain text); the last will.")
    state = _Leaf("Retained: a bridge's newest reading, a client's countdown.")

    def cmd(self, name: str) -> str:
        """Commands to it (:data:`BRIDGE_COMMANDS`, :data:`CLIENT_COMMANDS`)."""
        return f"{self.root}/cmd/{name}"

    @property
    def cmd_filter(self) -> str:
        return f"{self.root}/cmd/#"


@dataclass(frozen=True, slots=True)
class BridgeTopics(_Participant):
    """Topics of one bridge: ``<base>/<device_id>/...`` (``state`` is a :class:`StatePayload`)."""

    base: str
    device_id: str

    @property
    def root(self) -> str:
        return f"{self.base}/{self.device_id}"

    mains = _Leaf("Retained QoS 1 :class:`MainsPayload`.")
    outage = _Leaf(
        "Retained QoS 1 :class:`OutagePayload`: when the open outage started (or ``null``)."
    )
    samples = _Leaf("QoS 1, not retained: batches of spooled samples (:func:`encode_samples`).")
    health = _Leaf("Retained :class:`HealthPayload` snapshot.")
    events = _Leaf("QoS 1, not retained: outage started/ended (:class:`EventPayload`).")
    deployment = _Leaf("Retained deployment record.")
    ups = _Leaf(
        "Retained QoS 1 :class:`UpsPayload`: the bridge's UPS (only with a ``ups:`` section)."
    )
    check = _Leaf("QoS 1, not retained: a probe ``powerbridge check`` publishes and reads back.")


@dataclass(frozen=True, slots=True)
class ClientTopics(_Participant):
    """Topics of one shutdown client: ``<base>/clients/<client_id>/...``."""

    base: str
    client_id: str

    @property
    def root(self) -> str:
        return f"{self.base}/{CLIENTS_LEVEL}/{self.client_id}"


def all_bridges_status_filter(base: str) -> str:
    """Subscription that sees every bridge's ``status`` (and no client's)."""
    return f"{base}/+/status"


def all_clients_filter(base: str) -> str:
    return f"{base}/{CLIENTS_LEVEL}/+/+"


def discovery_topic(prefix: str, component: str, node_id: str, object_id: str) -> str:
    """``<prefix>/<component>/<node_id>/<object_id>/config``: one retained message per entity.

    Home Assistant's optional ``node_id`` level carries the device id (bridges) or
    ``client-<client_id>`` (shutdown clients), so that a broker ACL can give each
    identity exactly its own discovery topics (``<prefix>/+/<node_id>/#``); the
    entity's ``unique_id`` in the payload is ``<node_id>_<object_id>``.
    """
    return f"{prefix}/{component}/{node_id}/{object_id}/config"


def client_node_id(client_id: str) -> str:
    """Discovery ``node_id`` of a shutdown client."""
    return f"{CLIENTS_LEVEL[:-1]}-{client_id}"


# --------------------------------------------------------------------------- broker user names


def bridge_user(device_id: str) -> str:
    """Broker user name of a bridge: its ACL block and its default ``mqtt.username``."""
    return f"bridge-{device_id}"


def client_user(client_id: str) -> str:
    """Broker user name of a shutdown client: its ACL block and its default ``mqtt.username``."""
    return f"client-{client_id}"


def nut_user(client_id: str) -> str:
    """Broker user name of a NUT server facade (``powerbridge nut serve``, ``nut.client_id``)."""
    return f"nut-{client_id}"


HOMEASSISTANT_USER: Final = "homeassistant"
"""Broker user name of Home Assistant (a fixed role, one per broker)."""
ARCHIVER_USER: Final = "archiver"
"""Broker user name of the archiver (a fixed role, one per broker)."""


def topic_roots_overlap(base: str, prefix: str) -> str | None:
    """Why a base topic and a discovery prefix cannot be used together (``None``: they can).

    Both are single topic levels; when they are equal, a bridge's discovery grant
    ``<prefix>/+/<device_id>/#`` covers ``<base>/<any bridge>/<device_id>/...`` — a bridge
    named ``mains`` could write every bridge's ``mains``.
    """
    if base == prefix:
        return (
            f"the base topic and the discovery prefix are both {base!r}: a bridge's "
            "discovery topics would cover other bridges' topics; choose two different roots"
        )
    return None


def ha_status_topic(prefix: str) -> str:
    """Home Assistant's birth/last-will topic (``online`` after HA starts)."""
    return f"{prefix}/status"
