"""The client's retained ``clients/<id>/state`` payload, built from a decision: pure.

The runtime supplies what is its own (identity, phase, whether it is armed, its
settings and counters); this module adds what the decision and the view say
(cause, deadline, supplies), and tells which fields change only with time
(:func:`lasting_part`), so that the state is republished when something else changed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from bridge.clock import isoformat_utc
from bridge.shutdown.policy import Decision, Phase
from bridge.shutdown.view import View

MOVING_FIELDS: Final = frozenset({"seconds_left", "ts", "deadline"})
"""Top-level fields that change with time alone."""
MOVING_SUPPLY_FIELDS: Final = frozenset({"state_for_s", "heard_s_ago"})
"""Fields of each supply that change with time alone."""


def client_state(
    own: dict[str, Any], view: View, decision: Decision, now: float, wall: datetime
) -> dict[str, Any]:
    """The state payload (without ``v``; see docs/mqtt-contract.md): ``own`` fields plus
    the decision's and the view's at monotonic ``now`` and wall clock ``wall``."""
    lost = {n.device_id for n in decision.notices if n.code.startswith("lost")}
    supplies = {
        b.device_id: {
            "mains": b.mains.value,
            "online": b.online,
            "seq": b.seq,
            "state_for_s": None if b.state_start is None else round(now - b.state_start, 1),
            "heard_s_ago": None if b.last_heard is None else round(now - b.last_heard, 1),
            "lost": b.device_id in lost,
        }
        for b in view.bridges
    }
    left = decision.seconds_left
    return {
        **own,
        "cause": None if decision.cause is None else decision.cause.value,
        "reason": decision.reason,
        "deadline": None if left is None else isoformat_utc(wall + timedelta(seconds=left)),
        "seconds_left": None if left is None else round(left, 1),
        "supplied": decision.supplied,
        "bridges": [b.device_id for b in view.bridges],
        "supplies": supplies,
        "notices": sorted({n.code for n in decision.notices}),
        "ts": isoformat_utc(wall),
    }


def lasting_part(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` without the fields that change with time alone (to detect real changes)."""
    out = {k: v for k, v in state.items() if k not in MOVING_FIELDS and k != "supplies"}
    out["supplies"] = {
        device: {k: v for k, v in supply.items() if k not in MOVING_SUPPLY_FIELDS}
        for device, supply in state["supplies"].items()
    }
    return out


def client_phase(latched: bool, decision: Decision | None) -> str:
    """``idle``, ``counting`` or ``shutting_down`` (the contract's client states)."""
    if latched:
        return "shutting_down"
    if decision is None or decision.phase is Phase.IDLE:
        return "idle"
    return "counting"
