"""What the bridge says about the mains: retained ``mains`` and ``outage``, outage events.

:class:`MainsReport` runs on the daemon's main loop.  It shows one
:class:`~bridge.mains.store.MainsChange` at a time — at a start, ``unknown`` with a
sequence number of its own until the input has been stable for its confirmation
window (what was stored before the start is history, and nothing said before the start
can pass for newer); then each change the sensor announces.  The retained topics are
*producers* that read the change shown when they are sent, so ``mains`` carries a fresh
``ts``/``elapsed_s`` and its message number ``n`` each time; it is refreshed every
:data:`~bridge.mqtt.contract.MAINS_REFRESH_S`.  The outage events come from the change
itself (:meth:`MainsChange.event_payload`), and are spooled before they are published.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field, replace

from bridge.clock import Clock
from bridge.mains.store import MainsChange, OutageStore
from bridge.model import MainsEvent, MainsState
from bridge.mqtt.contract import (
    BOOT_ID_LENGTH,
    MAINS_REFRESH_S,
    QOS_MAINS,
    QOS_OUTAGE,
    OutagePayload,
)
from bridge.mqtt.publisher import BridgePublisher, mains_payload

log = logging.getLogger(__name__)


@dataclass(eq=False)
class MainsReport:
    """The published side of the mains (a part: :meth:`start` announces ``unknown``)."""

    publisher: BridgePublisher
    store: OutageStore
    device_id: str
    clock: Clock
    key: bytes | None = None
    """The signing key of ``mains`` messages, if any."""
    boot: str = field(default_factory=lambda: secrets.token_hex(BOOT_ID_LENGTH // 2))
    """This run's id in every ``mains`` message (a new one at every start)."""
    _n: int = field(default=0, init=False)
    _shown: MainsChange | None = field(default=None, init=False)
    _next: float = field(default=0.0, init=False)

    def start(self) -> None:
        """Announce ``unknown`` (numbered after everything stored) until the input is confirmed."""
        clock = self.clock
        event = MainsEvent(
            state=MainsState.UNKNOWN,
            began=clock.utcnow(),
            began_monotonic=clock.monotonic(),
            seq=self.store.take_seq(),
            source="start",
        )
        self.show(self.store.opening(event))

    def stop(self) -> None:
        """Nothing to release: the publisher sends what was shown last."""

    def mark(self) -> tuple[str, int]:
        """This run's ``boot`` and the ``seq`` of the state shown now (0 before any)."""
        return self.boot, 0 if self._shown is None else self._shown.event.seq

    def changed(self, change: MainsChange) -> None:
        """A change the sensor announced: spool its outage event, then show it."""
        if change.continued:
            log.warning("mains still off after the start: the outage stored before goes on")
        payload = change.event_payload(self.device_id, self.clock.utcnow())
        if payload is not None:
            template = payload
            self.publisher.add_event(lambda seq: replace(template, seq=seq).encode())
        self.show(change)

    def show(self, change: MainsChange) -> None:
        """Make ``change`` the retained state (and the outage topic, once the state is known)."""
        publisher = self.publisher
        self._shown = change
        if change.event.state is not MainsState.UNKNOWN:
            outage = OutagePayload(self.device_id, change.outage_since, change.event.seq).encode()
            publisher.retain(publisher.topics.outage, lambda: outage, QOS_OUTAGE)
        self._publish()

    def tick(self, now: float) -> float:
        """Refresh ``mains`` when due; return when it is due next."""
        if now >= self._next:
            self._publish()
        return self._next

    def _publish(self) -> None:
        if self._shown is None:
            return
        self._next = self.clock.monotonic() + MAINS_REFRESH_S
        self.publisher.retain(self.publisher.topics.mains, self._produce, QOS_MAINS)

    def _produce(self) -> bytes:
        # Numbered when it is produced (sent), so that n grows in the order of sending.
        change = self._shown
        assert change is not None  # noqa: S101 - retained only once a change is shown
        self._n += 1
        last = change.last_outage
        return mains_payload(
            self.device_id,
            change.event,
            clock=self.clock,
            outage_count=change.outage_count,
            last_outage_s=last.duration_s if last is not None else None,
            boot=self.boot,
            n=self._n,
            key=self.key,
        )
