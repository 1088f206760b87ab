"""The shutdown decision, as one pure function: ``decide(view, now, settings) -> Decision``.

No I/O, no clock, no logging: the caller passes the monotonic ``now`` and acts on
the result.  The rules, in the order they are applied:

1. A watched bridge never heard from counts as *supplied* (no decision on missing
   information) and is reported after a grace period.  So does a bridge whose
   announced outage this client has not received *live* (a retained message, or a
   broker's restored ``status``, is old news: see :mod:`bridge.shutdown.view`).
2. A bridge whose last announced state is *on* counts as supplied, whatever happens
   to the link: losing it is reported after ``lost_warning_after``, never acted on.
3. A bridge whose last announced state is *off* counts as *not supplied* from the
   estimated start of its outage (bridge ``elapsed_s`` + our monotonic time since
   receipt; see :mod:`bridge.shutdown.view`).
4. The shutdown condition is "fewer than ``min_supplies`` watched supplies have
   mains".  It began when the k-th outage began (k = bridges - min_supplies + 1),
   and the deadline is that instant + ``delay``.  Restoration before the deadline
   simply makes the condition false again: the countdown is cancelled.
5. A bridge in outage that is *lost* (its ``status`` went offline, the broker link
   is down, it fell silent for ``silence_after``, or it restarted and is confirming
   its input again) keeps counting to the same
   deadline (``continue``), or — with ``shutdown_now`` — shuts down as soon as the
   loss is seen, provided the shutdown condition holds.
6. An authenticated remote ``shutdown_now`` shuts down ``remote_cancel_window``
   after it was accepted, unless cancelled.
7. The earliest deadline wins; at or after it the decision is ``SHUTDOWN``.
8. A bridge in an outage whose UPS reports low battery (``on_low_battery``), or whose
   remaining runtime, counted down from its last report, falls below ``min_runtime``,
   brings the deadline forward to that moment (never before the condition of rule 4
   began): whichever comes first with ``delay``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from bridge.config.client import ShutdownConfig
from bridge.model import MainsState
from bridge.mqtt.contract import MAINS_REFRESH_S
from bridge.shutdown.view import BridgeView, View

LostPolicy = Literal["continue", "shutdown_now"]


def _lost_policy(value: str) -> LostPolicy:
    return "shutdown_now" if value == "shutdown_now" else "continue"


def _warning_marks(warnings: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(sorted(set(warnings), reverse=True))


_CONFIG_DEFAULTS = ShutdownConfig()
"""The defaults of ``shutdown:`` in ``client.yaml``: the one source of this module's defaults."""
_DEFAULT_LOST_POLICY = _lost_policy(_CONFIG_DEFAULTS.on_lost_during_outage)
_DEFAULT_WARNINGS = _warning_marks(_CONFIG_DEFAULTS.warnings)


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """The parameters of :func:`decide` (built from ``shutdown:`` in ``client.yaml``).

    The defaults are those of :class:`~bridge.config.client.ShutdownConfig`, read from
    its declarations, except the two that are not settings (``silence_after``,
    ``never_heard_after``).
    """

    delay: float = _CONFIG_DEFAULTS.delay
    min_supplies: int = _CONFIG_DEFAULTS.min_supplies
    on_lost_during_outage: LostPolicy = _DEFAULT_LOST_POLICY
    lost_warning_after: float = _CONFIG_DEFAULTS.lost_warning_after
    remote_cancel_window: float = _CONFIG_DEFAULTS.remote_cancel_window
    warnings: tuple[float, ...] = _DEFAULT_WARNINGS
    """Seconds-left marks at which users are warned (the decision wakes up for them)."""
    silence_after: float = 3 * MAINS_REFRESH_S
    """A bridge that refreshes ``mains`` every 30 s and has said nothing for this long is lost."""
    never_heard_after: float = 15.0
    """Report a watched bridge never heard from this long after start."""
    on_low_battery: bool = _CONFIG_DEFAULTS.on_low_battery
    """Shut down when a bridge in an outage reports its UPS's low battery (rule 8)."""
    min_runtime: float = _CONFIG_DEFAULTS.min_runtime
    """Shut down when a bridge's UPS has less runtime left than this (0: off; rule 8)."""

    @classmethod
    def from_config(cls, config: ShutdownConfig) -> PolicySettings:
        return cls(
            delay=config.delay,
            min_supplies=config.min_supplies,
            on_lost_during_outage=_lost_policy(config.on_lost_during_outage),
            lost_warning_after=config.lost_warning_after,
            remote_cancel_window=config.remote_cancel_window,
            warnings=_warning_marks(config.warnings),
            on_low_battery=config.on_low_battery,
            min_runtime=config.min_runtime,
        )


