"""The component's copy of the MQTT contract agrees with the bridge's own modules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from bridge.errors import PayloadError as BridgePayloadError
from bridge.model import MainsState
from bridge.mqtt import contract, signing
from bridge.mqtt.signing import sign_command
from custom_components.powerbridge import protocol

T = datetime(2026, 11, 20, 12, 0, 0, 123000, tzinfo=UTC)
KEY = b"0123456789abcdef0123456789abcdef"


def test_constants_and_topics_agree() -> None:
    assert protocol.PAYLOAD_VERSION == contract.PAYLOAD_VERSION
    assert protocol.MAX_CONTROL_PAYLOAD == contract.MAX_CONTROL_PAYLOAD
    assert protocol.QOS_CMD == contract.QOS_CMD
    assert (protocol.ONLINE, protocol.OFFLINE) == (contract.ONLINE, contract.OFFLINE)
    assert protocol.ALL_CLIENTS == contract.ALL_CLIENTS
    bridge = contract.BridgeTopics("powerbridge", "rack-a")
    for leaf in ("status", "mains", "state", "health", "events", "ups"):
        assert protocol.bridge_topic("powerbridge", "rack-a", leaf) == getattr(bridge, leaf)
    assert protocol.bridge_cmd_topic("powerbridge", "rack-a", "simulate") == bridge.cmd("simulate")
    client = contract.ClientTopics("powerbridge", "nas")
    assert protocol.client_topic("powerbridge", "nas", "state") == client.state
    assert protocol.client_cmd_topic("powerbridge", "nas", "cancel") == client.cmd("cancel")
    assert protocol.clients_filter("powerbridge", "state") == "powerbridge/clients/+/state"
    assert protocol.client_id_from_topic("powerbridge", client.state) == "nas"
    assert protocol.client_id_from_topic("other", client.state) is None
    assert protocol.device_id_from_status_topic(bridge.status) == ("powerbridge", "rack-a")
    assert protocol.isoformat_utc(T) == "2026-11-20T12:00:00.123Z"


def test_mains_decodes_what_the_bridge_encodes() -> None:
    payload = contract.MainsPayload(
        device="rack-a",
        state=MainsState.OFF,
        since=T,
        seq=17,
        ts=T + timedelta(seconds=0.5),
        elapsed_s=0.52,
        boot="00c0ffee00c0ffee",
        n=3,
        source="meter",
        outage_count=4,
        last_outage_s=95.2,
    )
    assert contract.MainsPayload.decode(payload.encode()) == payload
    mains = protocol.Mains.decode(payload.encode())
    assert (mains.device, mains.on, mains.since, mains.seq) == ("rack-a", False, T, 17)
    assert (mains.boot, mains.n) == ("00c0ffee00c0ffee", 3)
    assert (mains.elapsed_s, mains.source, mains.outage_count) == (0.52, "meter", 4)
    assert mains.last_outage_s == 95.2
    assert mains.signed is False
    signed = contract.dumps(signing.sign(KEY, payload.to_dict()))
    assert protocol.Mains.decode(signed, key=KEY).signed is True
    with pytest.raises(protocol.PayloadError):
        protocol.Mains.decode(payload.encode(), key=KEY)


def test_unknown_after_a_bridge_start_decodes_as_neither_on_nor_off() -> None:
    payload = contract.MainsPayload(
        device="rack-a",
        state=MainsState.UNKNOWN,
        since=T,
        seq=18,
        ts=T,
        elapsed_s=0.0,
        boot="00c0ffee00c0ffee",
        n=1,
        source="start",
    )
    assert contract.MainsPayload.decode(payload.encode()).state is MainsState.UNKNOWN
    assert MainsState.UNKNOWN.value == protocol.MAINS_UNKNOWN
    assert protocol.Mains.decode(payload.encode()).on is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[1]",
        b'{"v": 1, "device": "a", "state": "off", "since": "2026-11-20T12:00:00Z", "seq": 1,'
        b' "ts": "2026-11-20T12:00:00Z", "elapsed_s": NaN}',
        b'{"v": 1, "device": "a", "state": "off", "since": "2026-11-20T12:00:00", "seq": 1,'
        b' "ts": "2026-11-20T12:00:00Z", "elapsed_s": 1}',
        b'{"v": 1, "device": "a", "state": "dim", "since": "2026-11-20T12:00:00Z", "seq": 1,'
        b' "ts": "2026-11-20T12:00:00Z", "elapsed_s": 1}',
        b'{"v": 1, "device": "a", "state": "on", "since": "2026-11-20T12:00:00Z", "seq": true,'
        b' "ts": "2026-11-20T12:00:00Z", "elapsed_s": 1}',
        b'{"v": 1, "device": "a", "state": "on", "since": "2026-11-20T12:00:00Z", "seq": -1,'
        b' "ts": "2026-11-20T12:00:00Z", "elapsed_s": 1}',
        b'{"v": 1, "device": "a", "state": "on", "since": "not a time", "seq": 1,'
        b' "ts": "2026-11-20T12:00:00Z", "elapsed_s": 1}',
        b'{"v": 1, "device": "a", "state": "on", "since": "2026-11-20T12:00:00Z", "seq": 1,'
        b' "ts": "2026-11-20T12:00:00Z", "elapsed_s": 1, "source": 3}',
        b'{"v": true, "device": "a"}',
        b"\xff",
        b"{" * 5000,
    ],
)
def test_mains_rejects_what_the_bridge_rejects(raw: bytes) -> None:
    with pytest.raises(BridgePayloadError):
        contract.MainsPayload.decode(raw)
    with pytest.raises(protocol.PayloadError):
        protocol.Mains.decode(raw)


def test_events_decode_what_the_bridge_encodes() -> None:
    raw = contract.EventPayload(
        device="rack-a",
        type="outage_ended",
        seq=90212,
        mains_seq=18,
        ts=T,
        started=T - timedelta(seconds=95.2),
        ended=T,
        duration_s=95.2,
    ).encode()
    event = protocol.Event.decode(raw)
    assert (event.type, event.seq, event.mains_seq, event.duration_s) == (
        "outage_ended",
        90212,
        18,
        95.2,
    )
    assert event.ended == T
    with pytest.raises(protocol.PayloadError):
        protocol.Event.decode(raw.replace(b"outage_ended", b"outage_paused"))


def test_energy_is_summed_over_channels() -> None:
    raw = contract.encode_state(
        "rack-a", T, 1, "mcp39f511n", {"energy_wh": 100.0, "energy_wh_ch2": 50.5, "power_w": 3.0}
    )
    assert protocol.decode_energy_wh(raw) == 150.5
    assert protocol.decode_energy_wh(contract.encode_state("rack-a", T, 1, "none", {})) is None


def test_client_commands_are_signed_like_the_client_verifies() -> None:
    topic = contract.ClientTopics("powerbridge", "nas").cmd("shutdown_now")
    raw = protocol.encode_command(topic, {"reason": "test"}, ts=T, nonce="abc", key=KEY)
    payload = json.loads(raw)
    unsigned = {k: v for k, v in payload.items() if k != "sig"}
    assert payload == sign_command(KEY, topic, unsigned)
    command = contract.CommandPayload.decode("shutdown_now", raw)
    assert (command.args, command.ts, command.nonce) == ({"reason": "test"}, T, "abc")
    assert raw == contract.dumps(payload)  # canonical JSON, byte for byte


def test_bridge_commands_are_signed_like_the_bridge_verifies() -> None:
    topic = contract.BridgeTopics("powerbridge", "rack-a").cmd("simulate")
    raw = protocol.encode_command(topic, {"mains": "off"}, ts=T, nonce="n1", key=KEY)
    assert signing.verify(KEY, json.loads(raw), topic=topic)
    assert not signing.verify(KEY, json.loads(raw))  # the topic is part of what is signed
    assert (
        raw
        == contract.CommandPayload(
            name="simulate",
            args={"mains": "off"},
            ts=T,
            nonce="n1",
            sig=signing.signature(KEY, json.loads(raw), topic=topic),
        ).encode()
    )


def test_status() -> None:
    assert protocol.decode_status(b"online") is True
    assert protocol.decode_status("offline") is False
    with pytest.raises(protocol.PayloadError):
        protocol.decode_status(b"Online")


def _client_state_as_published() -> bytes:
    """A shutdown client's ``state`` exactly as ``ClientRuntime`` publishes it (mid-countdown)."""
    from tests.shutdown.sim import Sim

    sim = Sim("delay: 600", bridges=("rack-a", "rack-b"))
    sim.connect()
    for device in ("rack-a", "rack-b"):
        sim.status(True, device=device, retained=True)
        sim.mains("on", 1, elapsed=3600, device=device, retained=True)
    sim.advance(10)
    for device in ("rack-a", "rack-b"):
        sim.mains("off", 2, elapsed=0.5, device=device)
    sim.advance(5)
    published = sim.publisher.on(contract.ClientTopics(sim.base, "pc1").state)[-1].payload
    assert json.loads(published)["state"] == "counting"
    return published


