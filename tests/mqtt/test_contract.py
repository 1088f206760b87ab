"""The MQTT contract: payloads round-trip and strict decoding rejects the rest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.errors import PayloadError
from bridge.model import MainsState
from bridge.mqtt import signing
from bridge.mqtt.contract import (
    BridgeTopics,
    ClientTopics,
    CommandPayload,
    EventPayload,
    MainsPayload,
    SamplePayload,
    channel_key,
    decode_samples,
    discovery_topic,
    encode_samples,
)

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_topics() -> None:
    t = BridgeTopics("powerbridge", "rack-a")
    assert t.status == "powerbridge/rack-a/status"
    assert t.mains == "powerbridge/rack-a/mains"
    assert t.cmd("simulate") == "powerbridge/rack-a/cmd/simulate"
    c = ClientTopics("powerbridge", "pc1")
    assert c.state == "powerbridge/clients/pc1/state"
    assert discovery_topic("homeassistant", "sensor", "rack-a", "power") == (
        "homeassistant/sensor/rack-a/power/config"
    )


def test_mains_round_trip() -> None:
    payload = MainsPayload(
        "rack-a", MainsState.OFF, T0, 7, T0, 12.5, boot="0123456789abcdef", n=1, outage_count=3
    )
    assert MainsPayload.decode(payload.encode()) == payload


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'{"v": 2}',
        b'{"v": true}',
        b'{"v":1,"device":"a","state":"maybe","since":"2026-01-01T00:00:00Z","seq":1,'
        b'"ts":"2026-01-01T00:00:00Z","elapsed_s":1}',
        b'{"v":1,"device":"a","state":"off","since":"yesterday","seq":1,'
        b'"ts":"2026-01-01T00:00:00Z","elapsed_s":1}',
        b'{"v":1,"device":"a","state":"off","since":"2026-01-01T00:00:00Z","seq":-1,'
        b'"ts":"2026-01-01T00:00:00Z","elapsed_s":1}',
        b'{"v":1,"device":"a","state":"off","since":"2026-01-01T00:00:00Z","seq":1,'
        b'"ts":"2026-01-01T00:00:00Z","elapsed_s":NaN}',
        b'{"v":1,"device":"a","state":"off","since":"2026-01-01T00:00:00Z","seq":true,'
        b'"ts":"2026-01-01T00:00:00Z","elapsed_s":1}',
        b"{" * 100_000,
    ],
)
def test_mains_rejects_garbage(raw: bytes) -> None:
    with pytest.raises(PayloadError):
        MainsPayload.decode(raw)


def test_event_and_command_round_trip() -> None:
    event = EventPayload("rack-a", "outage_ended", 42, 8, T0, T0, T0, 61.0)
    assert EventPayload.decode(event.encode()) == event
    cmd = CommandPayload("simulate", {"mains": "off"}, T0, "abc")
    assert CommandPayload.decode("simulate", cmd.encode()) == cmd


def test_samples_round_trip() -> None:
    batch = [SamplePayload(1, T0, 1, {"power_w": 10.0}), SamplePayload(2, T0, 2, {"power_w": 3.0})]
    assert decode_samples(encode_samples("rack-a", batch)) == batch


def test_channel_keys() -> None:
    assert channel_key("power_w", 1) == "power_w"
    assert channel_key("power_w", 2) == "power_w_ch2"
    assert channel_key("voltage_v", 2) == "voltage_v"


def test_signatures() -> None:
    key = b"k" * 32
    body = MainsPayload(
        "rack-a", MainsState.OFF, T0, 7, T0, 1.0, boot="0123456789abcdef", n=1
    ).to_dict()
    signed = signing.sign(key, body)
    assert signing.verify(key, signed)
    assert not signing.verify(b"x" * 32, signed)
    assert not signing.verify(key, {**signed, "state": "on"})
    assert not signing.verify(key, body)


def test_state_health_outage_and_client_state_round_trip() -> None:
    from bridge.mqtt.contract import (
        ClientStatePayload,
        HealthPayload,
        OutagePayload,
        StatePayload,
        encode_client_state,
        encode_health,
        encode_outage,
        encode_state,
    )

    state = StatePayload("rack-a", T0, 5, "pzem004t", {"power_w": 118.4, "current_a": None})
    assert state.encode() == encode_state("rack-a", T0, 5, "pzem004t", {"power_w": 118.4})
    assert state.encode() == (
        b'{"device":"rack-a","meter":"pzem004t","power_w":118.4,"seq":5,'
        b'"ts":"2026-11-20T12:00:00.000Z","v":1}'
    )
    assert StatePayload.decode(state.encode()).values == {"power_w": 118.4}
    health = HealthPayload("rack-a", {"meter_link": True, "spool_depth": None})
    assert health.encode() == encode_health("rack-a", {"meter_link": True, "spool_depth": None})
    assert HealthPayload.decode(health.encode()) == health
    for since in (T0, None):
        outage = OutagePayload("rack-a", since, 7)
        assert outage.encode() == encode_outage("rack-a", since, 7)
        assert OutagePayload.decode(outage.encode()) == outage
    values = {"state": "counting", "seconds_left": 20.0, "deadline": "2026-11-20T12:00:20.000Z"}
    client = ClientStatePayload.from_dict(values)
    assert client.encode() == encode_client_state(values)
    assert ClientStatePayload.decode(client.encode()) == client
    assert (client.seconds_left, client.deadline) == (
        20.0,
        datetime(2026, 11, 20, 12, 0, 20, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        (
            "state",
            b'{"v":1,"device":"a","ts":"2026-11-20T12:00:00Z","seq":1,"meter":"x","power_w":"1"}',
        ),
        ("state", b'{"v":1,"device":"a","ts":"2026-11-20T12:00:00Z","seq":-1,"meter":"x"}'),
        ("state", b'{"v":1,"device":"a","seq":1,"meter":"x"}'),
        ("health", b'{"v":1,"meter_link":true}'),
        ("outage", b'{"v":1,"device":"a","seq":1}'),
        ("outage", b'{"v":1,"device":"a","since":"yesterday","seq":1}'),
        ("client", b'{"v":1,"state":"dozing"}'),
        ("client", b'{"v":1,"state":"counting","seconds_left":-1}'),
        ("client", b'{"v":1,"state":"counting","deadline":"soon"}'),
        ("client", b'{"v":2,"state":"idle"}'),
        ("client", b'{"v":1,"state":"idle","pad":"' + b"x" * 70000 + b'"}'),
    ],
)
def test_state_health_outage_and_client_state_reject_garbage(kind: str, raw: bytes) -> None:
    from bridge.mqtt.contract import ClientStatePayload, HealthPayload, OutagePayload, StatePayload

    decoders = {
        "state": StatePayload.decode,
        "health": HealthPayload.decode,
        "outage": OutagePayload.decode,
        "client": ClientStatePayload.decode,
    }
    with pytest.raises(PayloadError):
        decoders[kind](raw)
