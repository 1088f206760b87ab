"""Fuzz: random and mutated replies never raise anything but the three meter errors, and a
reading only ever comes from a frame that passes an independent integrity check.

Two tiers, with the same strategies:

* 10,000 examples per protocol through the real driver code (``driver.read()``, including
  minimalmodbus framing for Modbus) over an in-memory serial port — fast enough to run on
  every test run.  minimalmodbus's 3.5-character inter-frame pause is switched off there,
  because an in-memory port has no line to keep quiet;
* a smaller number over a real pseudo-terminal against the simulator, whose next reply is
  replaced by the fuzzed bytes.

And one stronger property: a valid frame with any single byte changed, or cut short, is
*always* rejected (CRC-16 and the MCP's 8-bit sum both detect every single-byte error).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

import minimalmodbus
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import MeterError
from bridge.meters import create_driver
from bridge.meters.base import MeterDriver
from bridge.meters.simulator import SimulatedMeter
from bridge.model import Reading
from tests.meters._modbus import crc_ok, frame, registers_reply
from tests.meters.conftest import FakeSerial

pytestmark = pytest.mark.realtime  # pseudo-terminals and serial timeouts: see pyproject.toml

EXCHANGES_PER_EXAMPLE = 20
IN_MEMORY_EXAMPLES = 300
FUZZED_REPLIES = 10_000
"""At least this many fuzzed replies go through the drivers in memory (300 examples × 20
exchanges of 1–3 replies: about 12,000)."""
PTY_EXAMPLES = 40


@dataclass(frozen=True)
class Transaction:
    """One request/response of a ``read()``: how long a good reply is and how to check it."""

    length: int
    valid: Callable[[bytes], bool]
    content: st.SearchStrategy[bytes]
    """Well-formed replies with arbitrary content."""


def modbus(address: int, count: int) -> Transaction:
    def valid(reply: bytes) -> bool:
        return (
            len(reply) == 5 + 2 * count
            and crc_ok(reply)
            and reply[:3] == bytes([address, 0x04, 2 * count])
        )

    content = st.binary(min_size=2 * count, max_size=2 * count).map(
        lambda data: frame(bytes([address, 0x04, len(data)]) + data)
    )
    return Transaction(5 + 2 * count, valid, content)


def mcp(count: int) -> Transaction:
    def valid(reply: bytes) -> bool:
        return (
            len(reply) == count + 3
            and reply[0] == 0x06
            and reply[1] == count + 3
            and sum(reply[:-1]) % 256 == reply[-1]
        )

    def ack(data: bytes) -> bytes:
        body = bytes([0x06, count + 3]) + data
        return body + bytes([sum(body) % 256])

    return Transaction(count + 3, valid, st.binary(min_size=count, max_size=count).map(ack))


PROTOCOLS: dict[str, list[Transaction]] = {
    "pzem004t": [modbus(0xF8, 10)],
    "mcp39f511n": [mcp(32), mcp(28)],
    "sdm120": [modbus(1, 32), modbus(1, 4)],
    "sdm630": [modbus(1, 36), modbus(1, 12), modbus(1, 4)],
}

ERROR_REPLIES = st.sampled_from(
    [b"\x15", b"\x51", b"\x06", b"", bytes.fromhex("F8 84 02 E2 C3"), bytes.fromhex("01 84 04")]
)


@st.composite
def mutated(draw: st.DrawFn, transaction: Transaction) -> bytes:
    """A good reply, damaged in one of the ways a serial line damages replies (or not)."""
    reply = bytearray(draw(transaction.content))
    how = draw(st.sampled_from(["intact", "flip", "truncate", "extend", "random", "error"]))
    if how == "flip":
        for _ in range(draw(st.integers(1, 3))):
            reply[draw(st.integers(0, len(reply) - 1))] ^= draw(st.integers(1, 255))
    elif how == "truncate":
        del reply[draw(st.integers(0, len(reply) - 1)) :]
    elif how == "extend":
        reply += draw(st.binary(min_size=1, max_size=8))
    elif how == "random":
        return draw(st.binary(max_size=2 * transaction.length))
    elif how == "error":
        return draw(ERROR_REPLIES)
    return bytes(reply)


def exchanges(protocol: str) -> st.SearchStrategy[list[bytes]]:
    return st.tuples(*(mutated(t) for t in PROTOCOLS[protocol])).map(list)


def check_outcome(protocol: str, driver: MeterDriver, replies: list[bytes]) -> Reading | None:
    """Read once; only meter errors may escape, and a reading needs every reply valid."""
    try:
        reading = driver.read()
    except MeterError:
        return None
    for transaction, reply in zip(PROTOCOLS[protocol], replies, strict=True):
        consumed = reply[: transaction.length]  # what the driver read; the rest is line noise
        assert transaction.valid(consumed), f"reading {reading} from a corrupt reply {reply!r}"
    return reading


def opened_in_memory(protocol: str) -> tuple[MeterDriver, FakeSerial]:
    fake = FakeSerial()
    if protocol == "mcp39f511n":  # open() reads the configuration and the interval
        fake.replies.extend(
            [bytes.fromhex("06 07 00 03 00 00 10"), bytes.fromhex("06 05 04 00 0F")]
        )
    driver = create_driver(protocol, "fake")
    driver.attach(fake)  # type: ignore[arg-type]
    return driver, fake


def test_fuzzed_replies_in_memory() -> None:
    drivers = {protocol: opened_in_memory(protocol) for protocol in PROTOCOLS}
    seen = {"replies": 0, "readings": 0, "errors": 0}
    exchange = st.sampled_from(sorted(PROTOCOLS)).flatmap(
        lambda protocol: exchanges(protocol).map(lambda replies: (protocol, replies))
    )

    @settings(
        max_examples=IN_MEMORY_EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batch=st.lists(exchange, min_size=EXCHANGES_PER_EXAMPLE, max_size=EXCHANGES_PER_EXAMPLE))
    def check(batch: list[tuple[str, list[bytes]]]) -> None:
        for protocol, replies in batch:
            driver, fake = drivers[protocol]
            fake.replies.clear()
            fake.replies.extend(replies)
            seen["replies"] += len(replies)
            outcome = check_outcome(protocol, driver, replies)
            seen["readings" if outcome is not None else "errors"] += 1

    with mock.patch.object(minimalmodbus, "_calculate_minimum_silent_period", return_value=0.0):
        check()
    assert seen["replies"] >= FUZZED_REPLIES
    assert seen["readings"] > 0  # not vacuous: intact replies of plausible content decode
    assert seen["errors"] > 0


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_any_single_byte_error_or_truncation_is_rejected(protocol: str) -> None:
    driver, fake = opened_in_memory(protocol)
    transactions = PROTOCOLS[protocol]

    @settings(max_examples=300, deadline=None)
    @given(
        good=st.tuples(*(t.content for t in transactions)),
        which=st.integers(0, len(transactions) - 1),
        position=st.integers(0, 200),
        xor=st.integers(1, 255),
        truncate=st.booleans(),
    )
    def check(good: tuple[bytes, ...], which: int, position: int, xor: int, truncate: bool) -> None:
        replies = list(good)
        damaged = bytearray(replies[which])
        position %= len(damaged)
        if truncate:
            del damaged[position:]
        else:
            damaged[position] ^= xor
        replies[which] = bytes(damaged)
        fake.replies.clear()
        fake.replies.extend(replies)
        with pytest.raises(MeterError):
            driver.read()

    with mock.patch.object(minimalmodbus, "_calculate_minimum_silent_period", return_value=0.0):
        check()


def test_intact_replies_of_plausible_content_do_decode() -> None:
    """The fuzz is not vacuous: a good PZEM frame gives a reading through the same path."""
    driver, fake = opened_in_memory("pzem004t")
    fake.replies.append(registers_reply(0xF8, [2300, 500, 0, 1150, 0, 42, 0, 500, 100, 0]))
    assert driver.read().power_w == 115.0


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_fuzzed_replies_over_a_pty(protocol: str) -> None:
    with SimulatedMeter(protocol, emulate_wire=False, seed=3) as sim:
        driver = create_driver(protocol, sim.port, timeout=0.04)
        with driver:
            first = PROTOCOLS[protocol][0]

            @settings(max_examples=PTY_EXAMPLES, deadline=None)
            @given(reply=mutated(first))
            def check(reply: bytes) -> None:
                sim.queue_reply(reply)  # the first request gets it; the rest are answered
                try:
                    driver.read()
                except MeterError:
                    return
                assert first.valid(reply[: first.length]), f"reading from {reply!r}"

            check()
        assert sim.requests >= PTY_EXAMPLES