def _every_topic() -> dict[str, bytes]:
    """One real payload of every JSON topic, as the bridge's producers encode it."""
    from bridge.health import health_values
    from bridge.model import HealthSnapshot

    snapshot = HealthSnapshot(
        time=T,
        software_version="1.2.3",
        extra={},
        cpu_temperature_c=48.5,
        boot_time=T - timedelta(hours=4),
        under_voltage=False,
        meter_link=True,
        spool_depth=0,
    )
    return {
        "mains": contract.MainsPayload(
            device="rack-a",
            state=MainsState.ON,
            since=T,
            seq=3,
            ts=T,
            elapsed_s=12.5,
            boot="00c0ffee00c0ffee",
            n=2,
        ).encode(),
        "outage_open": contract.OutagePayload("rack-a", T, 17).encode(),
        "outage_closed": contract.OutagePayload("rack-a", None, 18).encode(),
        "state": contract.StatePayload(
            "rack-a",
            T,
            90211,
            "mcp39f511n",
            {"power_w": 118.4, "voltage_v": 230.1, "energy_kwh": 12.5, "power_w_ch2": 22.5},
        ).encode(),
        "health": contract.HealthPayload("rack-a", health_values(snapshot)).encode(),
        "events": contract.EventPayload(
            device="rack-a", type="outage_started", seq=9, mains_seq=17, ts=T, started=T
        ).encode(),
        "deployment": contract.DeploymentPayload(
            device="rack-a",
            name="Rack A",
            latitude=52.5,
            longitude=13.4,
            started=T,
            software_version="1.2.3",
            config_sha256="0" * 64,
        ).encode(),
        "client_state": _client_state_as_published(),
    }


