"""The component's copy of the MQTT contract agrees with the bridge's own modules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from bridge.errors import PayloadError as BridgePayloadError
from bridge.model import MainsState
from bridge.mqtt import contract, signing
from bridge.shutdown.intake import sign_command
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
    for leaf in ("status", "mains", "state", "health", "events"):
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
    raw = protocol.encode_command(
        topic, {"mains": "off"}, ts=T, nonce="n1", key=KEY, bind_topic=False
    )
    assert signing.verify(KEY, json.loads(raw))
    assert (
        raw
        == contract.CommandPayload(
            name="simulate",
            args={"mains": "off"},
            ts=T,
            nonce="n1",
            sig=signing.signature(KEY, json.loads(raw)),
        ).encode()
    )


def test_status() -> None:
    assert protocol.decode_status(b"online") is True
    assert protocol.decode_status("offline") is False
    with pytest.raises(protocol.PayloadError):
        protocol.decode_status(b"Online")
