"""More than 10,000 generated or mutated payloads on the mains topic: no shutdown, no crash.

Payloads go through the same path as network messages (intake → tracker → decide →
actions) in-process, on a manual clock, so that each batch can be followed by
more than the whole delay.  A few hundred more go through a real broker in
``test_integration.py``.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import PayloadError
from bridge.model import MainsState
from bridge.mqtt.contract import MainsPayload, dumps
from tests.shutdown.payloads import KEY, WALL, mains
from tests.shutdown.sim import Sim

MAINS_TOPIC = "powerbridge/test-bridge/mains"
EXAMPLES = 200
VARIANTS = 19
COUNT = {"keyed": 0, "unsigned": 0, "mutated": 0}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["on", "off", "test-bridge", "2026-11-20T12:00:00.000Z", "1", "v"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
FIELDS = ["v", "device", "state", "since", "seq", "ts", "elapsed_s", "source", "sig", "x"]


def template(state: str = "off", **kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(mains(state, 5, elapsed=1e6, **kw))
    return data


@st.composite
def field_mutation(draw: st.DrawFn, signed: bool) -> bytes:
    """A valid-looking payload with one to three fields replaced, removed or added."""
    data = template("off", key=KEY if signed else None)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(FIELDS))
        if draw(st.booleans()) and key in data:
            del data[key]
        else:
            data[key] = draw(json_values)
    try:
        return dumps(data)
    except (TypeError, ValueError):
        return json.dumps(data, default=str).encode()


def raw_bytes() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=200),
        st.integers(4097, 6000).map(lambda n: b'{"v":1,"pad":"' + b"x" * n + b'"}'),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.text(max_size=100).map(str.encode),
    )


def is_valid_outage(raw: bytes) -> bool:
    """The oracle for unsigned runs: a payload that *is* a correct outage announcement."""
    try:
        payload = MainsPayload.decode(raw)
    except PayloadError:
        return False
    return payload.device == "test-bridge" and payload.state is MainsState.OFF


def fresh_sim(key: bytes | None) -> Sim:
    sim = Sim("delay: 5\nwarnings: []", key=key)
    sim.connect()
    sim.status(True, retained=True)
    # Seq 10 "on": replays (seq < 10) of genuine signed messages are rejected even if a
    # mutation happens to leave them intact.
    sim.mains("on", 10)
    return sim


def deliver_all(sim: Sim, payloads: list[bytes], counter: str) -> None:
    for raw in payloads:
        sim.deliver(MAINS_TOPIC, raw, retained=len(raw) % 2 == 0)
        COUNT[counter] += 1
    sim.advance(30)  # six times the delay


def expand(seed: bytes) -> list[bytes]:
    """The generated payload and :data:`VARIANTS` byte-level mutations of it."""
    rng = random.Random(seed)
    return [seed] + [mutate(rng, seed) for _ in range(VARIANTS)]


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    database=None,
)


@FUZZ_SETTINGS
@given(st.one_of(raw_bytes(), field_mutation(signed=True)))
def _keyed(seed: bytes) -> None:
    sim = fresh_sim(KEY)
    deliver_all(sim, expand(seed), "keyed")
    assert sim.shutdown_times == []
    assert "internal_error" not in sim.runtime.rejections.counts


@FUZZ_SETTINGS
@given(st.one_of(raw_bytes(), field_mutation(signed=False)))
def _unsigned(seed: bytes) -> None:
    sim = fresh_sim(None)
    payloads = expand(seed)
    deliver_all(sim, payloads, "unsigned")
    if not any(is_valid_outage(p) for p in payloads):
        assert sim.shutdown_times == []
    assert len(sim.shutdown_times) <= 1
    assert "internal_error" not in sim.runtime.rejections.counts


def test_generated_payloads_with_a_key() -> None:
    _keyed()
    assert COUNT["keyed"] >= EXAMPLES * (VARIANTS + 1) * 0.9


def test_generated_payloads_without_a_key() -> None:
    _unsigned()
    assert COUNT["unsigned"] >= EXAMPLES * (VARIANTS + 1) * 0.9


def mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        pos = rng.randrange(len(data) or 1)
        if op == 0 and data:
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            data.insert(pos, rng.randrange(256))
        elif op == 2 and data:
            del data[pos]
        else:
            data = data[:pos]
    return bytes(data)


def test_byte_mutations_of_signed_messages_are_rejected() -> None:
    """Bit flips, insertions, deletions and truncations of genuine signed messages."""
    rng = random.Random(20261120)
    sim = fresh_sim(KEY)
    sources = [
        mains("off", 11, elapsed=1e6, key=KEY, ts=WALL - timedelta(hours=1)),  # stale
        mains("off", 9, elapsed=1e6, key=KEY),  # replayed sequence
        mains("off", 11, elapsed=1e6, key=b"a different key of 16+ bytes"),  # forged
        mains("off", 11, elapsed=1e6),  # unsigned
    ]
    for i in range(4000):
        sim.deliver(MAINS_TOPIC, mutate(rng, sources[i % len(sources)]))
        COUNT["mutated"] += 1
        if i % 500 == 0:
            sim.advance(10)
    sim.advance(60)
    assert sim.shutdown_times == []
    assert sim.runtime.rejections.total == 4000
    assert "internal_error" not in sim.runtime.rejections.counts


def test_total_payload_count() -> None:
    """Runs last in this module (pytest keeps file order): ≥ 10,000 payloads in all."""
    assert sum(COUNT.values()) >= 10_000, COUNT
