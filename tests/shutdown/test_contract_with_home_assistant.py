"""The client and the Home Assistant component agree on the client's state and commands.

The component carries its own copy of the contract (``custom_components/powerbridge/
protocol.py``, no ``bridge`` import); this checks the two directions the shutdown
client depends on: the component decodes the state we publish, and we accept the
commands it signs — and only for the topic it signed them for.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from bridge.mqtt.contract import CLIENT_STATES, ClientTopics
from bridge.shutdown.intake import CommandFact, Intake, Rejected
from tests.shutdown.payloads import KEY, WALL
from tests.shutdown.sim import Sim

PROTOCOL = Path(__file__).resolve().parents[2] / "custom_components/powerbridge/protocol.py"


def component_protocol() -> ModuleType:
    spec = importlib.util.spec_from_file_location("powerbridge_ha_protocol", PROTOCOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_component_decodes_every_state_we_publish() -> None:
    protocol = component_protocol()
    sim = Sim("delay: 600")
    sim.connect()
    sim.status(True, retained=True)
    sim.mains("on", 1, retained=True)
    sim.mains("off", 2)
    sim.advance(700)
    states = sim.publisher.on(ClientTopics("powerbridge", "pc1").state)
    phases = set()
    for message in states:
        decoded = protocol.ClientState.decode(message.payload)
        phases.add(decoded.state)
        assert decoded.bridges == ("test-bridge",)
    assert phases == set(CLIENT_STATES) == set(protocol.CLIENT_STATES)
    counting = next(
        protocol.ClientState.decode(m.payload)
        for m in states
        if protocol.ClientState.decode(m.payload).state == "counting"
    )
    assert counting.seconds_left is not None
    assert counting.deadline is not None


def test_we_accept_commands_the_component_signs_for_us_only() -> None:
    protocol = component_protocol()
    intake = Intake(["test-bridge"], key=KEY, allow_remote=True)
    topic = ClientTopics("powerbridge", "pc1").cmd("shutdown_now")
    raw = protocol.encode_command(topic, {}, ts=WALL, nonce="n-1", key=KEY)
    assert isinstance(intake.command(topic, "shutdown_now", raw, 1.0, WALL), CommandFact)
    other = ClientTopics("powerbridge", "pc2").cmd("shutdown_now")
    raw = protocol.encode_command(other, {}, ts=WALL, nonce="n-2", key=KEY)
    rejected = intake.command(topic, "shutdown_now", raw, 2.0, WALL)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "bad_signature"
    now = datetime.now(UTC)
    cancel = ClientTopics("powerbridge", "all").cmd("cancel")
    raw = protocol.encode_command(cancel, {"reason": "power is back"}, ts=now, nonce="n-3", key=KEY)
    fact = intake.command(cancel, "cancel", raw, 3.0, now)
    assert isinstance(fact, CommandFact)
    assert fact.reason == "power is back"


def test_every_state_we_publish_is_a_client_state_payload() -> None:
    from bridge.mqtt.contract import ClientStatePayload

    sim = Sim("delay: 600")
    sim.connect()
    sim.status(True, retained=True)
    sim.mains("on", 1, retained=True)
    sim.mains("off", 2)
    sim.advance(30)
    decision = sim.runtime.decision
    assert decision is not None
    assembled = sim.runtime.state(decision, sim.now)
    assert ClientStatePayload.decode(
        ClientStatePayload.from_dict(assembled).encode()
    ).to_dict() == {
        "v": 1,
        **assembled,
    }
    sim.advance(700)
    for message in sim.publisher.on(ClientTopics("powerbridge", "pc1").state):
        assert ClientStatePayload.decode(message.payload).encode() == message.payload
