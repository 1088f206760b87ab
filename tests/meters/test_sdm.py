"""Eastron SDM120 / SDM630 drivers over real pseudo-terminals."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest

from bridge.errors import MeterProtocolError, MeterTimeoutError
from bridge.meters import create_driver
from bridge.meters.simulator import SimulatedMeter
from tests.meters._modbus import frame, registers_reply

Line = Callable[[list[bytes | None]], Any]


def floats(values: dict[int, float], count: int) -> list[int]:
    """Registers ``0..count`` holding each float32 at its (relative) address, high word first."""
    registers = [0] * count
    for offset, value in values.items():
        registers[offset : offset + 2] = struct.unpack(">HH", struct.pack(">f", value))
    return registers


def test_float_layout_is_big_endian_high_word_first() -> None:
    # 230.5 V is 0x43668000: registers 0x4366, 0x8000.
    assert floats({0: 230.5}, 2) == [0x4366, 0x8000]


def test_sdm120_golden_replies(pty_pair: Any, line: Line) -> None:
    block_a = floats(
        {0x00: 230.5, 0x06: 4.25, 0x0C: 930.0, 0x12: 979.0, 0x18: 305.75, 0x1E: 0.95}, 32
    )
    block_b = floats({0: 49.98, 2: 1234.56}, 4)
    replies: list[bytes | None] = [registers_reply(1, block_a), registers_reply(1, block_b)]
    with line(replies) as far_end, create_driver("sdm120", pty_pair.port) as meter:
        reading = meter.read()
    assert far_end.requests == [
        frame(bytes.fromhex("01 04 00 00 00 20")),
        frame(bytes.fromhex("01 04 00 46 00 04")),
    ]
    assert meter.baud == 2400
    assert (reading.voltage_v, reading.current_a, reading.power_w) == (230.5, 4.25, 930.0)
    assert (reading.apparent_power_va, reading.reactive_power_var) == (979.0, 305.75)
    assert reading.power_factor == pytest.approx(0.95)
    assert reading.frequency_hz == pytest.approx(49.98)
    assert reading.energy_wh == pytest.approx(1_234_560, abs=1)


def test_nan_in_a_valid_frame_is_a_protocol_error(pty_pair: Any, line: Line) -> None:
    block_a = floats({0x00: float("nan")}, 32)
    with (
        line([registers_reply(1, block_a), registers_reply(1, floats({}, 4))]),
        create_driver("sdm120", pty_pair.port) as meter,
        pytest.raises(MeterProtocolError, match="implausible voltage"),
    ):
        meter.read()


def test_exception_and_silence(pty_pair: Any, line: Line) -> None:
    with (
        line([frame(bytes([0x01, 0x84, 0x02])), None]),
        create_driver("sdm630", pty_pair.port, timeout=0.15) as meter,
    ):
        with pytest.raises(MeterProtocolError, match="illegal data address"):
            meter.read()
        with pytest.raises(MeterTimeoutError, match="no answer"):
            meter.read()


def test_sdm630_against_the_simulator(simulator: Callable[..., SimulatedMeter]) -> None:
    sim = simulator("sdm630", load_w=3000, noise=0.0, power_factor=1.0)
    with create_driver("sdm630", sim.port) as meter:
        reading = meter.read()
    assert reading.voltage_v == pytest.approx(230.0)
    assert reading.power_w == pytest.approx(3000.0)
    assert reading.current_a == pytest.approx(3000 / 230, rel=1e-4)
    assert reading.power_factor == pytest.approx(1.0)
    assert reading.frequency_hz == pytest.approx(50.0)


def test_sdm120_mains_off_reports_zero_volts(simulator: Callable[..., SimulatedMeter]) -> None:
    sim = simulator("sdm120", baud=9600)
    with create_driver("sdm120", sim.port, baud=9600) as meter:
        sim.set_mains(False)
        reading = meter.read()
    assert (reading.voltage_v, reading.power_w) == (0.0, 0.0)