class Phase(enum.StrEnum):
    IDLE = "idle"
    COUNTING = "counting"
    SHUTDOWN = "shutdown"
    """Act now (the caller runs the shutdown action once and never again)."""


class Cause(enum.StrEnum):
    OUTAGE = "outage"
    LOST_DURING_OUTAGE = "lost_during_outage"
    REMOTE = "remote"
    LOW_BATTERY = "low_battery"


@dataclass(frozen=True, slots=True)
class Notice:
    """Something an operator should know; stable text, so a caller can log changes only."""

    code: str
    device_id: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Decision:
    phase: Phase
    deadline: float | None
    """Monotonic time of the shutdown (``None`` when idle)."""
    seconds_left: float | None
    cause: Cause | None
    reason: str
    supplied: int
    """Watched supplies counted as having mains (unknown ones count as supplied)."""
    notices: tuple[Notice, ...]
    next_check: float | None
    """Call :func:`decide` again at this monotonic time if nothing else happens first."""


# --------------------------------------------------------------------------- helpers


def _loss_times(
    b: BridgeView, view: View, now: float, s: PolicySettings, *, silence_from_last_heard: bool
) -> float | None:
    """The earliest sign that ``b`` is unreachable (``None``: none).  A bridge fallen silent
    counts from when the silence was detected, or (``silence_from_last_heard``) from when
    it was last heard."""
    times: list[float] = []
    if not view.connected and view.disconnected_since is not None:
        times.append(view.disconnected_since)
    if b.online is False and b.offline_since is not None:
        times.append(b.offline_since)
    if b.confirming_since is not None:
        times.append(b.confirming_since)
    if b.last_heard is not None and now >= b.last_heard + s.silence_after:
        times.append(b.last_heard + (0.0 if silence_from_last_heard else s.silence_after))
    return min(times) if times else None


def _lost(b: BridgeView, view: View, now: float, s: PolicySettings) -> float | None:
    """When the loss of ``b`` was detected (``None``: not lost)."""
    return _loss_times(b, view, now, s, silence_from_last_heard=False)


def _last_sign_of_life(b: BridgeView, view: View, now: float, s: PolicySettings) -> float | None:
    """Since when ``b`` has been unreachable, for "silent for N s" warnings."""
    return _loss_times(b, view, now, s, silence_from_last_heard=True)


def _battery_deadline(bridges: list[BridgeView], s: PolicySettings) -> float | None:
    """When a UPS of a bridge in an outage says it is time (rule 8); ``None``: no UPS says so."""
    times: list[float] = []
    for b in bridges:
        if s.on_low_battery and b.battery_low_since is not None:
            times.append(b.battery_low_since)
        if s.min_runtime > 0 and b.runtime_s is not None and b.runtime_at is not None:
            times.append(b.runtime_at + max(0.0, b.runtime_s - s.min_runtime))
    return min(times) if times else None


