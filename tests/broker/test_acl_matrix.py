"""Role matrix: every role × topic family, against a real Mosquitto started from the shipped files.

The expectations below are written out by hand from the roles in docs/broker.md (not derived
from the ACL generator), so a wrong ACL line makes this test fail.  One broker serves the
module; every publisher publishes every topic, then a privileged ``observer`` and every role
(subscribed to ``#``) report exactly what reached them.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.broker.runner import BrokerSetup, Credentials, Mosquitto, prepare
from tests.helpers.mqtt import Message, TestClient

pytestmark = pytest.mark.integration

A, B = "bridge-alpha", "bridge-beta"
OFFICE, LAB = "client-office", "client-lab"
HA, ARCH = "homeassistant", "archiver"
NUT = "nut-nut"
"""The NUT server facade with ``nut.client_id: nut`` (``powerbridge broker add-nut nut``)."""
ROLES = (A, B, OFFICE, LAB, HA, ARCH, NUT)
NEGATIVE_WAIT = 0.4
"""Seconds to wait for a message that must not come, after a later one proved delivery."""
BRIDGES = {A, B}
CLIENTS = {OFFICE, LAB}


@dataclass(frozen=True)
class Rule:
    writers: frozenset[str]
    readers: frozenset[str]


def rule(writers: set[str], readers: set[str]) -> Rule:
    return Rule(frozenset(writers), frozenset(readers))


def bridge_topics(device: str, user: str) -> dict[str, Rule]:
    base = f"powerbridge/{device}"
    return {
        # Shutdown clients follow status, mains and events of every bridge.
        # The NUT facade reads status, mains, state and ups: what it serves as UPS variables.
        f"{base}/status": rule({user}, {user, *CLIENTS, HA, ARCH, NUT}),
        f"{base}/mains": rule({user}, {user, *CLIENTS, HA, ARCH, NUT}),
        f"{base}/events": rule({user}, {user, *CLIENTS, HA, ARCH}),
        # A UPS behind the bridge: clients follow it too (shutdown.min_runtime).
        f"{base}/ups": rule({user}, {user, *CLIENTS, HA, NUT}),
        # Every sample goes to Home Assistant and the archiver only.
        f"{base}/samples": rule({user}, {user, HA, ARCH}),
        f"{base}/state": rule({user}, {user, HA, ARCH, NUT}),
        f"{base}/outage": rule({user}, {user, HA}),
        # The archive stores health and deployments too (powerbridge archive).
        f"{base}/health": rule({user}, {user, HA, ARCH}),
        f"{base}/deployment": rule({user}, {user, HA, ARCH}),
        # Commands: from Home Assistant (and the bridge's own topics are its own).
        f"{base}/cmd/republish": rule({user, HA}, {user, HA}),
        f"{base}/cmd/simulate": rule({user, HA}, {user, HA}),
        # The archive's one write: asking a bridge for a missing range again.
        f"{base}/cmd/resend": rule({user, HA, ARCH}, {user, HA}),
        f"homeassistant/sensor/{device}/power/config": rule({user}, {HA}),
        f"homeassistant/binary_sensor/{device}/mains/config": rule({user}, {HA}),
    }


def client_topics(client_id: str, user: str) -> dict[str, Rule]:
    base = f"powerbridge/clients/{client_id}"
    return {
        f"{base}/status": rule({user}, {user, HA}),
        f"{base}/state": rule({user}, {user, HA}),
        f"{base}/cmd/shutdown_now": rule({user, HA}, {user, HA}),
        f"{base}/cmd/cancel": rule({user, HA}, {user, HA}),
        f"homeassistant/sensor/{user}/countdown/config": rule({user}, {HA}),
    }


MATRIX: dict[str, Rule] = {
    **bridge_topics("alpha", A),
    **bridge_topics("beta", B),
    **client_topics("office", OFFICE),
    **client_topics("lab", LAB),
    # The facade: its own status only; the commands to it and to all clients (FSD).
    "powerbridge/clients/nut/status": rule({NUT}, {NUT, HA}),
    "powerbridge/clients/nut/state": rule(set(), {HA}),
    "powerbridge/clients/nut/cmd/shutdown_now": rule({HA}, {NUT, HA}),
    "homeassistant/sensor/client-nut/countdown/config": rule(set(), {HA}),
    "powerbridge/clients/all/cmd/shutdown_now": rule({HA}, {*CLIENTS, HA, NUT}),
    "homeassistant/status": rule({HA}, {*BRIDGES, *CLIENTS, HA}),
    # A bridge that has no identity yet: nobody may speak for it.
    "powerbridge/stranger/mains": rule(set(), {*CLIENTS, HA, ARCH, NUT}),
    "powerbridge/stranger/samples": rule(set(), {HA, ARCH}),
    # Home Assistant's other integrations and foreign trees: not ours to touch.
    "homeassistant/sensor/kitchen/temperature/config": rule(set(), {HA}),
    "zigbee2mqtt/lamp/set": rule(set(), set()),
    "powerbridge": rule(set(), {HA}),
}

# Publishers: every role, plus shutdown clients that pick a client id naming someone else
# (the client id is the connecting client's choice and must grant nothing).
PUBLISHERS: dict[str, tuple[str, str | None]] = {
    **{role: (role, None) for role in ROLES},
    "client-office as alpha": (OFFICE, "alpha"),
    "client-office as bridge-alpha": (OFFICE, "bridge-alpha"),
    "client-lab as homeassistant": (LAB, "homeassistant"),
}


def readable(role: str, topic: str) -> bool:
    return role == "observer" or role in MATRIX[topic].readers


def writable(publisher: str, topic: str) -> bool:
    return PUBLISHERS[publisher][0] in MATRIX[topic].writers


@pytest.fixture(scope="module")
def matrix_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    setup = BrokerSetup(bridges=("alpha", "beta"), clients=("office", "lab"), nut=("nut",))
    broker = prepare(Path(tmp_path_factory.mktemp("acl-matrix")), setup)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


def creds(broker: Mosquitto, role: str) -> Credentials:
    return broker.observer if role == "observer" else broker.credentials[role]


def connect(broker: Mosquitto, role: str, client_id: str | None = None) -> TestClient:
    return TestClient(broker, creds(broker, role), client_id=client_id).connect()


def publish_all(client: TestClient, items: list[tuple[str, bytes]], retain: bool) -> None:
    infos = [client.paho.publish(t, p, qos=1, retain=retain) for t, p in items]
    for info in infos:
        info.wait_for_publish(5)


def take_until(sub: TestClient, controls: set[tuple[str, bytes]]) -> list[Message]:
    """Messages up to and including the control messages (which must arrive)."""
    got: list[Message] = []
    pending = set(controls)
    deadline = time.monotonic() + 5
    while pending and time.monotonic() < deadline:
        try:
            msg = sub.messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        pending.discard((msg.topic, msg.payload))
        got.append(msg)
    assert not pending, f"control messages never arrived: {pending}"
    return got


def take_rest(sub: TestClient) -> list[Message]:
    """Whatever is queued already (call after the one shared negative wait)."""
    return sub.drain(0)


def test_live_publish_and_subscribe_matrix(matrix_broker: Mosquitto) -> None:
    broker = matrix_broker
    readers = {role: connect(broker, role) for role in (*ROLES, "observer")}
    for sub in readers.values():
        sub.subscribe("#")
    publishers = {
        label: connect(broker, role, client_id) for label, (role, client_id) in PUBLISHERS.items()
    }
    try:
        for label, pub in publishers.items():
            publish_all(pub, [(t, f"live {label}".encode()) for t in MATRIX], retain=False)
        # Controls, published after every matrix message was acknowledged: each reader sees
        # at least one of them, and Mosquitto delivers to one subscriber in order.
        mine = [("powerbridge/alpha/samples", b"control"), ("powerbridge/alpha/status", b"control")]
        controls = {("homeassistant/status", b"control"), *mine}
        publish_all(publishers[HA], [("homeassistant/status", b"control")], retain=False)
        publish_all(publishers[A], mine, retain=False)

        messages: dict[str, list[Message]] = {}
        for role, sub in readers.items():
            own = {c for c in controls if readable(role, c[0])}
            assert own, f"{role} has no control message it may read"
            messages[role] = take_until(sub, own)
        time.sleep(NEGATIVE_WAIT)  # one short wait for stragglers, shared by every reader
        received: dict[str, set[tuple[str, str]]] = {}
        for role, sub in readers.items():
            got = {
                (m.topic, m.payload.decode().removeprefix("live "))
                for m in messages[role] + take_rest(sub)
                if m.payload != b"control"
            }
            expected = {
                (topic, label)
                for topic in MATRIX
                for label in PUBLISHERS
                if writable(label, topic) and readable(role, topic)
            }
            assert got - expected == set(), f"{role} received what it must not"
            assert expected - got == set(), f"{role} missed what it may read"
            received[role] = got
    finally:
        for client in (*readers.values(), *publishers.values()):
            client.disconnect()

    # The cases that matter most, spelled out.
    observed = received["observer"]
    assert ("powerbridge/alpha/mains", OFFICE) not in observed
    assert ("powerbridge/alpha/mains", "client-office as alpha") not in observed
    assert ("powerbridge/beta/mains", A) not in observed
    assert ("powerbridge/beta/status", A) not in observed
    assert ("powerbridge/alpha/mains", HA) not in observed
    assert ("powerbridge/clients/all/cmd/shutdown_now", A) not in observed
    assert ("powerbridge/clients/all/cmd/shutdown_now", OFFICE) not in observed
    assert ("powerbridge/clients/lab/cmd/shutdown_now", OFFICE) not in observed
    assert ("powerbridge/alpha/mains", A) in observed
    assert ("powerbridge/clients/all/cmd/shutdown_now", HA) in observed
    # The NUT facade reads what it serves and the commands for FSD; it writes its status only.
    assert ("powerbridge/alpha/state", A) in received[NUT]
    assert ("powerbridge/alpha/ups", A) in received[NUT]
    assert ("powerbridge/clients/all/cmd/shutdown_now", HA) in received[NUT]
    assert not {t for t, _ in received[NUT]} & {
        "powerbridge/alpha/events",
        "powerbridge/alpha/samples",
        "powerbridge/alpha/health",
        "powerbridge/alpha/outage",
        "powerbridge/clients/office/state",
    }
    assert ("powerbridge/clients/nut/status", NUT) in observed
    assert not {t for t, who in observed if who == NUT} - {"powerbridge/clients/nut/status"}


def test_retained_messages_obey_the_same_matrix(matrix_broker: Mosquitto) -> None:
    broker = matrix_broker
    publishers = {
        label: connect(broker, role, client_id) for label, (role, client_id) in PUBLISHERS.items()
    }
    topics = list(MATRIX)
    try:
        # Legitimate writers first, then every other publisher tries to overwrite.
        order = sorted(publishers, key=lambda label: label not in (A, B, OFFICE, LAB))
        legit: dict[str, str] = {}
        for label in order:
            publish_all(
                publishers[label], [(t, f"retained {label}".encode()) for t in topics], retain=True
            )
            for topic in topics:
                if writable(label, topic):
                    legit[topic] = label
    finally:
        for client in publishers.values():
            client.disconnect()

    subscribers = {role: connect(broker, role) for role in (*ROLES, "observer")}
    try:
        for sub in subscribers.values():
            # QoS 0: retained messages are not throttled by the in-flight window, so they are
            # all written before the SUBACK of the second subscription.
            sub.subscribe("#", qos=0)
            sub.subscribe("barrier/none", qos=0)
        time.sleep(NEGATIVE_WAIT)
        for role, sub in subscribers.items():
            got = {m.topic: m.payload.decode() for m in take_rest(sub) if m.retain}
            expected = {t: f"retained {legit[t]}" for t in legit if readable(role, t)}
            assert got == expected, role
    finally:
        for sub in subscribers.values():
            sub.disconnect()

    # A forbidden writer never replaced a retained value: the last *allowed* writer's stays.
    assert legit["powerbridge/alpha/mains"] == A
    assert legit["powerbridge/alpha/cmd/republish"] == HA


def test_subscription_to_a_forbidden_filter_delivers_nothing(matrix_broker: Mosquitto) -> None:
    broker = matrix_broker
    office = connect(broker, OFFICE)
    archiver = connect(broker, ARCH)
    bridge = connect(broker, A)
    try:
        office.subscribe("powerbridge/+/samples")
        office.subscribe("powerbridge/clients/lab/#")
        archiver.subscribe("powerbridge/+/outage")
        archiver.subscribe("powerbridge/+/samples")
        publish_all(
            bridge,
            [
                ("powerbridge/alpha/mains", b"m"),
                ("powerbridge/alpha/outage", b"t"),
                ("powerbridge/alpha/samples", b"s"),
            ],
            retain=False,
        )
        got = take_until(archiver, {("powerbridge/alpha/samples", b"s")})
        time.sleep(NEGATIVE_WAIT)
        got += take_rest(archiver)
        # Retained samples from earlier tests may come too; no `outage`, retained or live.
        assert {m.topic.rsplit("/", 1)[1] for m in got} == {"samples"}
        assert [m.topic for m in take_rest(office)] == []
    finally:
        for client in (office, archiver, bridge):
            client.disconnect()


def test_matrix_covers_every_role_and_topic_family() -> None:
    """The table itself: each role both may and may not do something; the contract's topics."""
    for role in ROLES:
        assert any(role in r.readers for r in MATRIX.values()), role
        assert any(role not in r.readers for r in MATRIX.values()), role
        assert any(role not in r.writers for r in MATRIX.values()), role
    assert all(any(role in r.writers for r in MATRIX.values()) for role in ROLES)
    # The archiver's only write is cmd/resend.
    assert {t.rsplit("/", 1)[1] for t, r in MATRIX.items() if ARCH in r.writers} == {"resend"}
    families = {t.split("/")[-1] for t in MATRIX if t.startswith("powerbridge/alpha/")}
    assert {"status", "mains", "state", "samples", "health", "events", "deployment"} <= families
