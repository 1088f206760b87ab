"""MCP39F511N driver over real pseudo-terminals: frames, scaling, both channels, failures."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

import pytest

from bridge.errors import MeterDisconnectedError, MeterProtocolError, MeterTimeoutError
from bridge.meters import create_driver
from bridge.meters.mcp39f511n import Mcp39f511nDriver, read_request, write_request
from bridge.meters.simulator import SimulatedMeter

Line = Callable[[list[bytes | None]], Any]


def ack(data: bytes) -> bytes:
    """A read reply built by hand: ACK, total length, data, sum mod 256."""
    body = bytes([0x06, len(data) + 3]) + data
    return body + bytes([sum(body) % 256])


def block1(*, status: int = 0x00F0) -> bytes:
    """0x0002–0x0021: status, version, V, f, PF1, PF2, I1, I2, P1, P2, Q1."""
    return struct.pack(
        "<HHHHhhIIIII",
        status,
        0x1507,
        2301,  # 230.1 V
        50012,  # 50.012 Hz
        31457,  # PF1 0.96
        -16384,  # PF2 -0.5
        12345,  # I1 1.2345 A
        2000,  # I2 0.2 A
        27250,  # P1 272.50 W
        1150,  # P2 11.50 W
        7950,  # Q1 79.50 var
    )


def block2() -> bytes:
    """0x0022–0x003D: Q2, S1, S2, import energy ch1 and ch2."""
    return struct.pack("<IIIQQ", 1990, 28386, 2300, 1_234_567, 89)


OPEN_SCRIPT: list[bytes | None] = [
    ack(struct.pack("<I", 0)),  # system configuration: energy accumulation off
    ack(struct.pack("<H", 4)),  # accumulation interval N = 4
    b"\x06",  # the write enabling the accumulators
]


def test_request_frames_match_the_datasheet_layout() -> None:
    assert read_request(0x0002, 32) == bytes.fromhex("A5 08 41 00 02 4E 20 5E")
    assert write_request(0x00A0, bytes([0x00, 0x03, 0x00, 0x00])) == bytes.fromhex(
        "A5 0C 41 00 A0 4D 04 00 03 00 00 E6"
    )


def test_golden_replies_decode_exactly(pty_pair: Any, line: Line) -> None:
    script = [*OPEN_SCRIPT, ack(block1()), ack(block2()), ack(block1()), ack(block2())]
    with line(script) as far_end, create_driver("mcp39f511n", pty_pair.port) as meter:
        assert isinstance(meter, Mcp39f511nDriver)
        one = meter.read(1)
        two = meter.read(2)
    assert far_end.requests[:3] == [
        read_request(0x00A0, 4),
        read_request(0x00A8, 2),
        write_request(0x00A0, struct.pack("<I", 0x300)),
    ]
    assert far_end.requests[3:5] == [read_request(0x0002, 32), read_request(0x0022, 28)]
    assert meter.accumulation_interval_n == 4
    assert meter.update_interval_s == pytest.approx(0.32)
    assert (one.voltage_v, one.frequency_hz) == (230.1, 50.012)
    assert one.power_factor == pytest.approx(0.96, abs=1e-4)
    assert one.current_a == 1.2345
    assert one.power_w == 272.5
    assert one.reactive_power_var == 79.5
    assert one.apparent_power_va == 283.86
    assert one.energy_wh == 1234.567
    assert one.alarm is None
    assert (two.channel, two.current_a, two.power_w, two.power_factor) == (2, 0.2, 11.5, -0.5)
    assert (two.apparent_power_va, two.reactive_power_var, two.energy_wh) == (23.0, 19.9, 0.089)


def test_open_leaves_enabled_accumulators_alone(pty_pair: Any, line: Line) -> None:
    script = [
        ack(struct.pack("<I", 0x300)),
        ack(struct.pack("<H", 2)),
        ack(block1()),
        ack(block2()),
    ]
    with line(script) as far_end, create_driver("mcp39f511n", pty_pair.port) as meter:
        meter.read()
    assert len(far_end.requests) == 4  # no write


def test_power_sign_comes_from_the_status_register(pty_pair: Any, line: Line) -> None:
    script = [*OPEN_SCRIPT, ack(block1(status=0x0000)), ack(block2())]
    with line(script), create_driver("mcp39f511n", pty_pair.port) as meter:
        reading = meter.read(1)
    assert reading.power_w == -272.5  # exporting
    assert reading.reactive_power_var == -79.5


def corrupt_checksum(reply: bytes) -> bytes:
    return reply[:-1] + bytes([(reply[-1] + 1) % 256])


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (b"\x15", MeterProtocolError, "NACK"),
        (b"\x51", MeterProtocolError, "checksum failure of our request"),
        (corrupt_checksum(ack(block1())), MeterProtocolError, "checksum"),
        (ack(block1())[:20], MeterTimeoutError, r"incomplete reply.*20 of 35"),
        (b"\x42" + ack(block1())[1:], MeterProtocolError, "not ACK"),
        (ack(block1()[:-1] + b"\x00\x00"), MeterProtocolError, "length"),
        (None, MeterTimeoutError, "no answer"),
    ],
)
def test_bad_replies_are_typed_errors(
    pty_pair: Any, line: Line, reply: bytes | None, error: type[Exception], message: str
) -> None:
    with (
        line([*OPEN_SCRIPT, reply]),
        create_driver("mcp39f511n", pty_pair.port, timeout=0.15) as meter,
        pytest.raises(error, match=message),
    ):
        meter.read()


def test_silent_board_fails_to_open(pty_pair: Any, line: Line) -> None:
    meter = create_driver("mcp39f511n", pty_pair.port, timeout=0.1)
    with line([None]), pytest.raises(MeterTimeoutError):
        meter.open()
    assert not meter.is_open


def test_against_the_simulator(simulator: Callable[..., SimulatedMeter]) -> None:
    sim = simulator("mcp39f511n", channel_loads=[1800.0, 200.0], noise=0.0, power_factor=1.0)
    with create_driver("mcp39f511n", sim.port) as meter:
        one, two = meter.read(1), meter.read(2)
        assert (one.voltage_v, one.power_w, one.frequency_hz) == (230.0, 1800.0, 50.0)
        assert one.current_a == pytest.approx(1800 / 230, abs=1e-4)
        assert two.power_w == 200.0
        # The driver enabled the accumulators: at 1800 W, 0.5 Wh per second.
        start = meter.read(1).energy_wh
        time.sleep(0.3)
        assert meter.read(1).energy_wh - start == pytest.approx(0.15, abs=0.05)


def test_mains_off_reports_zero_volts(simulator: Callable[..., SimulatedMeter]) -> None:
    sim = simulator("mcp39f511n")
    with create_driver("mcp39f511n", sim.port) as meter:
        sim.set_mains(False)
        reading = meter.read()
    assert (reading.voltage_v, reading.power_w, reading.current_a) == (0.0, 0.0, 0.0)


def test_unplug(simulator: Callable[..., SimulatedMeter]) -> None:
    sim = simulator("mcp39f511n")
    with create_driver("mcp39f511n", sim.port, timeout=0.15) as meter:
        sim.unplug()
        with pytest.raises(MeterDisconnectedError):
            meter.read()


def test_channel_3_is_a_programming_error(simulator: Callable[..., SimulatedMeter]) -> None:
    sim = simulator("mcp39f511n")
    with create_driver("mcp39f511n", sim.port) as meter, pytest.raises(ValueError, match="channel"):
        meter.read(3)
