"""From the bridges' MQTT topics to one :class:`~bridge.nut.variables.UpsState` per bridge.

The facade listens exactly like a shutdown client: the same checks on every message
(:class:`~bridge.shutdown.intake.Intake`: signatures, order, replays), the same view
(:class:`~bridge.shutdown.view.Tracker`) and, for ``LB`` and ``FSD``, the shutdown
policy's own :func:`~bridge.shutdown.policy.decide` — each bridge decided alone, as a
computer fed by that one supply would decide.  So a NUT secondary behind this server
shuts down at powerbridge's deadline, never on a blip the bridge did not announce.

No I/O and no clock: every method takes the monotonic ``now``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bridge.errors import PayloadError
from bridge.model import MainsState
from bridge.mqtt.contract import (
    CLIENT_COMMANDS,
    BridgeTopics,
    ClientTopics,
    StatePayload,
    all_bridges_status_filter,
)
from bridge.nut.variables import Battery, Power, UpsState
from bridge.shutdown.intake import Intake, Rejected
from bridge.shutdown.policy import Cause, Decision, Phase, PolicySettings, decide
from bridge.shutdown.view import MainsFact, Tracker, View
from bridge.ups.report import UpsReport

log = logging.getLogger("bridge.nut.feed")

QOS_SUBSCRIBE = 1


@dataclass(frozen=True, slots=True)
class Subscription:
    topic: str
    qos: int = QOS_SUBSCRIBE


class Feed:
    """Merges messages into per-bridge state; single-threaded (the caller serialises)."""

    def __init__(
        self,
        bridges: Sequence[str],
        *,
        base: str,
        client_id: str,
        settings: PolicySettings,
        started_at: float,
        intake: Intake,
    ) -> None:
        self._bridges = tuple(bridges)
        self._topics = {d: BridgeTopics(base, d) for d in self._bridges}
        self._by_topic: dict[str, tuple[str, str]] = {}
        for device, topics in self._topics.items():
            for kind in ("mains", "status", "state"):
                self._by_topic[getattr(topics, kind)] = (device, kind)
            self._by_topic[topics.ups] = (device, "ups")
        self._client_topics = (ClientTopics(base, client_id), ClientTopics(base, "all"))
        # Each bridge is decided alone: its own outage against the policy's delay.
        self._settings = replace(settings, min_supplies=1)
        self._intake = intake
        self._tracker = Tracker(self._bridges, started_at)
        self._readings: dict[str, dict[str, float]] = {d: {} for d in self._bridges}
        self._ups: dict[str, UpsReport] = {}
        self.rejected = 0

    @property
    def bridges(self) -> tuple[str, ...]:
        return self._bridges

    def subscriptions(self) -> list[Subscription]:
        subs = [Subscription(all_bridges_status_filter(next(iter(self._topics.values())).base))]
        for topics in self._topics.values():
            subs += [
                Subscription(topics.mains),
                Subscription(topics.state),
                Subscription(topics.ups),
            ]
        subs += [Subscription(t.cmd_filter) for t in self._client_topics]
        return subs

    # -- events ---------------------------------------------------------------------------
    def connected(self) -> None:
        self._tracker.connected()

    def disconnected(self, now: float) -> None:
        self._tracker.disconnected(now)

    def message(
        self, topic: str, payload: bytes, *, retained: bool, now: float, wall: datetime
    ) -> None:
        """Merge one message (unknown topics are ignored; bad payloads counted)."""
        target = self._by_topic.get(topic)
        if target is not None:
            device, kind = target
            if kind == "mains":
                self._mains(device, payload, retained=retained, now=now, wall=wall)
            elif kind == "status":
                self._status(device, payload, now)
            elif kind == "ups":
                self._ups_report(device, payload, retained=retained, now=now)
            else:
                self._state(device, payload)
            return
        for client in self._client_topics:
            prefix = client.root + "/cmd/"
            if topic.startswith(prefix) and topic[len(prefix) :] in CLIENT_COMMANDS:
                self._command(
                    topic, topic[len(prefix) :], payload, retained=retained, now=now, wall=wall
                )

    def _mains(
        self, device: str, payload: bytes, *, retained: bool, now: float, wall: datetime
    ) -> None:
        fact = self._intake.mains(device, payload, now, wall, retained=retained)
        if isinstance(fact, MainsFact):
            self._tracker.mains(fact)
        elif isinstance(fact, Rejected):
            self._reject(f"mains of {device}", fact)
        # (an Ignored message is a duplicate delivery: nothing new)

    def _status(self, device: str, payload: bytes, now: float) -> None:
        online = self._intake.status(device, payload)
        if isinstance(online, Rejected):
            self._reject(f"status of {device}", online)
            return
        self._tracker.status(device, online, now)

    def _state(self, device: str, payload: bytes) -> None:
        try:
            state = StatePayload.decode(payload)
        except PayloadError as exc:
            self.rejected += 1
            log.debug("ignored a state message of %s: %s", device, exc)
            return
        if state.device != device:
            self.rejected += 1
            return
        self._readings[device] = {
            k: float(v) for k, v in state.values.items() if isinstance(v, int | float)
        }

    def _ups_report(self, device: str, payload: bytes, *, retained: bool, now: float) -> None:
        report = self._intake.ups_report(device, payload)
        if isinstance(report, Rejected):
            self.rejected += 1
            log.debug("ignored a ups message of %s: %s", device, report.detail)
            return
        if not isinstance(report, UpsReport):
            return
        self._ups[device] = report
        if not retained:  # shown either way; decided on only when received live
            self._tracker.battery(
                device, low=report.low_battery, runtime_s=report.runtime_s, at=now
            )

    def _command(
        self, topic: str, name: str, payload: bytes, *, retained: bool, now: float, wall: datetime
    ) -> None:
        fact = self._intake.command(topic, name, payload, now, wall, retained=retained)
        if isinstance(fact, Rejected):
            self._reject(topic, fact)
            return
        if fact.name == "shutdown_now":
            if self._tracker.remote_shutdown(fact.received, fact.reason):
                log.warning("remote 'shutdown now' accepted: FSD follows the cancel window")
        elif self._tracker.remote_cancel():
            log.warning("remote 'shutdown now' cancelled")

    def _reject(self, where: str, rejected: Rejected) -> None:
        self.rejected += 1
        log.warning("ignored a message (%s) on %s: %s", rejected.reason, where, rejected.detail)

    # -- state ----------------------------------------------------------------------------
    def decision(self, device: str, now: float) -> Decision:
        """The shutdown policy's decision for a computer fed by ``device`` alone."""
        view = self._tracker.view()
        alone = View(
            bridges=(view.bridge(device),),
            started_at=view.started_at,
            connected=view.connected,
            disconnected_since=view.disconnected_since,
            remote_requested_at=view.remote_requested_at,
            remote_reason=view.remote_reason,
        )
        return decide(alone, now, self._settings)

    def state(self, device: str, now: float) -> UpsState:
        """What the NUT server presents for ``device`` at ``now``."""
        view = self._tracker.view()
        b = view.bridge(device)
        decision = self.decision(device, now)
        fresh = (
            view.connected
            and b.heard
            and b.online is not False
            and b.confirming_since is None
            and b.last_heard is not None
            and now < b.last_heard + self._settings.silence_after
        )
        if not fresh:
            return UpsState(stale=True)
        due = decision.phase is Phase.SHUTDOWN
        ups = self._ups.get(device)
        battery = (
            None
            if ups is None
            else Battery(charge=ups.charge, runtime=ups.runtime_s, low=ups.low_battery)
        )
        policy_low = decision.cause in (Cause.OUTAGE, Cause.LOST_DURING_OUTAGE, Cause.LOW_BATTERY)
        return UpsState(
            stale=False,
            power=Power.ON_BATTERY if b.mains is MainsState.OFF else Power.ONLINE,
            low_battery=(due and policy_low) or (battery is not None and battery.low),
            # FSD at every due decision: the facade is the deciding side, a primary's role.  A
            # secondary seeing LB without FSD waits HOSTSYNC for a primary that is not there.
            forced=due,
            seconds_left=(
                decision.seconds_left
                if decision.phase is Phase.COUNTING and decision.cause is not Cause.REMOTE
                else None
            ),
            readings=dict(self._readings[device]),
            battery=battery,
        )

    def next_change(self, now: float) -> float | None:
        """When a state may change without a message (a deadline, a silence limit)."""
        times = [self.decision(d, now).next_check for d in self._bridges]
        future = [t for t in times if t is not None and t > now]
        return min(future) if future else None
