"""One bridge as Home Assistant sees it: subscriptions, outage history, clients, events.

:class:`BridgeRuntime` is created per config entry.  It subscribes to the bridge's
``status``, ``mains``, ``events``, ``state`` and ``health`` topics and to every shutdown
client's ``state`` and ``status``; it keeps the outage history in a
:class:`~homeassistant.helpers.storage.Store`, fires the public bus events and tells
the entities to refresh through the dispatcher.

Where the facts come from:

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

import logging
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from homeassistant.components import mqtt
from homeassistant.components.mqtt import ReceiveMessage
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_track_time_change, async_track_time_interval
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from . import protocol
from .const import (
    ATTR_BRIDGE,
    CONF_BASE_TOPIC,
    CONF_DEVICE_ID,
    CONF_SIGNING_KEY,
    DEFAULT_BASE_TOPIC,
    DOMAIN,
    EVENT_BRIDGE_OFFLINE,
    EVENT_BRIDGE_ONLINE,
    EVENT_COUNTDOWN_STARTED,
    EVENT_OUTAGE_ENDED,
    EVENT_OUTAGE_STARTED,
    HISTORY_SIZE,
    LIVE_UPDATE_INTERVAL_S,
    STORAGE_VERSION,
)
from .devices import async_device_id

_LOGGER = logging.getLogger(__name__)
_EVENT_SEQS_KEPT = 200
_SAVE_DELAY_S = 2.0


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
class ClientInfo:
    """A shutdown client as last heard."""

    client_id: str
    state: protocol.ClientState | None = None
    received: datetime | None = None
    online: bool | None = None

    def seconds_left(self, now: datetime) -> float | None:
        if self.state is None or self.state.seconds_left is None or self.received is None:
            return None
        elapsed = (now - self.received).total_seconds()
        return max(0.0, self.state.seconds_left - max(0.0, elapsed))


@dataclass(slots=True)
class _Stored:
    last_seq: int | None = None
    last_on: bool | None = None
    outage_started: str | None = None
    outage_start_seq: int | None = None
    energy_at_start_wh: float | None = None
    energy_total_wh: float = 0.0
    today: str | None = None
    outages_today: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    event_seqs: list[int] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)


_HAS_RUNTIME_DATA = "runtime_data" in getattr(ConfigEntry, "__annotations__", {})
"""``ConfigEntry.runtime_data`` exists (Home Assistant 2024.4 and later)."""


def remember_runtime(hass: HomeAssistant, entry: ConfigEntry, runtime: BridgeRuntime) -> None:
    """Keep a loaded entry's runtime: ``entry.runtime_data`` where the release has it."""
    if _HAS_RUNTIME_DATA:
        entry.runtime_data = runtime
    else:
        hass.data.setdefault(DOMAIN, {})[entry.entry_id] = runtime


def runtime_of(hass: HomeAssistant, entry: ConfigEntry) -> BridgeRuntime | None:
    """The runtime of a loaded entry (``None`` when it is not loaded)."""
    if _HAS_RUNTIME_DATA:
        runtime = getattr(entry, "runtime_data", None)
        return runtime if isinstance(runtime, BridgeRuntime) else None
    runtime = hass.data.get(DOMAIN, {}).get(entry.entry_id)
    return runtime if isinstance(runtime, BridgeRuntime) else None


def forget_runtime(hass: HomeAssistant, entry: ConfigEntry) -> BridgeRuntime | None:
    """Drop a runtime at unload; the runtime, to be stopped."""
    runtime = runtime_of(hass, entry)
    if not _HAS_RUNTIME_DATA:
        hass.data.get(DOMAIN, {}).pop(entry.entry_id, None)
    return runtime


def loaded_runtimes(hass: HomeAssistant) -> list[BridgeRuntime]:
    """Every loaded bridge's runtime."""
    return [
        runtime
        for entry in hass.config_entries.async_entries(DOMAIN)
        if (runtime := runtime_of(hass, entry)) is not None
    ]


def signal_update(entry_id: str) -> str:
    """Dispatcher signal: the bridge's data changed, entities re-read it."""
    return f"{DOMAIN}_{entry_id}_update"