def test_every_topic_round_trips_through_both_sides() -> None:
    topics = _every_topic()
    bridge_side = {
        "mains": contract.MainsPayload,
        "outage_open": contract.OutagePayload,
        "outage_closed": contract.OutagePayload,
        "state": contract.StatePayload,
        "health": contract.HealthPayload,
        "events": contract.EventPayload,
        "deployment": contract.DeploymentPayload,
        "client_state": contract.ClientStatePayload,
    }
    assert set(bridge_side) == set(topics)
    for name, raw in topics.items():
        decoded = bridge_side[name].decode(raw)  # type: ignore[attr-defined]
        assert decoded.encode() == raw, name  # the bridge's own round trip is byte for byte
        # the component reads every payload as a JSON object under its own limits
        data = protocol.loads_object(raw, max_size=protocol.MAX_STATE_PAYLOAD)
        assert protocol.dumps(data) == raw, name
    mains = protocol.Mains.decode(topics["mains"])
    assert (mains.on, mains.seq, mains.boot, mains.n) == (True, 3, "00c0ffee00c0ffee", 2)
    event = protocol.Event.decode(topics["events"])
    assert (event.type, event.seq, event.mains_seq, event.started) == ("outage_started", 9, 17, T)
    assert protocol.decode_energy_wh(topics["state"]) is None  # energy_kwh, not energy_wh
    outage = protocol.loads_object(topics["outage_open"], max_size=protocol.MAX_CONTROL_PAYLOAD)
    assert protocol._time(outage, "since") == T
    health = protocol.loads_object(topics["health"], max_size=protocol.MAX_STATE_PAYLOAD)
    assert (health["meter_link"], health["cpu_temperature_c"]) == (True, 48.5)
    client = protocol.ClientState.decode(topics["client_state"])
    typed = contract.ClientStatePayload.decode(topics["client_state"])
    assert client.state == typed.state == "counting"
    assert client.seconds_left == typed.seconds_left
    assert client.seconds_left is not None
    assert 0 < client.seconds_left <= 600
    assert client.deadline == typed.deadline
    assert client.bridges == tuple(typed.fields["bridges"]) == ("rack-a", "rack-b")
    assert client.extra["client"] == "pc1"


def test_every_shared_constant_agrees() -> None:
    from custom_components.powerbridge.const import DEFAULT_BASE_TOPIC

    assert protocol.CLIENT_STATES == contract.CLIENT_STATES
    assert protocol.DEVICE_ID_RE.pattern == contract.DEVICE_ID_RE.pattern
    assert protocol.MAX_STATE_PAYLOAD == contract.MAX_STATE_PAYLOAD
    assert protocol.MAX_CONTROL_PAYLOAD == contract.MAX_CONTROL_PAYLOAD
    assert DEFAULT_BASE_TOPIC == contract.DEFAULT_BASE
    assert (protocol.MAINS_ON, protocol.MAINS_OFF, protocol.MAINS_UNKNOWN) == contract.MAINS_STATES
    assert protocol.CLIENTS_LEVEL == contract.CLIENTS_LEVEL
    assert protocol.PAYLOAD_VERSION == contract.PAYLOAD_VERSION
