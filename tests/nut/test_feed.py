"""The MQTT feed: bridge messages in, UPS state out, LB and FSD from the policy's decision."""

from __future__ import annotations

import json

import pytest

from bridge.mqtt import signing
from bridge.mqtt.contract import PAYLOAD_VERSION, BridgeTopics, ClientTopics, dumps
from bridge.mqtt.signing import sign_command
from bridge.nut.feed import Feed
from bridge.nut.variables import Identity, Power, variables
from bridge.shutdown.intake import Intake
from bridge.shutdown.policy import PolicySettings, decide
from tests.nut._wire import WALL, BridgeMessages

DEVICE = "rack-a"
T = BridgeTopics("powerbridge", DEVICE)
DELAY = 60.0
KEY = b"0123456789abcdef-shared-test-key"


def make_feed(*, key: bytes | None = None, allow_remote: bool = False, t0: float = 1000.0) -> Feed:
    feed = Feed(
        [DEVICE],
        base="powerbridge",
        client_id="nut",
        settings=PolicySettings(delay=DELAY, remote_cancel_window=5.0),
        started_at=t0,
        intake=Intake([DEVICE], key=key, allow_remote=allow_remote),
    )
    feed.connected()
    return feed


def send(feed: Feed, topic: str, payload: bytes, now: float, *, retained: bool = False) -> None:
    feed.message(topic, payload, retained=retained, now=now, wall=WALL)


def online(feed: Feed, bridge: BridgeMessages, now: float) -> None:
    send(feed, T.status, b"online", now, retained=True)
    send(feed, T.mains, bridge.announce("on", 100.0), now)


def test_nothing_heard_is_stale() -> None:
    feed = make_feed()
    assert feed.state(DEVICE, 1000.0).stale
    assert variables(feed.state(DEVICE, 1000.0), Identity(DEVICE)) is None


def test_on_mains_is_ol_with_readings() -> None:
    feed, bridge = make_feed(), BridgeMessages(DEVICE)
    online(feed, bridge, 1000.0)
    send(feed, T.state, bridge.reading(voltage_v=229.47, frequency_hz=50.01, power_w=12.5), 1000.0)
    state = feed.state(DEVICE, 1001.0)
    assert not state.stale
    assert state.power is Power.ONLINE
    served = variables(state, Identity(DEVICE))
    assert served is not None
    assert served["ups.status"].value == "OL"
    assert served["input.voltage"].value == "229.5"
    assert served["input.frequency"].value == "50.01"
    assert served["ups.realpower"].value == "12.5"
    assert "battery.charge" not in served


def test_outage_is_ob_discharging_then_lb_exactly_at_the_policys_deadline() -> None:
    feed, bridge = make_feed(), BridgeMessages(DEVICE)
    online(feed, bridge, 1000.0)
    send(feed, T.mains, bridge.announce("off", elapsed=2.0), 1010.0)  # outage began at 1008
    deadline = 1008.0 + DELAY
    counting = feed.state(DEVICE, deadline - 0.001)
    served = variables(counting, Identity(DEVICE))
    assert served is not None
    assert served["ups.status"].value == "OB DISCHRG"
    assert counting.seconds_left == pytest.approx(0.001)
    # (the bridge refreshes mains every 30 s, so it is not "silent" by the deadline)
    send(feed, T.mains, bridge.refresh(elapsed=32.0), 1040.0)
    due = variables(feed.state(DEVICE, deadline), Identity(DEVICE))
    assert due is not None
    assert due["ups.status"].value == "FSD OB LB"
    # The deadline is the policy's own:
    assert feed.decision(DEVICE, 1050.0).deadline == pytest.approx(deadline)
    assert feed.next_change(1050.0) == pytest.approx(deadline)


def test_the_deadline_is_decide_itself() -> None:
    feed, bridge = make_feed(), BridgeMessages(DEVICE)
    online(feed, bridge, 1000.0)
    send(feed, T.mains, bridge.announce("off", elapsed=0.5), 1001.0)
    view_decision = feed.decision(DEVICE, 1002.0)
    assert view_decision == decide(
        feed._tracker.view(), 1002.0, PolicySettings(delay=DELAY, remote_cancel_window=5.0)
    )


def test_a_blip_the_bridge_never_announced_changes_nothing_and_restore_cancels() -> None:
    feed, bridge = make_feed(), BridgeMessages(DEVICE)
    online(feed, bridge, 1000.0)
    send(feed, T.mains, bridge.announce("off"), 1001.0)
    send(feed, T.mains, bridge.announce("on"), 1003.0)
    served = variables(feed.state(DEVICE, 1001.0 + DELAY + 1), Identity(DEVICE))
    assert served is not None
    assert served["ups.status"].value == "OL"


@pytest.mark.parametrize("what", ["offline", "broker", "silence", "restart"])
def test_bridge_offline_silent_restarting_or_broker_lost_is_stale(what: str) -> None:
    feed, bridge = make_feed(), BridgeMessages(DEVICE)
    online(feed, bridge, 1000.0)
    now = 1001.0
    if what == "offline":
        send(feed, T.status, b"offline", now)
    elif what == "broker":
        feed.disconnected(now)
    elif what == "silence":
        now += PolicySettings().silence_after
    else:
        restarted = BridgeMessages(DEVICE, boot="b0075eed00000002")
        restarted.seq = bridge.seq
        send(feed, T.mains, restarted.announce("unknown"), now)
    assert feed.state(DEVICE, now).stale


