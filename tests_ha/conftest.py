"""Fixtures: real Home Assistant (pytest-homeassistant-custom-component), MQTT mocked at
the paho client, payloads built with the bridge's own encoders (``bridge.mqtt.contract``).

The device ids are those of a small installation: a bridge ``rack-a`` in the server
rack, shutdown clients ``office-pc`` and ``nas``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bridge.model import MainsState
from bridge.mqtt.contract import EventPayload, MainsPayload, encode_client_state, encode_state
from custom_components.powerbridge import devices
from custom_components.powerbridge.const import (
    CONF_BASE_TOPIC,
    CONF_DEVICE_ID,
    DOMAIN,
)
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_mqtt_message,
)
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

DEVICE_ID = "rack-a"
BASE = "powerbridge"
KEY = "0123456789abcdef0123456789abcdef"
T0 = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
"""The instant every test starts at.  Fixed, so that no test depends on the day it runs:
outages are dated relative to it and "today" is T0's day (``frozen_at_t0``)."""


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(request: pytest.FixtureRequest) -> None:
    """Let Home Assistant load custom_components/powerbridge (not for ``without_hass``
    tests, which test the component's pure modules with no Home Assistant instance)."""
    if request.node.get_closest_marker("without_hass") is None:
        request.getfixturevalue("enable_custom_integrations")


@pytest.fixture(autouse=True)
def frozen_at_t0(request: pytest.FixtureRequest) -> FrozenDateTimeFactory | None:
    """Every test runs with Home Assistant's clock at T0 (moved on only by the test).

    The component counts "outages today" and outage durations on Home Assistant's clock;
    a test that dated outages at T0 but let the clock run would pass on T0's day only.
    ``without_hass`` tests inject their days instead.
    """
    if request.node.get_closest_marker("without_hass") is not None:
        return None
    freezer: FrozenDateTimeFactory = request.getfixturevalue("freezer")
    freezer.move_to(T0)
    return freezer


