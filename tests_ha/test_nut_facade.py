"""Home Assistant's own ``nut`` integration against powerbridge's NUT server (issue 18).

The server is :class:`bridge.nut.server.NutServer`, the one ``powerbridge nut serve`` runs,
started on Home Assistant's event loop on a loopback port with a bridge in an announced
outage; the integration is configured through its public config flow, exactly as a user
does, and must create its device and sensors from what the server says (``pynut2`` on
Home Assistant 2024.3, ``aionut`` on 2026.2).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from bridge.nut.server import NutServer, ServedUpses, Ups
from bridge.nut.variables import Battery, Identity, Power, UpsState
from freezegun.api import FrozenDateTimeFactory
from homeassistant import config_entries
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import async_fire_time_changed

pytestmark = pytest.mark.realtime  # a real server thread and socket timeouts

USER, PASSWORD = "monuser", "secret"


class Bridge:
    """What the server serves; the test changes it as the MQTT feed would."""

    def __init__(self) -> None:
        self.state = UpsState(
            stale=False,
            power=Power.ON_BATTERY,
            seconds_left=512.0,
            readings={"voltage_v": 0.0, "frequency_hz": 0.0, "power_w": 42.0},
            battery=Battery(charge=81.0, runtime=1500.0),
        )


class ServerThread:
    """The server on an event loop of its own, on a thread: Home Assistant 2024.3's ``nut``
    setup calls the blocking pynut2 client on its event loop, as it may for a server that
    is, in production, another process."""

    def __init__(self, bridge: Bridge) -> None:
        served = ServedUpses(
            [Ups("ups", "powerbridge rack-a", Identity("rack-a", version="test"))],
            lambda _device: bridge.state,
            {USER: PASSWORD},
            version="test",
        )
        self.server = NutServer(served)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nut-server")

    def start(self) -> int:
        self.thread.start()
        started = asyncio.run_coroutine_threadsafe(self.server.start(["127.0.0.1"], 0), self.loop)
        started.result(10)
        return self.server.ports[0]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def nut_server(socket_enabled: None) -> Iterator[tuple[int, Bridge]]:
    """Our server on loopback (``socket_enabled``: Home Assistant's tests block sockets)."""
    del socket_enabled
    bridge = Bridge()
    thread = ServerThread(bridge)
    port = thread.start()
    yield port, bridge
    thread.stop()


async def _configure(hass: HomeAssistant, port: int) -> Any:
    result = await hass.config_entries.flow.async_init(
        "nut", context={"source": config_entries.SOURCE_USER}
    )
    answers = {
        "user": {"host": "127.0.0.1", "port": port, "username": USER, "password": PASSWORD},
        "ups": {"alias": "ups"},
    }
    for _ in range(4):
        if result["type"] != FlowResultType.FORM:
            break
        assert not result.get("errors"), result
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], answers[result["step_id"]]
        )
    assert result["type"] == FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    return result["result"]


def _entities(hass: HomeAssistant, entry_id: str) -> dict[str, str | None]:
    """Every entity of the entry keyed by the NUT variable ending its unique id, with its
    state (``None`` for an entity Home Assistant creates disabled by default)."""
    registry = er.async_get(hass)
    out: dict[str, str | None] = {}
    for entity in er.async_entries_for_config_entry(registry, entry_id):
        state = hass.states.get(entity.entity_id)
        out[entity.unique_id.rsplit("_", 1)[-1]] = None if state is None else state.state
    return out


async def test_nut_integration_creates_its_sensors_from_our_server(
    hass: HomeAssistant, nut_server: tuple[int, Bridge], freezer: FrozenDateTimeFactory
) -> None:
    port, bridge = nut_server
    entry = await _configure(hass, port)
    assert entry.title == f"127.0.0.1:{port}" or "127.0.0.1" in entry.title

    device = next(iter(dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)))
    assert device.manufacturer == "powerbridge"
    assert device.model == "powerbridge mains monitor"

    entities = _entities(hass, entry.entry_id)
    # Enabled by default, with our values:
    assert entities["battery.charge"] == "81"
    assert entities["input.voltage"] == "0.0"
    assert entities["ups.status"] == "OB DISCHRG"
    assert entities["ups.status.display"] is not None
    assert "On Battery" in entities["ups.status.display"]
    # Created from our variables (disabled by default in Home Assistant):
    assert {"battery.runtime", "ups.realpower", "input.frequency"} <= set(entities)

    # The feed changes: the next poll of the integration shows it.
    bridge.state = UpsState(stale=False, power=Power.ONLINE, battery=Battery(charge=99.0))
    for _ in range(50):
        freezer.tick(timedelta(seconds=61))  # past the integration's 60 s poll
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
        if _entities(hass, entry.entry_id)["battery.charge"] == "99":
            break
        # The reply crosses a real socket from the server's thread; the loop's clock is
        # frozen (asyncio.sleep would never end), so wait on a worker thread instead.
        await hass.async_add_executor_job(time.sleep, 0.05)
    assert _entities(hass, entry.entry_id)["battery.charge"] == "99"
    assert _entities(hass, entry.entry_id)["ups.status"] == "OL"
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