def test_retained_outage_is_on_battery_but_never_lb_until_heard_live() -> None:
    feed, bridge = make_feed(), BridgeMessages(DEVICE)
    send(feed, T.status, b"online", 1000.0, retained=True)
    send(feed, T.mains, bridge.announce("off", elapsed=5000.0), 1000.0, retained=True)
    state = feed.state(DEVICE, 1000.0 + DELAY)
    assert state.power is Power.ON_BATTERY
    assert not state.low_battery


def test_garbage_and_foreign_devices_are_counted_not_applied() -> None:
    feed, bridge = make_feed(), BridgeMessages(DEVICE)
    online(feed, bridge, 1000.0)
    send(feed, T.mains, b"\x00garbage", 1001.0)
    send(feed, T.state, b"{", 1001.0)
    send(feed, T.state, BridgeMessages("other").reading(voltage_v=1.0), 1001.0)
    assert feed.rejected == 3
    assert not feed.state(DEVICE, 1001.0).stale


def test_signed_bridge_unsigned_message_rejected() -> None:
    feed, bridge = make_feed(key=KEY), BridgeMessages(DEVICE)
    send(feed, T.status, b"online", 1000.0)
    send(feed, T.mains, bridge.announce("on"), 1000.0)
    assert feed.rejected == 1
    assert feed.state(DEVICE, 1000.0).stale
    signed = signing.sign(KEY, json.loads(bridge.announce("on")))
    send(feed, T.mains, dumps(signed), 1001.0)
    assert not feed.state(DEVICE, 1001.0).stale


def _shutdown_now(topic: str) -> bytes:
    payload = {"v": PAYLOAD_VERSION, "ts": "2026-11-20T12:00:00Z", "nonce": "n1", "args": {}}
    return dumps(sign_command(KEY, topic, payload))


def test_signed_remote_shutdown_becomes_fsd_after_the_cancel_window() -> None:
    feed = make_feed(key=KEY, allow_remote=True)
    bridge = BridgeMessages(DEVICE)
    send(feed, T.status, b"online", 1000.0)
    signed = signing.sign(KEY, json.loads(bridge.announce("on")))
    send(feed, T.mains, dumps(signed), 1000.0)
    topic = ClientTopics("powerbridge", "all").cmd("shutdown_now")
    send(feed, topic, _shutdown_now(topic), 1001.0)
    assert not feed.state(DEVICE, 1005.9).forced
    state = feed.state(DEVICE, 1006.0)
    served = variables(state, Identity(DEVICE))
    assert served is not None
    assert served["ups.status"].value == "FSD OL"


def test_remote_shutdown_ignored_when_not_allowed() -> None:
    feed, bridge = make_feed(key=KEY), BridgeMessages(DEVICE)
    topic = ClientTopics("powerbridge", "nut").cmd("shutdown_now")
    send(feed, topic, _shutdown_now(topic), 1001.0)
    assert feed.rejected == 1
    del bridge


def test_subscriptions_cover_status_mains_state_and_commands() -> None:
    topics = {s.topic for s in make_feed().subscriptions()}
    assert topics == {
        "powerbridge/+/status",
        T.mains,
        T.state,
        f"{T.root}/ups",
        "powerbridge/clients/nut/cmd/#",
        "powerbridge/clients/all/cmd/#",
    }


def test_a_ups_behind_the_bridge_shows_real_battery_values() -> None:
    feed, bridge = make_feed(), BridgeMessages(DEVICE)
    online(feed, bridge, 1000.0)
    send(feed, f"{T.root}/ups", bridge.ups("OL CHRG", charge=97, runtime=1800), 1000.0)
    served = variables(feed.state(DEVICE, 1000.5), Identity(DEVICE))
    assert served is not None
    assert served["battery.charge"].value == "97"
    assert served["battery.runtime"].value == "1800"
    assert served["ups.status"].value == "OL"


def test_ups_runtime_below_min_runtime_is_fsd_lb_before_the_delay() -> None:
    feed = Feed(
        [DEVICE],
        base="powerbridge",
        client_id="nut",
        settings=PolicySettings(delay=DELAY, min_runtime=120.0),
        started_at=1000.0,
        intake=Intake([DEVICE]),
    )
    feed.connected()
    bridge = BridgeMessages(DEVICE)
    online(feed, bridge, 1000.0)
    send(feed, T.mains, bridge.announce("off"), 1001.0)
    send(feed, f"{T.root}/ups", bridge.ups("OB DISCHRG", charge=60, runtime=300), 1002.0)
    assert variables(feed.state(DEVICE, 1003.0), Identity(DEVICE))["ups.status"].value == (  # type: ignore[index]
        "OB DISCHRG"
    )
    send(feed, f"{T.root}/ups", bridge.ups("OB DISCHRG", charge=20, runtime=100), 1010.0)
    state = feed.state(DEVICE, 1010.0)
    assert state.forced
    assert state.low_battery
    # Runtime already below min_runtime when reported: due at once, long before the delay.
    assert feed.decision(DEVICE, 1010.0).deadline == pytest.approx(1010.0)
    served = variables(state, Identity(DEVICE))
    assert served is not None
    assert served["ups.status"].value == "FSD OB LB"
    assert served["battery.runtime"].value == "100"


def test_ups_payload_of_another_device_or_garbage_is_rejected() -> None:
    feed, bridge = make_feed(), BridgeMessages(DEVICE)
    online(feed, bridge, 1000.0)
    send(feed, f"{T.root}/ups", bridge.ups("OL", charge=1, runtime=1, device="other"), 1000.0)
    send(feed, f"{T.root}/ups", b"[]", 1000.0)
    assert feed.rejected == 2
