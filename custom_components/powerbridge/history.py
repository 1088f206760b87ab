"""The outage history of one bridge: a pure state machine, with no Home Assistant in it.

:class:`OutageHistory` is fed the bridge's decoded ``mains`` announcements and spooled
``events`` (:mod:`.protocol`) and the meter's energy counter.  It keeps what the component
stores (:class:`StoredHistory`) and answers which bus events to fire (:class:`Fired`);
:class:`~.runtime.BridgeRuntime` does the Home Assistant side (subscriptions, the store,
the bus, the dispatcher).  "Today" and an instant's local date come from functions given
to it, so the history is tested on any day without Home Assistant (``tests_ha/test_history.py``).

The rules:

* A ``mains`` announcement with a ``seq`` not seen before that changes the state starts
  or ends an outage; the last accepted ``seq`` is stored, so an outage is never counted
  twice, whatever Home Assistant's restarts.  ``unknown`` (a bridge that has just started
  and is confirming its input) starts and ends nothing; an outage that went on across a
  restart of the bridge is announced ``off`` again with the same ``outage_count``, and
  stays one outage.
* Spooled ``events`` complete the history: an outage that ended while the component could
  not hear the bridge is recorded when the bridge replays it (``replayed`` when it is older
  than the newest announcement).  Outages are keyed by the ``seq`` of the announcement that
  ended them, so a record never counts twice; an event may arrive before its announcement.
* The energy used during an outage is the meter counter's increase from its start to its
  end.
* "Outages today" counts outages that started on the local date of today.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from . import protocol
from .const import EVENT_OUTAGE_ENDED, EVENT_OUTAGE_STARTED, HISTORY_SIZE

EVENT_SEQS_KEPT = 200
"""Event ``seq``s remembered against at-least-once duplicates."""


@dataclass(slots=True)
class OutageRecord:
    """One finished outage in the component's history."""

    started: str | None
    """ISO-8601 UTC (``None`` when only the duration is known)."""
    ended: str
    duration_s: float | None
    energy_wh: float | None
    end_seq: int
    """``seq`` of the ``mains`` announcement that ended it (the record's identity)."""
    replayed: bool = False


@dataclass(slots=True)
class StoredHistory:
    """What the component keeps in its store for one bridge."""

    last_seq: int | None = None
    last_on: bool | None = None
    outage_started: str | None = None
    outage_start_seq: int | None = None
    energy_at_start_wh: float | None = None
    outage_count_at_start: int | None = None
    """The bridge's ``outage_count`` when the running outage was announced."""
    energy_total_wh: float = 0.0
    today: str | None = None
    outages_today: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    event_seqs: list[int] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, stored: dict[str, Any] | None) -> StoredHistory:
        """From the store (unknown keys of other versions are left out)."""
        if not stored:
            return cls()
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in stored.items() if k in known})


