"""Who this client is: its client id (a topic level), the name people see, and its twins."""

from __future__ import annotations

import logging
import re
import secrets
import socket

from bridge.config.client import ClientConfig
from bridge.errors import PayloadError
from bridge.mqtt.contract import ClientStatePayload

log = logging.getLogger("bridge.shutdown.runtime")


def default_client_id() -> str:
    """This computer's host name, made safe as a topic level."""
    host = socket.gethostname().split(".")[0]
    return re.sub(r"[^A-Za-z0-9_-]", "-", host)[:64].strip("-") or "pc"


def client_identity(config: ClientConfig) -> tuple[str, str]:
    """``(client_id, display name)``."""
    client_id = config.client.id or default_client_id()
    return client_id, config.client.name or client_id


class Twins:
    """Other processes running with this client's identity, seen on its own topics.

    Each run has a random :attr:`instance`, published in its ``state``: a live (not
    retained) ``state`` with another instance, or an ``offline`` said while this one
    runs, is a second ``client run`` with the same ``client.id``.
    """

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.instance = secrets.token_hex(6)
        """This process, in the ``state`` payload: two processes with one identity see it."""
        self.others: set[str] = set()

    def said_offline(self) -> None:
        """Someone published ``offline`` for this client while it runs (it says online again)."""
        log.warning(
            "someone said this client (%s) is offline while it runs: another "
            "`client run` with the same client.id? saying online again",
            self.client_id,
        )

    def state_seen(self, payload: bytes) -> None:
        """A live ``state`` on this client's topic: ours, or a twin's."""
        try:
            other = ClientStatePayload.decode(payload).instance
        except PayloadError:
            return
        if isinstance(other, str) and other != self.instance and other not in self.others:
            self.others.add(other)
            log.error(
                "another shutdown client with the id %s is running (instance %s; this one is "
                "%s): stop one of them, or give one another client.id — both act on outages "
                "and publish the same state",
                self.client_id,
                other,
                self.instance,
            )