def _fmt(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# --------------------------------------------------------------------------- decide


def decide(view: View, now: float, settings: PolicySettings) -> Decision:  # noqa: PLR0912, PLR0915 - one rule per branch, kept together so it reads as the policy
    """Decide whether to shut down, when, and why; pure."""
    s = settings
    notices: list[Notice] = []
    wake: list[float] = []
    outages: list[tuple[float, BridgeView, float | None]] = []  # (start, bridge, lost at)
    supplied = 0

    if not view.connected and view.disconnected_since is not None:
        notices.append(Notice("broker_lost", None, "connection to the broker lost"))

    for b in view.bridges:
        if b.last_heard is not None and now < b.last_heard + s.silence_after:
            wake.append(b.last_heard + s.silence_after)
        if not b.heard:
            supplied += 1
            grace_end = view.started_at + s.never_heard_after
            if now >= grace_end:
                notices.append(
                    Notice(
                        "never_heard",
                        b.device_id,
                        f"bridge {b.device_id} has never been heard from: no decision "
                        "can be made for its supply (is the id right? is it running?)",
                    )
                )
            else:
                wake.append(grace_end)
            continue
        if b.mains is MainsState.OFF and (b.live_seq is None or b.live_seq != b.seq):
            supplied += 1
            notices.append(
                Notice(
                    "stale",
                    b.device_id,
                    f"bridge {b.device_id} last reported an outage that this client has not "
                    "received live from it: not acting on old news (waiting for the bridge)",
                )
            )
            continue
        lost_at = _lost(b, view, now, s)
        if b.mains is MainsState.OFF and b.state_start is not None:
            outages.append((b.state_start, b, lost_at))
            if lost_at is not None:
                notices.append(
                    Notice(
                        "lost_in_outage",
                        b.device_id,
                        f"bridge {b.device_id} lost during an outage: "
                        + (
                            "counting on to the original deadline"
                            if s.on_lost_during_outage == "continue"
                            else "shutting down now (on_lost_during_outage: shutdown_now)"
                        ),
                    )
                )
            continue
        supplied += 1
        silent_since = _last_sign_of_life(b, view, now, s)
        if silent_since is not None:
            warn_at = silent_since + s.lost_warning_after
            if now >= warn_at:
                notices.append(
                    Notice(
                        "lost_on_mains",
                        b.device_id,
                        f"bridge {b.device_id} (last known: mains on) is unreachable; "
                        "this computer will not shut down for it until it is heard again",
                    )
                )
            else:
                wake.append(warn_at)

    deadline: float | None = None
    cause: Cause | None = None
    reason = "mains on" if not outages else f"{supplied} of {len(view.bridges)} supplies on"

    needed = len(view.bridges) - s.min_supplies + 1
    if outages and len(outages) >= needed:
        outages.sort(key=lambda item: item[0])
        condition_start = outages[needed - 1][0]
        deadline = condition_start + s.delay
        cause = Cause.OUTAGE
        names = ", ".join(b.device_id for _, b, _ in outages)
        reason = f"outage at {names} for {_fmt(now - condition_start)}"
        lost_times = [lost for _, _, lost in outages if lost is not None]
        if s.on_lost_during_outage == "shutdown_now" and lost_times:
            lost_deadline = max(condition_start, min(lost_times))
            if lost_deadline < deadline:
                deadline = lost_deadline
                cause = Cause.LOST_DURING_OUTAGE
                reason = f"lost a bridge during the outage at {names}"

        battery = _battery_deadline([b for _, b, _ in outages], s)
        if battery is not None and max(condition_start, battery) < deadline:
            deadline = max(condition_start, battery)
            cause = Cause.LOW_BATTERY
            reason = f"UPS battery low or runtime short during the outage at {names}"

    if view.remote_requested_at is not None:
        remote_deadline = view.remote_requested_at + s.remote_cancel_window
        if deadline is None or remote_deadline < deadline:
            deadline = remote_deadline
            cause = Cause.REMOTE
            detail = f": {view.remote_reason}" if view.remote_reason else ""
            reason = f"remote shutdown requested{detail}"

    if deadline is None:
        phase = Phase.IDLE
        seconds_left = None
    elif now >= deadline:
        phase = Phase.SHUTDOWN
        seconds_left = 0.0
    else:
        phase = Phase.COUNTING
        seconds_left = deadline - now
        wake.append(deadline)
        wake.extend(deadline - mark for mark in s.warnings if deadline - mark > now)

    future = [t for t in wake if t > now]
    return Decision(
        phase=phase,
        deadline=deadline,
        seconds_left=seconds_left,
        cause=cause,
        reason=reason,
        supplied=supplied,
        notices=tuple(notices),
        next_check=min(future) if future else None,
    )