@dataclass(frozen=True, slots=True)
class Fired:
    """A bus event to fire (the runtime adds the device and bridge ids)."""

    event_type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one message did: ``changed`` (the store must be saved) and the events."""

    changed: bool = False
    fired: tuple[Fired, ...] = ()


class OutageHistory:
    """The outage state machine and statistics of one bridge."""

    def __init__(
        self,
        data: StoredHistory,
        *,
        today: Callable[[], date],
        local_date: Callable[[datetime], date],
    ) -> None:
        self.data = data
        self._today = today
        self._local_date = local_date

    # ------------------------------------------------------------------ views
    def as_dict(self) -> dict[str, Any]:
        return asdict(self.data)

    @property
    def last_on(self) -> bool | None:
        return self.data.last_on

    @property
    def in_outage(self) -> bool:
        return self.data.last_on is False

    @property
    def last_outage(self) -> OutageRecord | None:
        return OutageRecord(**self.data.history[0]) if self.data.history else None

    @property
    def outages_today(self) -> int:
        self.roll_day()
        return self.data.outages_today

    def energy_since_outage_start(self, energy_wh: float | None) -> float | None:
        """The counter's increase since the running (or last tracked) outage began."""
        if energy_wh is None or self.data.energy_at_start_wh is None:
            return None
        return max(0.0, energy_wh - self.data.energy_at_start_wh)

    def outage_energy_wh(self, energy_wh: float | None) -> float | None:
        """Energy used during all outages so far, including the running one (Wh)."""
        if energy_wh is None and self.data.energy_total_wh == 0.0:
            return None
        running = self.energy_since_outage_start(energy_wh) if self.in_outage else None
        return self.data.energy_total_wh + (running or 0.0)

    # ------------------------------------------------------------------ the day
    def roll_day(self) -> bool:
        """Start a new day's count when the date changed; ``True`` if it did."""
        today = self._today().isoformat()
        if self.data.today == today:
            return False
        self.data.today = today
        self.data.outages_today = 0
        return True

    def _count_if_today(self, started: datetime) -> None:
        if self._local_date(started) == self._today():
            self.roll_day()
            self.data.outages_today += 1

    # ------------------------------------------------------------------ inbound
    def mains(self, mains: protocol.Mains, energy_wh: float | None) -> Outcome:
        """A decoded ``mains`` announcement of this bridge."""
        data = self.data
        if mains.seq == data.last_seq:
            return Outcome()  # a refresh of what we know
        data.last_seq = mains.seq
        if mains.on is None:
            # The bridge has just started and is confirming its input: the state before
            # its start is history, and nothing starts or ends on "unknown".
            return Outcome(changed=True)
        previous = data.last_on
        data.last_on = mains.on
        fired: list[Fired] = []
        if not mains.on:
            continued = previous is False and data.outage_count_at_start == mains.outage_count
            if not continued:  # (an outage that went on across a restart of the bridge
                # is announced again with the same outage count: still the same outage)
                fired.append(self._outage_started(mains, energy_wh))
        elif previous is False:
            fired.extend(self._outage_ended_by_mains(mains, energy_wh))
        return Outcome(changed=True, fired=tuple(fired))

    def _outage_started(self, mains: protocol.Mains, energy_wh: float | None) -> Fired:
        data = self.data
        data.outage_started = protocol.isoformat_utc(mains.since)
        data.outage_start_seq = mains.seq
        data.outage_count_at_start = mains.outage_count
        data.energy_at_start_wh = energy_wh
        self._count_if_today(mains.since)
        return Fired(
            EVENT_OUTAGE_STARTED,
            {"started": data.outage_started, "seq": mains.seq, "source": mains.source},
        )

    def _outage_ended_by_mains(self, mains: protocol.Mains, energy_wh: float | None) -> list[Fired]:
        started = self.data.outage_started
        duration = mains.last_outage_s
        if duration is None and started is not None:
            duration = max(0.0, (mains.since - _parse(started)).total_seconds())
        return self._finish(
            OutageRecord(
                started=started,
                ended=protocol.isoformat_utc(mains.since),
                duration_s=duration,
                energy_wh=self.energy_since_outage_start(energy_wh),
                end_seq=mains.seq,
            )
        )

    def event(self, event: protocol.Event, energy_wh: float | None) -> Outcome:
        """A decoded spooled ``event`` of this bridge (at least once: duplicates ignored)."""
        data = self.data
        if event.seq in data.event_seqs:
            return Outcome()
        data.event_seqs = [*data.event_seqs, event.seq][-EVENT_SEQS_KEPT:]
        fired: list[Fired] = []
        if event.type == "outage_ended" and event.ended is not None:
            known = next((h for h in data.history if h["end_seq"] == event.mains_seq), None)
            if known is not None:
                # Same outage as seen live: the event carries the exact times.
                known["started"] = protocol.isoformat_utc(event.started)
                known["ended"] = protocol.isoformat_utc(event.ended)
                if event.duration_s is not None:
                    known["duration_s"] = event.duration_s
            else:
                # Does it end the outage whose start we saw?  The bridge may publish the
                # event before the ``mains`` announcement it refers to.
                tracked = (
                    data.outage_start_seq is not None and data.outage_start_seq < event.mains_seq
                )
                record = OutageRecord(
                    started=protocol.isoformat_utc(event.started),
                    ended=protocol.isoformat_utc(event.ended),
                    duration_s=event.duration_s,
                    energy_wh=self.energy_since_outage_start(energy_wh) if tracked else None,
                    end_seq=event.mains_seq,
                    # Older than the newest announcement we know: the bridge replays it.
                    replayed=data.last_seq is not None and event.mains_seq < data.last_seq,
                )
                if not tracked:
                    self._count_if_today(event.started)  # an outage we never saw start
                fired.extend(self._finish(record))
        return Outcome(changed=True, fired=tuple(fired))

    def _finish(self, record: OutageRecord) -> list[Fired]:
        data = self.data
        if any(h["end_seq"] == record.end_seq for h in data.history):
            return []
        data.history = [asdict(record), *data.history][:HISTORY_SIZE]
        if record.energy_wh is not None:
            data.energy_total_wh += record.energy_wh
        if data.outage_start_seq is not None and data.outage_start_seq < record.end_seq:
            data.outage_started = None
            data.outage_start_seq = None
            data.outage_count_at_start = None
            data.energy_at_start_wh = None
        return [
            Fired(
                EVENT_OUTAGE_ENDED,
                {
                    "started": record.started,
                    "ended": record.ended,
                    "duration_s": record.duration_s,
                    "energy_wh": record.energy_wh,
                    "seq": record.end_seq,
                    "replayed": record.replayed,
                },
            )
        ]

    def energy(self, energy_wh: float) -> bool:
        """A meter reading during an outage whose start had none: the outage's energy
        counts from here.  ``True`` when the store changed."""
        if self.in_outage and self.data.energy_at_start_wh is None:
            self.data.energy_at_start_wh = energy_wh
            return True
        return False

    def add_client(self, client_id: str) -> bool:
        """Remember a shutdown client of this bridge; ``True`` when it is new."""
        if client_id in self.data.clients:
            return False
        self.data.clients = sorted([*self.data.clients, client_id])
        return True


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)