@pytest.fixture(params=["shared", "per_entry"])
def device_model(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both device models of Home Assistant, on any release under test.

    ``shared``: before 2026.8, the component joins the device of the bridge's MQTT
    discovery.  ``per_entry``: from 2026.8, a device belongs to one config entry and the
    component owns its own; on a release that predates it, the new behaviour is
    emulated by answering the component's feature detection with "yes"."""
    if request.param == "shared" and devices.per_entry_devices():
        pytest.skip("this Home Assistant release has per-entry devices only")
    monkeypatch.setattr(devices, "per_entry_devices", lambda: request.param == "per_entry")
    return str(request.param)


def component_device_id(hass: HomeAssistant, device_id: str = DEVICE_ID) -> str:
    """The Home Assistant id of the device the component's entities of a bridge join."""
    [entry] = [e for e in hass.config_entries.async_entries(DOMAIN) if e.unique_id == device_id]
    found = devices.async_device_id(hass, entry, device_id)
    assert found is not None
    return found


@pytest.fixture
def entry_options() -> dict[str, Any]:
    return {}


@pytest.fixture
def bridge_entry(hass: HomeAssistant, entry_options: dict[str, Any]) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"powerbridge {DEVICE_ID}",
        unique_id=DEVICE_ID,
        data={CONF_DEVICE_ID: DEVICE_ID, CONF_BASE_TOPIC: BASE},
        options=entry_options,
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
async def mqtt_mock(
    mock_hass_config: None,
    mqtt_mock_entry: Callable[[], Awaitable[MqttMockHAClient]],
) -> MqttMockHAClient:
    """Home Assistant's MQTT integration with the paho client mocked (published messages
    are recorded, not sent), set up through pytest-homeassistant-custom-component's public
    ``mqtt_mock_entry`` fixture, as on every supported release."""
    return await mqtt_mock_entry()


@pytest.fixture
async def setup_bridge(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, bridge_entry: MockConfigEntry
) -> MockConfigEntry:
    """MQTT and the component set up for ``rack-a``."""
    assert await hass.config_entries.async_setup(bridge_entry.entry_id)
    await hass.async_block_till_done()
    return bridge_entry


class Bridge:
    """Publishes what a bridge publishes, encoded by the bridge's own contract module."""

    def __init__(self, hass: HomeAssistant, device_id: str = DEVICE_ID) -> None:
        self.hass = hass
        self.device_id = device_id
        self.seq = 0
        self.outage_count = 0
        self.event_seq = 100
        self.boot = "0123456789abcdef"
        """The run id of the bridge (a restart of the bridge gives it another)."""
        self.n = 0
        """Mains messages of this run."""

    def topic(self, leaf: str) -> str:
        return f"{BASE}/{self.device_id}/{leaf}"

    def status(self, text: str, *, retain: bool = False) -> None:
        async_fire_mqtt_message(self.hass, self.topic("status"), text, qos=1, retain=retain)

    def mains_payload(
        self,
        state: str,
        *,
        since: datetime,
        ts: datetime | None = None,
        elapsed_s: float = 0.5,
        last_outage_s: float | None = None,
        new: bool = True,
        continued: bool = False,
        sign_with: bytes | None = None,
    ) -> bytes:
        if new:
            self.seq += 1
            if state == "off" and not continued:
                self.outage_count += 1
        self.n += 1
        payload = MainsPayload(
            device=self.device_id,
            state=MainsState(state),
            boot=self.boot,
            n=self.n,
            since=since,
            seq=self.seq,
            ts=ts or since + timedelta(seconds=elapsed_s),
            elapsed_s=elapsed_s,
            outage_count=self.outage_count,
            last_outage_s=last_outage_s,
        )
        if sign_with is None:
            return payload.encode()
        from bridge.mqtt.contract import dumps
        from bridge.mqtt.signing import sign

        return dumps(sign(sign_with, payload.to_dict()))

    def mains(self, state: str, *, retain: bool = False, **kwargs: Any) -> None:
        raw = self.mains_payload(state, **kwargs)
        async_fire_mqtt_message(self.hass, self.topic("mains"), raw, qos=1, retain=retain)

    def energy(self, energy_wh: float, *, ts: datetime = T0, power_w: float = 118.4) -> None:
        self.event_seq += 1
        raw = encode_state(
            self.device_id,
            ts,
            self.event_seq,
            "pzem004t",
            {"voltage_v": 229.8, "power_w": power_w, "energy_wh": energy_wh},
        )
        # Live messages reach an existing subscriber with the retain flag clear.
        async_fire_mqtt_message(self.hass, self.topic("state"), raw, qos=0)

    def event(
        self,
        kind: str,
        *,
        mains_seq: int,
        started: datetime,
        ended: datetime | None = None,
        duration_s: float | None = None,
        seq: int | None = None,
    ) -> int:
        if seq is None:
            self.event_seq += 1
            seq = self.event_seq
        raw = EventPayload(
            device=self.device_id,
            type=kind,
            seq=seq,
            mains_seq=mains_seq,
            ts=ended or started,
            started=started,
            ended=ended,
            duration_s=duration_s,
        ).encode()
        async_fire_mqtt_message(self.hass, self.topic("events"), raw, qos=1)
        return seq

    def health(self, values: dict[str, Any]) -> None:
        from bridge.mqtt.contract import encode_health

        raw = encode_health(self.device_id, values)
        async_fire_mqtt_message(self.hass, self.topic("health"), raw)


class Client:
    """Publishes what a shutdown client publishes."""

    def __init__(self, hass: HomeAssistant, client_id: str) -> None:
        self.hass = hass
        self.client_id = client_id

    def topic(self, leaf: str) -> str:
        return f"{BASE}/clients/{self.client_id}/{leaf}"

    def state(self, state: str, *, retain: bool = False, **values: Any) -> None:
        payload = {"state": state, "bridges": [DEVICE_ID], **values}
        async_fire_mqtt_message(
            self.hass, self.topic("state"), encode_client_state(payload), qos=1, retain=retain
        )

    def status(self, text: str) -> None:
        async_fire_mqtt_message(self.hass, self.topic("status"), text, qos=1)


@pytest.fixture
def bridge(hass: HomeAssistant) -> Bridge:
    return Bridge(hass)


@pytest.fixture
def client_factory(hass: HomeAssistant) -> Callable[[str], Client]:
    return lambda client_id: Client(hass, client_id)
