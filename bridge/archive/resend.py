"""The archive's side of ``<base>/<device_id>/cmd/resend``: ask a bridge for a range again.

The command is a :class:`~bridge.mqtt.contract.CommandPayload` with
``args = {"first": <seq>, "last": <seq>}`` (inclusive, at most :data:`MAX_RANGE`
numbers; a longer gap is asked for in pieces, oldest first).  With a key it is
signed over payload and topic, like every command (:func:`bridge.mqtt.signing.sign_command`):
a resend for one bridge cannot be replayed to another, nor as another command.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Final

from bridge.archive.gaps import Gap
from bridge.mqtt.contract import RESEND_MAX_RANGE, BridgeTopics, CommandPayload, dumps
from bridge.mqtt.signing import sign_command

RESEND: Final = "resend"
MAX_RANGE: Final = RESEND_MAX_RANGE


def resend_commands(
    gap: Gap, *, base: str, now: datetime, key: bytes | None
) -> list[tuple[str, bytes]]:
    """``(topic, payload)`` of the commands that ask for ``gap`` (oldest range first)."""
    topic = BridgeTopics(base, gap.device).cmd(RESEND)
    out: list[tuple[str, bytes]] = []
    first = gap.first
    while first <= gap.last:
        last = min(gap.last, first + MAX_RANGE - 1)
        command = CommandPayload(
            RESEND, {"first": first, "last": last}, now, secrets.token_hex(12)
        ).to_dict()
        if key is not None:
            command = sign_command(key, topic, command)
        out.append((topic, dumps(command)))
        first = last + 1
    return out
