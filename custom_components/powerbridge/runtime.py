"""One bridge as Home Assistant sees it: subscriptions, clients, events and timers.

:class:`BridgeRuntime` is created per config entry and kept in ``entry.runtime_data``
(``hass.data`` on releases before 2024.4).  It subscribes to the bridge's ``status``,
``mains``, ``events``, ``state`` and ``health`` topics and to every shutdown client's
``state`` and ``status``; it hands the bridge's outage facts to
:class:`~.outages.BridgeOutages` (the history, its storage and the live view; the rules
are in history.py), fires the public bus events and tells the entities to refresh
through the dispatcher.  A live timer refreshes them every few seconds while an outage
or a client's countdown runs.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from homeassistant.components import mqtt
from homeassistant.components.mqtt import ReceiveMessage
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_track_time_change, async_track_time_interval
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
    LIVE_UPDATE_INTERVAL_S,
)
from .devices import async_device_id
from .outages import BridgeOutages

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
M = TypeVar("M", protocol.Mains, protocol.Event)


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
        self.outages = BridgeOutages(hass, self.device_id, self._fire)
        self.online: bool | None = None
        self.last_seen: datetime | None = None
        self.health: dict[str, Any] | None = None
        self.clients: dict[str, ClientInfo] = {}
        self._client_status: dict[str, bool] = {}
        self.invalid: dict[str, int] = {}
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._live_unsub: CALLBACK_TYPE | None = None

    # ------------------------------------------------------------------ lifecycle
    async def async_start(self) -> None:
        """Load the history, then subscribe (retained messages arrive right away)."""
        for client_id in await self.outages.async_load():
            self.clients[client_id] = ClientInfo(client_id)
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
        await BridgeOutages.async_remove(hass, entry.data[CONF_DEVICE_ID])

    async def async_stop(self) -> None:
        """Unsubscribe, stop the live timer and write the history now."""
        while self._unsubscribe:
            self._unsubscribe.pop()()
        self._stop_live()
        await self.outages.async_save_now()

    # ------------------------------------------------------------------ views
    @property
    def ha_device_id(self) -> str | None:
        """The Home Assistant device registry id of the device this bridge's component
        entities belong to (discovery's shared device, or the entry's own: devices.py)."""
        return async_device_id(self.hass, self.entry, self.device_id)

    # ------------------------------------------------------------------ inbound
    @callback
    def _decoded(self, kind: str, msg: ReceiveMessage, decode: Callable[[bytes], T]) -> T | None:
        """``decode`` of the message's payload, or ``None`` (counted and logged) if invalid."""
        try:
            return decode(_raw(msg))
        except protocol.PayloadError as exc:
            count = self.invalid.get(kind, 0) + 1
            self.invalid[kind] = count
            if count == 1 or count % 100 == 0:
                _LOGGER.warning(
                    "Ignored invalid %s payload on %s (%s); %d so far", kind, msg.topic, exc, count
                )
            return None

    def _own(self, payload: M) -> M:
        """``payload``, if it is this bridge's (``PayloadError`` if another bridge's)."""
        protocol.check_device(payload.device, self.device_id)
        return payload

    @callback
    def _seen(self) -> None:
        self.last_seen = dt_util.utcnow()

    @callback
    def _on_status(self, msg: ReceiveMessage) -> None:
        online = self._decoded("status", msg, protocol.decode_status)
        if online is None:
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
        mains = self._decoded(
            "mains", msg, lambda raw: self._own(protocol.Mains.decode(raw, key=self.key))
        )
        if mains is None:
            return
        self._seen()
        self.outages.on_mains(mains)
        self._update_live_timer()
        self._notify()

    @callback
    def _on_event(self, msg: ReceiveMessage) -> None:
        event = self._decoded("events", msg, lambda raw: self._own(protocol.Event.decode(raw)))
        if event is None:
            return
        self._seen()
        if self.outages.on_event(event):
            self._notify()

    @callback
    def _on_state(self, msg: ReceiveMessage) -> None:
        energy = self._decoded("state", msg, protocol.decode_energy_wh)
        if energy is not None and self.outages.on_energy(energy):
            self._notify()

    @callback
    def _on_health(self, msg: ReceiveMessage) -> None:
        health = self._decoded(
            "health",
            msg,
            lambda raw: protocol.loads_object(raw, max_size=protocol.MAX_STATE_PAYLOAD),
        )
        if health is None:
            return
        self.health = health
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
        state = self._decoded("client state", msg, protocol.ClientState.decode)
        if state is None:
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
        online = self._decoded("client status", msg, protocol.decode_status)
        if online is None:
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
        if self.outages.add_client(client_id):
            async_dispatcher_send(self.hass, signal_new_client(self.entry.entry_id), client_id)
        return info

    def _forget_client(self, client_id: str) -> None:
        info = self.clients.get(client_id)
        if info is not None:
            info.state = None
            info.online = False
            self._notify()

    # ------------------------------------------------------------------ outbound
    async def async_command(self, topic: str, args: dict[str, Any], *, require_key: bool) -> None:
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

    @callback
    def _midnight(self, _now: datetime) -> None:
        self.outages.roll_day()
        self._notify()

    def _update_live_timer(self) -> None:
        now = dt_util.utcnow()
        counting = any(
            c.state is not None and c.state.state == "counting" and (c.seconds_left(now) or 0) > 0
            for c in self.clients.values()
        )
        if self.outages.in_outage or counting:
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
        mains = self.outages.mains
        return {
            "device_id": self.device_id,
            "base_topic": self.base,
            "online": self.online,
            "last_seen": _iso(self.last_seen),
            "mains": None
            if mains is None
            else {
                "on": mains.on,
                "since": _iso(mains.since),
                "seq": mains.seq,
                "elapsed_s": mains.elapsed_s,
                "source": mains.source,
                "outage_count": mains.outage_count,
                "last_outage_s": mains.last_outage_s,
                "signed": mains.signed,
            },
            "energy_wh": self.outages.energy_wh,
            "health": self.health,
            "stored": self.outages.as_dict(),
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