def signal_new_client(entry_id: str) -> str:
    """Dispatcher signal with a client id: a client appeared, the sensor platform adds it."""
    return f"{DOMAIN}_{entry_id}_new_client"


class BridgeRuntime:
    """Everything the component knows about one bridge (one config entry)."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        self.hass = hass
        self.entry = entry
        self.device_id: str = entry.data[CONF_DEVICE_ID]
        self.base: str = entry.data.get(CONF_BASE_TOPIC, DEFAULT_BASE_TOPIC)
        self.options: dict[str, Any] = dict(entry.options)
        """The options this runtime was made with (a change of them reloads the entry)."""
        key = entry.options.get(CONF_SIGNING_KEY)
        self.key: bytes | None = key.encode() if key else None
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{self.device_id}"
        )
        self._data = _Stored()
        self.online: bool | None = None
        self.last_seen: datetime | None = None
        self.mains: protocol.Mains | None = None
        self.mains_received: datetime | None = None
        self.energy_wh: float | None = None
        self.health: dict[str, Any] | None = None
        self.clients: dict[str, ClientInfo] = {}
        self._client_status: dict[str, bool] = {}
        self.invalid: dict[str, int] = {}
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._live_unsub: CALLBACK_TYPE | None = None

    # ------------------------------------------------------------------ lifecycle
    async def async_start(self) -> None:
        """Load the history, then subscribe (retained messages arrive right away)."""
        stored = await self._store.async_load()
        if stored:
            known = set(_Stored.__dataclass_fields__)
            self._data = _Stored(**{k: v for k, v in stored.items() if k in known})
        for client_id in self._data.clients:
            self.clients[client_id] = ClientInfo(client_id)
        self._roll_day()
        subscriptions: list[tuple[str, Callable[[ReceiveMessage], None], int]] = [
            (protocol.bridge_topic(self.base, self.device_id, "status"), self._on_status, 1),
            (protocol.bridge_topic(self.base, self.device_id, "mains"), self._on_mains, 1),
            (protocol.bridge_topic(self.base, self.device_id, "events"), self._on_event, 1),
            (protocol.bridge_topic(self.base, self.device_id, "state"), self._on_state, 0),
            (protocol.bridge_topic(self.base, self.device_id, "health"), self._on_health, 0),
            (protocol.clients_filter(self.base, "state"), self._on_client_state, 1),
            (protocol.clients_filter(self.base, "status"), self._on_client_status, 1),
        ]
        for topic, handler, qos in subscriptions:
            self._unsubscribe.append(
                await mqtt.async_subscribe(self.hass, topic, handler, qos, encoding=None)
            )
        self._unsubscribe.append(
            async_track_time_change(self.hass, self._midnight, hour=0, minute=0, second=0)
        )

    @staticmethod
    async def async_remove_store(hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Delete the stored history of a bridge whose entry was removed."""
        await Store[dict[str, Any]](
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.data[CONF_DEVICE_ID]}"
        ).async_remove()

    async def async_stop(self) -> None:
        """Unsubscribe, stop the live timer and write the history now."""
        while self._unsubscribe:
            self._unsubscribe.pop()()
        self._stop_live()
        await self._store.async_save(self._as_dict())

    # ------------------------------------------------------------------ views
    @property
    def ha_device_id(self) -> str | None:
        """The Home Assistant device registry id of the device this bridge's component
        entities belong to (discovery's shared device, or the entry's own: devices.py)."""
        return async_device_id(self.hass, self.entry, self.device_id)

    @property
    def mains_on(self) -> bool | None:
        return self._data.last_on

    @property
    def in_outage(self) -> bool:
        return self._data.last_on is False

    def outage_duration(self, now: datetime | None = None) -> float | None:
        """Seconds the current outage has lasted (``0`` with mains present, ``None`` unknown)."""
        if self.mains is None or self.mains_received is None or self._data.last_on is None:
            return None
        if self._data.last_on:
            return 0.0
        now = now or dt_util.utcnow()
        return self.mains.elapsed_s + max(0.0, (now - self.mains_received).total_seconds())

    @property
    def last_outage(self) -> OutageRecord | None:
        return OutageRecord(**self._data.history[0]) if self._data.history else None

    @property
    def outages_today(self) -> int:
        self._roll_day()
        return self._data.outages_today

    def outage_energy_wh(self) -> float | None:
        """Energy used during all outages so far, including the running one (Wh)."""
        if self.energy_wh is None and self._data.energy_total_wh == 0.0:
            return None
        return self._data.energy_total_wh + (self._current_outage_energy() or 0.0)

    def _current_outage_energy(self) -> float | None:
        return self._energy_since_outage_start() if self.in_outage else None

    def _energy_since_outage_start(self) -> float | None:
        if self.energy_wh is None or self._data.energy_at_start_wh is None:
            return None
        return max(0.0, self.energy_wh - self._data.energy_at_start_wh)

    # ------------------------------------------------------------------ inbound
    @callback
    def _invalid(self, kind: str, topic: str, exc: Exception) -> None:
        count = self.invalid.get(kind, 0) + 1
        self.invalid[kind] = count
        if count == 1 or count % 100 == 0:
            _LOGGER.warning(
                "Ignored invalid %s payload on %s (%s); %d so far", kind, topic, exc, count
            )

    @callback
    def _seen(self) -> None:
        self.last_seen = dt_util.utcnow()

    @callback
    def _on_status(self, msg: ReceiveMessage) -> None:
        try:
            online = protocol.decode_status(_raw(msg))
        except protocol.PayloadError as exc:
            self._invalid("status", msg.topic, exc)
            return
        was_online = self.online
        self.online = online
        if online:
            self._seen()
            if was_online is False:
                self._fire(EVENT_BRIDGE_ONLINE, {})
        elif was_online:
            self._fire(EVENT_BRIDGE_OFFLINE, {"last_seen": _iso(self.last_seen)})
        self._notify()

    @callback
    def _on_mains(self, msg: ReceiveMessage) -> None:
        try:
            mains = protocol.Mains.decode(_raw(msg), key=self.key)
            protocol.check_device(mains.device, self.device_id)
        except protocol.PayloadError as exc:
            self._invalid("mains", msg.topic, exc)
            return
        self._seen()
        self.mains = mains
        self.mains_received = dt_util.utcnow()
        data = self._data
        if mains.seq != data.last_seq:
            previous = data.last_on
            data.last_seq = mains.seq
            data.last_on = mains.on
            if not mains.on:
                self._outage_started(mains)
            elif previous is False:
                self._outage_ended_by_mains(mains)
            self._save()
        self._update_live_timer()
        self._notify()

    def _outage_started(self, mains: protocol.Mains) -> None:
        data = self._data
        data.outage_started = protocol.isoformat_utc(mains.since)
        data.outage_start_seq = mains.seq
        data.energy_at_start_wh = self.energy_wh
        if dt_util.as_local(mains.since).date() == dt_util.now().date():
            self._roll_day()
            data.outages_today += 1
        self._fire(
            EVENT_OUTAGE_STARTED,
            {"started": data.outage_started, "seq": mains.seq, "source": mains.source},
        )

    def _outage_ended_by_mains(self, mains: protocol.Mains) -> None:
        data = self._data
        started = data.outage_started
        duration = mains.last_outage_s
        if duration is None and started is not None:
            duration = max(0.0, (mains.since - _parse(started)).total_seconds())
        energy = self._energy_since_outage_start()
        self._finish_outage(
            OutageRecord(
                started=started,
                ended=protocol.isoformat_utc(mains.since),
                duration_s=duration,
                energy_wh=energy,
                end_seq=mains.seq,
            )
        )

    @callback
    def _on_event(self, msg: ReceiveMessage) -> None:
        try:
            event = protocol.Event.decode(_raw(msg))
            protocol.check_device(event.device, self.device_id)
        except protocol.PayloadError as exc:
            self._invalid("events", msg.topic, exc)
            return
        self._seen()
        data = self._data
        if event.seq in data.event_seqs:
            return  # at-least-once delivery: a duplicate
        data.event_seqs = [*data.event_seqs, event.seq][-_EVENT_SEQS_KEPT:]
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
                    energy_wh=self._energy_since_outage_start() if tracked else None,
                    end_seq=event.mains_seq,
                    # Older than the newest announcement we know: the bridge replays it.
                    replayed=data.last_seq is not None and event.mains_seq < data.last_seq,
                )
                if not tracked and dt_util.as_local(event.started).date() == dt_util.now().date():
                    self._roll_day()
                    data.outages_today += 1  # an outage we never saw start
                self._finish_outage(record)
        self._save()
        self._notify()

    def _finish_outage(self, record: OutageRecord) -> None:
        data = self._data
        if any(h["end_seq"] == record.end_seq for h in data.history):
            return
        data.history = [asdict(record), *data.history][:HISTORY_SIZE]
        if record.energy_wh is not None:
            data.energy_total_wh += record.energy_wh
        if data.outage_start_seq is not None and data.outage_start_seq < record.end_seq:
            data.outage_started = None
            data.outage_start_seq = None
            data.energy_at_start_wh = None
        self._fire(
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

    @callback
    def _on_state(self, msg: ReceiveMessage) -> None:
        try:
            energy = protocol.decode_energy_wh(_raw(msg))
        except protocol.PayloadError as exc:
            self._invalid("state", msg.topic, exc)
            return
        if energy is None:
            return
        self.energy_wh = energy
        if self.in_outage:
            if self._data.energy_at_start_wh is None:
                self._data.energy_at_start_wh = energy
                self._save()
            self._notify()

    @callback
    def _on_health(self, msg: ReceiveMessage) -> None:
        try:
            self.health = protocol.loads_object(_raw(msg), max_size=protocol.MAX_STATE_PAYLOAD)
        except protocol.PayloadError as exc:
            self._invalid("health", msg.topic, exc)
            return
        self._seen()
        self._notify()

    @callback
    def _on_client_state(self, msg: ReceiveMessage) -> None:
        client_id = protocol.client_id_from_topic(self.base, msg.topic)
        if client_id is None or client_id == protocol.ALL_CLIENTS:
            return
        raw = _raw(msg)
        if not raw:
            self._forget_client(client_id)  # cleared retained state: the client is gone
            return
        try:
            state = protocol.ClientState.decode(raw)
        except protocol.PayloadError as exc:
            self._invalid("client state", msg.topic, exc)
            return
        if state.bridges and self.device_id not in state.bridges:
            return  # this client watches other bridges
        info = self._client(client_id)
        previous = info.state.state if info.state else None
        info.state = state
        info.received = dt_util.utcnow()
        # A retained "counting" seen at start-up may be stale: only a change we
        # witnessed (or a live message) starts a countdown.
        if (
            state.state == "counting"
            and previous != "counting"
            and (previous is not None or not msg.retain)
        ):
            self._fire(
                EVENT_COUNTDOWN_STARTED,
                {
                    "client_id": client_id,
                    "seconds_left": state.seconds_left,
                    "deadline": _iso(state.deadline),
                },
            )
        self._update_live_timer()
        self._notify()

    @callback
    def _on_client_status(self, msg: ReceiveMessage) -> None:
        client_id = protocol.client_id_from_topic(self.base, msg.topic)
        if client_id is None:
            return
        try:
            online = protocol.decode_status(_raw(msg))
        except protocol.PayloadError as exc:
            self._invalid("client status", msg.topic, exc)
            return
        if client_id not in self.clients:
            # A client appears through its state (which names its bridges); keep
            # its status until then.
            self._client_status[client_id] = online
            return
        self.clients[client_id].online = online
        self._notify()

    def _client(self, client_id: str) -> ClientInfo:
        info = self.clients.get(client_id)
        if info is None:
            info = self.clients[client_id] = ClientInfo(client_id)
            info.online = self._client_status.pop(client_id, None)
        if client_id not in self._data.clients:
            self._data.clients = sorted([*self._data.clients, client_id])
            self._save()
            async_dispatcher_send(self.hass, signal_new_client(self.entry.entry_id), client_id)
        return info

    def _forget_client(self, client_id: str) -> None:
        info = self.clients.get(client_id)
        if info is not None:
            info.state = None
            info.online = False
            self._notify()

    # ------------------------------------------------------------------ outbound
    async def async_command(
        self, topic: str, args: dict[str, Any], *, require_key: bool, bind_topic: bool
    ) -> None:
        """Publish a command (``CommandPayload``), signed with the entry's key when it has one.

        ``require_key``: refuse to send it unsigned (shutdown clients ignore unsigned
        commands, so sending one would only look like it worked).
        """
        if require_key and self.key is None:
            raise HomeAssistantError(
                "This command must be signed: set the signing key in the powerbridge "
                "integration's options (the same key as the clients' signing.key_file)"
            )
        payload = protocol.encode_command(
            topic,
            args,
            ts=dt_util.utcnow(),
            nonce=secrets.token_hex(8),
            key=self.key,
            bind_topic=bind_topic,
        )
        await mqtt.async_publish(
            self.hass, topic, payload.decode(), qos=protocol.QOS_CMD, retain=False
        )

    # ------------------------------------------------------------------ helpers
    def _fire(self, event_type: str, data: dict[str, Any]) -> None:
        self.hass.bus.async_fire(
            event_type, {"device_id": self.ha_device_id, ATTR_BRIDGE: self.device_id, **data}
        )

    @callback
    def _notify(self) -> None:
        async_dispatcher_send(self.hass, signal_update(self.entry.entry_id))

    def _save(self) -> None:
        self._store.async_delay_save(self._as_dict, _SAVE_DELAY_S)

    def _as_dict(self) -> dict[str, Any]:
        return asdict(self._data)

    def _roll_day(self) -> None:
        today = dt_util.now().date().isoformat()
        if self._data.today != today:
            self._data.today = today
            self._data.outages_today = 0

    @callback
    def _midnight(self, _now: datetime) -> None:
        self._roll_day()
        self._save()
        self._notify()

    def _update_live_timer(self) -> None:
        now = dt_util.utcnow()
        counting = any(
            c.state is not None and c.state.state == "counting" and (c.seconds_left(now) or 0) > 0
            for c in self.clients.values()
        )
        if self.in_outage or counting:
            if self._live_unsub is None:
                self._live_unsub = async_track_time_interval(
                    self.hass, self._tick, timedelta(seconds=LIVE_UPDATE_INTERVAL_S)
                )
        else:
            self._stop_live()

    def _stop_live(self) -> None:
        if self._live_unsub is not None:
            self._live_unsub()
            self._live_unsub = None

    @callback
    def _tick(self, _now: datetime) -> None:
        self._update_live_timer()
        self._notify()

    def diagnostics(self) -> dict[str, Any]:
        """Everything known, for the diagnostics download (no secrets in here)."""
        return {
            "device_id": self.device_id,
            "base_topic": self.base,
            "online": self.online,
            "last_seen": _iso(self.last_seen),
            "mains": None
            if self.mains is None
            else {
                "on": self.mains.on,
                "since": _iso(self.mains.since),
                "seq": self.mains.seq,
                "elapsed_s": self.mains.elapsed_s,
                "source": self.mains.source,
                "outage_count": self.mains.outage_count,
                "last_outage_s": self.mains.last_outage_s,
                "signed": self.mains.signed,
            },
            "energy_wh": self.energy_wh,
            "health": self.health,
            "stored": self._as_dict(),
            "clients": {
                cid: {
                    "state": None if c.state is None else c.state.state,
                    "seconds_left": c.seconds_left(dt_util.utcnow()),
                    "online": c.online,
                    "bridges": None if c.state is None else list(c.state.bridges),
                }
                for cid, c in self.clients.items()
            },
            "invalid_payloads": dict(self.invalid),
            "signing_key_configured": self.key is not None,
        }


def _raw(msg: ReceiveMessage) -> bytes:
    payload = msg.payload
    return payload if isinstance(payload, bytes) else str(payload).encode()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else protocol.isoformat_utc(value)


def _parse(value: str) -> datetime:
    parsed = dt_util.parse_datetime(value)
    if parsed is None:  # pragma: no cover - only ever parses what isoformat_utc wrote
        raise ValueError(value)
    return parsed
