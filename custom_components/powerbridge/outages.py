"""One bridge's outages in Home Assistant: the history, where it is kept, and the live view.

:class:`BridgeOutages` wraps the pure state machine (:class:`~.history.OutageHistory`)
with what a pure module cannot have: Home Assistant's clock and time zone, a
:class:`~homeassistant.helpers.storage.Store` that keeps the history across restarts
(saved a moment after each change), and the last ``mains`` message with the time it
arrived.  The runtime feeds it the bridge's decoded messages and hands it the function
that fires a bus event (the runtime adds the bridge's identity to the event's data);
subscriptions, clients and timers stay in the runtime.

Where the facts come from (the rules are in history.py):

* ``mains`` (retained, QoS 1, refreshed every 30 s) drives the live view: an outage
  starts or ends when a *new* announcement (a ``seq`` not seen before) changes the state.
  The last accepted ``seq`` is stored, so a restart of Home Assistant never fires an
  outage twice.
* ``events`` (QoS 1, spooled by the bridge, at least once) completes the history: an
  outage that ended while Home Assistant could not hear the bridge is recorded when the
  bridge replays it, and ``powerbridge_outage_ended`` fires with ``replayed: true``.
  Outages are keyed by the ``seq`` of the announcement that ended them, so a record
  never counts twice.
* ``state`` gives the meter's energy counter; the energy used during an outage is the
  counter's increase from the outage's start to its end.

The current outage's age is ``elapsed_s`` of the last ``mains`` message plus the time
since that message arrived on Home Assistant's own clock: the two machines' clocks never
need to agree (the same rule the shutdown clients use).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from . import protocol
from .const import DOMAIN, STORAGE_VERSION
from .history import OutageHistory, OutageRecord, Outcome, StoredHistory

_SAVE_DELAY_S = 2.0

Fire = Callable[[str, dict[str, Any]], None]
"""Fires one public bus event (the runtime adds the bridge's identity to its data)."""


def _store(hass: HomeAssistant, device_id: str) -> Store[dict[str, Any]]:
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.{device_id}")


class BridgeOutages:
    """The outage history of one bridge, stored, with the live view the entities show."""

    def __init__(self, hass: HomeAssistant, device_id: str, fire: Fire) -> None:
        self._store = _store(hass, device_id)
        self._fire = fire
        self.history = OutageHistory(
            StoredHistory(),
            today=lambda: dt_util.now().date(),
            local_date=lambda instant: dt_util.as_local(instant).date(),
        )
        self.mains: protocol.Mains | None = None
        self.mains_received: datetime | None = None
        self.energy_wh: float | None = None

    # ------------------------------------------------------------------ storage
    async def async_load(self) -> list[str]:
        """Load the stored history; the shutdown clients it remembers."""
        self.history.data = StoredHistory.from_dict(await self._store.async_load())
        self.history.roll_day()
        return list(self.history.data.clients)

    async def async_save_now(self) -> None:
        await self._store.async_save(self.as_dict())

    @staticmethod
    async def async_remove(hass: HomeAssistant, device_id: str) -> None:
        """Delete the stored history of a bridge that was removed."""
        await _store(hass, device_id).async_remove()

    def as_dict(self) -> dict[str, Any]:
        return self.history.as_dict()

    def _save(self) -> None:
        self._store.async_delay_save(self.as_dict, _SAVE_DELAY_S)

    # ------------------------------------------------------------------ inbound
    def on_mains(self, mains: protocol.Mains) -> None:
        """A valid ``mains`` announcement of this bridge."""
        self.mains = mains
        self.mains_received = dt_util.utcnow()
        self._apply(self.history.mains(mains, self.energy_wh))

    def on_event(self, event: protocol.Event) -> bool:
        """A valid (possibly replayed) event of this bridge; ``True`` if the history changed."""
        return self._apply(self.history.event(event, self.energy_wh))

    def on_energy(self, energy_wh: float) -> bool:
        """The meter's energy counter; ``True`` when the views changed (during an outage)."""
        self.energy_wh = energy_wh
        if not self.in_outage:
            return False
        if self.history.energy(energy_wh):
            self._save()
        return True

    def add_client(self, client_id: str) -> bool:
        """Remember a shutdown client (stored); ``True`` the first time it is seen."""
        if not self.history.add_client(client_id):
            return False
        self._save()
        return True

    def roll_day(self) -> None:
        """Local midnight: today's count starts again."""
        self.history.roll_day()
        self._save()

    def _apply(self, outcome: Outcome) -> bool:
        """Save and fire what the history decided; ``True`` if anything changed."""
        for fired in outcome.fired:
            self._fire(fired.event_type, fired.data)
        if outcome.changed:
            self._save()
        return outcome.changed

    # ------------------------------------------------------------------ views
    @property
    def mains_on(self) -> bool | None:
        """``None`` while unknown (also while a restarted bridge confirms its input)."""
        if self.mains is not None and self.mains.on is None:
            return None
        return self.history.last_on

    @property
    def in_outage(self) -> bool:
        return self.history.in_outage

    def duration(self, now: datetime | None = None) -> float | None:
        """Seconds the current outage has lasted (``0`` with mains present, ``None`` unknown)."""
        last_on = self.mains_on
        if self.mains is None or self.mains_received is None or last_on is None:
            return None
        if last_on:
            return 0.0
        now = now or dt_util.utcnow()
        return self.mains.elapsed_s + max(0.0, (now - self.mains_received).total_seconds())

    @property
    def last_outage(self) -> OutageRecord | None:
        return self.history.last_outage

    @property
    def today(self) -> int:
        """Outages that started today (local time)."""
        return self.history.outages_today

    def energy_wh_used(self) -> float | None:
        """Energy used during all outages so far, including the running one (Wh)."""
        return self.history.outage_energy_wh(self.energy_wh)
