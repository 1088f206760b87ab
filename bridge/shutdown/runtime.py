"""The client's event loop: messages in, one pure decision, at most one shutdown out.

Events (MQTT messages, connection changes) arrive on a queue from the network
thread; this loop is the only place that touches the intake, the tracker and the
decision, so none of them needs a lock.  Between events it sleeps until the
decision's ``next_check`` (a deadline, a warning mark, a bridge falling silent):
it reacts to messages and never polls the broker.

Time is an injected :class:`~bridge.clock.Clock`.  Decisions use only its
monotonic side; ``client run`` passes :class:`~bridge.clock.SuspendAwareClock`, which
keeps counting while the computer sleeps, so a suspended countdown is not silently extended.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Callable
from typing import Any, Final

from bridge.clock import Clock
from bridge.config.client import ClientConfig
from bridge.model import MainsState
from bridge.mqtt.contract import (
    OFFLINE,
    ONLINE,
    QOS_CLIENT_STATE,
    ClientStatePayload,
    ClientTopics,
)
from bridge.shutdown.actions import Actions, ShutdownOutcome
from bridge.shutdown.discovery import client_discovery
from bridge.shutdown.events import (
    ActionDone,
    Connected,
    Disconnected,
    Event,
    Message,
    Publisher,
    Stop,
)
from bridge.shutdown.identity import Twins, client_identity
from bridge.shutdown.intake import CommandFact, Ignored, Intake, Rejected, Rejections
from bridge.shutdown.memory import ReplayMemory
from bridge.shutdown.policy import Cause, Decision, Phase, PolicySettings, decide
from bridge.shutdown.retry import LOOP_ERROR_PAUSE_S, SHUTDOWN_AGAIN_S
from bridge.shutdown.routes import Routes
from bridge.shutdown.state import client_phase, client_state, lasting_part
from bridge.shutdown.view import MainsFact, Tracker

log = logging.getLogger("bridge.shutdown")

QOS_CLIENT: Final = QOS_CLIENT_STATE
STATE_INTERVAL: Final = 5.0
"""While counting, the retained state (with ``seconds_left``) is republished this often."""
MAX_SLEEP: Final = 60.0
RETRY_AFTER: Final = SHUTDOWN_AGAIN_S
"""A shutdown whose every command failed is tried again this long after (:mod:`.retry`)."""
HA_REPUBLISH_MIN: Final = 0.5
HA_REPUBLISH_MAX: Final = 3.0


def _spawn_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="powerbridge-action", daemon=True).start()


# --------------------------------------------------------------------------- runtime


class ClientRuntime:
    """Owns the intake, the tracker and the shutdown latch of one client."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        clock: Clock,
        actions: Actions,
        key: bytes | None = None,
        client_id: str | None = None,
        name: str | None = None,
        publisher: Publisher | None = None,
        spawn: Callable[[Callable[[], None]], None] = _spawn_thread,
        memory: ReplayMemory | None = None,
    ) -> None:
        default_id, default_name = client_identity(config)
        self.client_id = client_id or default_id
        self.name = name or default_name
        self.config = config
        self.clock = clock
        self.actions = actions
        self.publisher = publisher
        self.settings = PolicySettings.from_config(config.shutdown)
        self._spawn = spawn
        self._base = config.mqtt.base_topic
        discovery = config.mqtt.discovery
        self._routes = Routes(
            self._base,
            self.client_id,
            list(config.bridges),
            discovery.prefix if discovery.enabled else None,
        )
        self._topics = self._routes.own
        self.intake = Intake(
            config.bridges,
            key=key,
            max_age=config.signing.max_age,
            allow_remote=config.shutdown.allow_remote,
        )
        self.memory = memory
        if memory is not None:
            self.intake.restore(memory.load())
        self.tracker = Tracker(config.bridges, clock.monotonic())
        self.rejections = Rejections(log, clock.monotonic)
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()  # reentrant, C
        self._twins = Twins(self.client_id)
        self.instance = self._twins.instance
        """This process, in the ``state`` payload: two processes with one identity see it."""

        self.decision: Decision | None = None
        self.shutdowns = 0
        """How many times the shutdown action was started (at most once unless dry run)."""
        self._latched = False
        self._outcome: ShutdownOutcome | None = None
        self._retry_at: float | None = None
        self._warned: set[float] = set()
        self._notices: set[tuple[str, str | None]] = set()
        self._last_state: dict[str, Any] | None = None
        self._last_state_at = float("-inf")
        self._republish_at: float | None = None

    # -- subscriptions ------------------------------------------------------------------
    @property
    def subscriptions(self) -> list[tuple[str, int]]:
        return list(self._routes.subscriptions)

    @property
    def topics(self) -> ClientTopics:
        return self._topics

    # -- events -------------------------------------------------------------------------
    def submit(self, event: Event) -> None:
        """Thread-safe: queue an event for the loop."""
        self._queue.put(event)

    def process_pending(self) -> int:
        """Handle every queued event without waiting (loop thread, or tests); returns the count."""
        count = 0
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return count
            if not isinstance(event, Stop):
                self._safe_handle(event)
                count += 1

    def handle(self, event: Event) -> None:
        """Apply one event (loop thread only)."""
        if isinstance(event, Message):
            self._message(event)
        elif isinstance(event, Connected):
            self.tracker.connected()
            log.info("connected to the broker; watching %s", ", ".join(self.config.bridges))
            self._publish_discovery()
            self._last_state = None  # republish state after every (re)connect
        elif isinstance(event, Disconnected):
            self.tracker.disconnected(event.at)
        elif isinstance(event, ActionDone):
            self._action_done(event.outcome)

    def _message(self, msg: Message) -> None:
        route = self._routes.route(msg.topic)
        if route is None:
            self.rejections.add(msg.topic, Rejected("unexpected_topic", "not subscribed to this"))
        elif route.kind == "mains":
            self._mains(route.name, msg)
        elif route.kind == "status":
            self._status(route.name, msg)
        elif route.kind == "ups":
            self._ups(route.name, msg)
        elif route.kind == "own":
            self._own_topic(msg)
        elif route.kind == "command":
            self._command(msg, route.name)
        elif msg.payload == ONLINE.encode() and not msg.retained:
            # Home Assistant restarted: republish after a short random delay, so that a
            # fleet of clients does not answer in the same instant.
            jitter = random.uniform(HA_REPUBLISH_MIN, HA_REPUBLISH_MAX)  # noqa: S311 - not crypto
            self._republish_at = msg.received + jitter

    def _own_topic(self, msg: Message) -> None:
        """Our own ``status``/``state``: another process with this identity shows up here."""
        if msg.retained:
            return  # what an earlier run (or a twin) left: not a sign of a twin now
        if msg.topic == self._topics.state:
            self._twins.state_seen(msg.payload)
        elif msg.payload == OFFLINE.encode() and self.publisher is not None:
            self._twins.said_offline()  # a twin that stopped (or its last will)
            self.publisher.publish(msg.topic, ONLINE.encode(), qos=QOS_CLIENT, retain=True)

    def _mains(self, device: str, msg: Message) -> None:
        result = self.intake.mains(
            device, msg.payload, msg.received, msg.wall, retained=msg.retained
        )
        if isinstance(result, Rejected):
            self.rejections.add(msg.topic, result)
            return
        if isinstance(result, Ignored):
            log.debug("%s: %s", msg.topic, result.reason)
            return
        if self.memory is not None:
            self.memory.save(self.intake.marks)
        self._apply_mains(result)

    def _apply_mains(self, fact: MainsFact) -> None:
        kind = self.tracker.mains(fact)
        if kind == "confirming":
            log.warning(
                "%s has (re)started and is confirming its mains input (announcement %d)",
                fact.device_id,
                fact.seq,
            )
        elif kind == "new":
            word = "OFF (outage)" if fact.state is MainsState.OFF else "on"
            log.warning(
                "%s announces mains %s (announcement %d, lasting %.1f s when published%s)",
                fact.device_id,
                word,
                fact.seq,
                fact.elapsed_s,
                "" if fact.live else ", retained",
            )

    def _ups(self, device: str, msg: Message) -> None:
        report = self.intake.ups(device, msg.payload, retained=msg.retained)
        if isinstance(report, Rejected):
            self.rejections.add(msg.topic, report)
        elif not isinstance(report, Ignored):
            self.tracker.battery(
                device, low=report.low_battery, runtime_s=report.runtime_s, at=msg.received
            )

    def _status(self, device: str, msg: Message) -> None:
        result = self.intake.status(device, msg.payload)
        if isinstance(result, Rejected):
            self.rejections.add(msg.topic, result)
            return
        if self.tracker.status(device, result, msg.received):
            level = logging.INFO if result else logging.WARNING
            log.log(level, "bridge %s is %s", device, "online" if result else "offline")

    def _command(self, msg: Message, name: str) -> None:
        result = self.intake.command(
            msg.topic, name, msg.payload, msg.received, msg.wall, retained=msg.retained
        )
        if isinstance(result, Rejected):
            self.rejections.add(msg.topic, result)
            return
        self._apply_command(result)

    def _apply_command(self, fact: CommandFact) -> None:
        detail = f" ({fact.reason})" if fact.reason else ""
        if fact.name == "shutdown_now":
            if self.tracker.remote_shutdown(fact.received, fact.reason):
                log.critical(
                    "authenticated remote shutdown request%s: shutting down in %.0f s "
                    "unless cancelled",
                    detail,
                    self.settings.remote_cancel_window,
                )
        elif self.tracker.remote_cancel():
            log.warning("remote shutdown cancelled by an authenticated command%s", detail)

    # -- decision and actions ---------------------------------------------------------------
    def evaluate(self) -> Decision:
        """Decide on the current view and act on the decision (loop thread only)."""
        now = self.clock.monotonic()
        decision = decide(self.tracker.view(), now, self.settings)
        previous = self.decision
        self.decision = decision
        self._log_transition(previous, decision)
        self._log_notices(decision)
        if decision.phase is Phase.SHUTDOWN:
            if self._latched and self._retry_at is not None and now >= self._retry_at:
                log.warning("trying the shutdown again (the last attempt failed)")
                self._latched = False
            self._shutdown(decision)
        elif decision.phase is Phase.COUNTING and not self._latched:
            self._warn_users(decision)
        elif decision.phase is Phase.IDLE:
            self._warned.clear()
            if self._latched and self._outcome is not None:
                # The action has returned and we are still here (a test command, a dry run,
                # a refused poweroff) and the shutdown is no longer due: watch again, so
                # that the next outage is handled like the first.
                log.warning("the shutdown is no longer due (%s): watching again", decision.reason)
                self._latched = False
                self._outcome = None
                self._retry_at = None
        if self._republish_at is not None and now >= self._republish_at:
            self._republish_at = None
            self._publish_discovery()
            self._last_state = None
        self._publish_state(decision, now)
        return decision

    def _log_transition(self, old: Decision | None, new: Decision) -> None:
        was = old.phase if old else Phase.IDLE
        if new.phase is Phase.COUNTING and was is Phase.IDLE:
            log.warning(
                "countdown started: shutdown in %.0f s (%s)", new.seconds_left or 0, new.reason
            )
        elif new.phase is Phase.IDLE and was is Phase.COUNTING and not self._latched:
            log.warning("countdown cancelled (%s)", new.reason)

    def _log_notices(self, decision: Decision) -> None:
        current = {(n.code, n.device_id): n for n in decision.notices if n.code != "broker_lost"}
        for key, notice in current.items():
            if key not in self._notices:
                log.warning("%s", notice.text)
        for code, device in self._notices - current.keys():
            log.info("resolved: %s%s", code, f" ({device})" if device else "")
        self._notices = set(current)

    def _shutdown(self, decision: Decision) -> None:
        if self._latched:
            return
        self._latched = True
        self._outcome = None
        self._retry_at = None
        self.shutdowns += 1
        if decision.cause is Cause.REMOTE:
            self.tracker.remote_cancel()  # acted on: a request is obeyed once
        reason = decision.reason
        actions = self.actions

        def work() -> None:
            try:
                outcome = actions.shutdown(reason)
            except Exception:  # a broken runner must not kill the loop
                log.exception("the shutdown action raised")
                outcome = ShutdownOutcome(actions.dry_run, (), ())
            self.submit(ActionDone(outcome))

        self._spawn(work)

    def _action_done(self, outcome: ShutdownOutcome) -> None:
        self._outcome = outcome
        self._last_state = None
        if outcome.dry_run:
            return
        if outcome.ok:
            log.warning(
                "the shutdown command has returned with exit 0 (attempt %d); this client "
                "watches again once the shutdown is no longer due",
                self.shutdowns,
            )
            return
        self._retry_at = self.clock.monotonic() + RETRY_AFTER
        results = "; ".join(
            f"{r.invocation}: {r.error or f'exit {r.returncode}'}" for r in outcome.commands
        )
        log.critical(
            "shutdown attempt %d failed (%s); trying again in %.0f s while it is due",
            self.shutdowns,
            results or "no command",
            RETRY_AFTER,
        )

    def _warn_users(self, decision: Decision) -> None:
        left = decision.seconds_left
        if left is None:
            return
        due = {m for m in self.settings.warnings if left <= m + 0.05 and m not in self._warned}
        if not due:
            return
        self._warned |= due
        reason = decision.reason
        actions = self.actions

        def work() -> None:
            try:
                actions.warn_users(left, reason)
            except Exception:  # warnings are best effort
                log.exception("warning users failed")

        self._spawn(work)

    # -- state publishing -----------------------------------------------------------------
    @property
    def phase_name(self) -> str:
        """``idle``, ``counting`` or ``shutting_down`` (the contract's client states)."""
        return client_phase(self._latched, self.decision)

    @property
    def failed(self) -> bool:
        """The shutdown action ran and no command succeeded."""
        return self._latched and self._outcome is not None and not self._outcome.ok

    def armed(self) -> bool:
        view = self.tracker.view()
        return (
            not self.actions.dry_run
            and not self.failed
            and all(b.heard and b.seen_alive for b in view.bridges)
        )

    def state(self, decision: Decision, now: float) -> dict[str, Any]:
        """The ``clients/<id>/state`` payload (without ``v``); see docs/mqtt-contract.md."""
        own = {
            "client": self.client_id,
            "name": self.name,
            "state": self.phase_name,
            "armed": self.armed(),
            "dry_run": self.actions.dry_run,
            "delay_s": self.settings.delay,
            "min_supplies": self.settings.min_supplies,
            "error": "no shutdown command succeeded" if self.failed else None,
            "rejected": self.rejections.total,
            "instance": self.instance,
            "twins": len(self._twins.others),
        }
        return client_state(own, self.tracker.view(), decision, now, self.clock.utcnow())

    def _publish_state(self, decision: Decision, now: float) -> None:
        if self.publisher is None or not self._connected():
            return
        state = self.state(decision, now)
        stable = lasting_part(state)
        periodic = self.phase_name == "counting" and now - self._last_state_at >= STATE_INTERVAL
        if stable == self._last_state and not periodic:
            return
        self._last_state = stable
        self._last_state_at = now
        self.publisher.publish(
            self._topics.state,
            ClientStatePayload.from_dict(state).encode(),
            qos=QOS_CLIENT,
            retain=True,
        )

    def _publish_discovery(self) -> None:
        if self.publisher is None or not self.config.mqtt.discovery.enabled:
            return
        for topic, payload in client_discovery(
            self.config.mqtt.discovery.prefix, self._base, self.client_id, self.name
        ):
            self.publisher.publish(topic, payload, qos=QOS_CLIENT, retain=True)

    # -- loop ------------------------------------------------------------------------------
    def next_wake(self, decision: Decision) -> float:
        now = self.clock.monotonic()
        wake = now + MAX_SLEEP
        if decision.next_check is not None:
            wake = min(wake, decision.next_check)
        if self._republish_at is not None:
            wake = min(wake, self._republish_at)
        if self._retry_at is not None:
            wake = min(wake, self._retry_at)
        if self.phase_name == "counting" and self.publisher is not None and self._connected():
            wake = min(wake, self._last_state_at + STATE_INTERVAL)
        return max(wake, now + 0.01)  # never a busy loop

    def _connected(self) -> bool:
        return self.tracker.view().connected

    def run(self) -> None:
        """Process events until :class:`Stop`; re-decide after each batch and at wake times."""
        while True:
            try:
                decision = self.evaluate()
                timeout = max(0.0, self.next_wake(decision) - self.clock.monotonic())
            except Exception:  # never let a bug end the watch: log, retry shortly
                log.exception("error while deciding; retrying in %g s", LOOP_ERROR_PAUSE_S)
                timeout = LOOP_ERROR_PAUSE_S
            try:
                event = self._queue.get(timeout=timeout)
            except queue.Empty:
                continue
            while True:
                if isinstance(event, Stop):
                    return
                self._safe_handle(event)
                try:
                    event = self._queue.get_nowait()
                except queue.Empty:
                    break

    def _safe_handle(self, event: Event) -> None:
        try:
            self.handle(event)
        except Exception as exc:  # never let one bad event stop the client
            self.rejections.add(
                getattr(event, "topic", type(event).__name__),
                Rejected("internal_error", f"{exc.__class__.__name__}: {exc}"),
            )
            log.exception("error while handling %s", type(event).__name__)
