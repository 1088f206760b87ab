"""PZEM-004T v3.0 driver over real pseudo-terminals: golden frame, every failure typed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bridge.errors import MeterDisconnectedError, MeterProtocolError, MeterTimeoutError
from bridge.meters import create_driver
from bridge.meters.pzem004t import Pzem004tDriver, decode_registers
from bridge.meters.simulator import SimulatedMeter
from bridge.model import Reading
from tests.meters._modbus import crc_ok, frame

GOLDEN_REPLY = bytes.fromhex(
    "01 04 14 08 D1 00 6C 00 00 00 F4 00 00 00 26 00 00 01 F4 00 64 00 00 51 34"
)
READ_ALL_FROM_1 = bytes.fromhex("01 04 00 00 00 0A 70 0D")

Line = Callable[[list[bytes | None]], Any]


def driver_on(pty_pair: Any, address: int = 1, timeout: float = 0.2) -> Pzem004tDriver:
    driver = create_driver("pzem004t", pty_pair.port, address=address, timeout=timeout)
    assert isinstance(driver, Pzem004tDriver)
    return driver


def read_once(pty_pair: Any, line: Line, replies: list[bytes | None], **kw: Any) -> Reading:
    """One read over the pty, the far end answering with ``replies``."""
    with line(replies), driver_on(pty_pair, **kw) as meter:
        return meter.read()


def test_golden_frame_is_valid_modbus() -> None:
    assert crc_ok(GOLDEN_REPLY)
    assert crc_ok(READ_ALL_FROM_1)


def test_golden_reply_decodes_exactly(pty_pair: Any, line: Line) -> None:
    with line([GOLDEN_REPLY]) as far_end, driver_on(pty_pair) as meter:
        reading = meter.read()
    assert far_end.requests == [READ_ALL_FROM_1]
    assert reading.meter == "pzem004t"
    assert reading.channel == 1
    assert reading.voltage_v == 225.7
    assert reading.current_a == 0.108
    assert reading.power_w == 24.4
    assert reading.energy_wh == 38.0
    assert reading.frequency_hz == 50.0
    assert reading.power_factor == 1.0
    assert reading.alarm is False
    assert reading.apparent_power_va is None
    assert reading.reactive_power_var is None


def test_32_bit_values_are_low_word_first() -> None:
    registers = [2300, 0x0001, 0x0002, 0x0003, 0x0000, 0xFFFF, 0x0001, 600, 50, 0xFFFF]
    q = decode_registers(registers)
    assert q.current_a == (0x0002 << 16 | 0x0001) / 1000
    assert q.power_w == 0.3
    assert q.energy_wh == float(0x0001FFFF)
    assert q.alarm is True


def test_crc_error_is_a_protocol_error(pty_pair: Any, line: Line) -> None:
    bad = GOLDEN_REPLY[:-1] + bytes([GOLDEN_REPLY[-1] ^ 0x01])
    with (
        line([bad]),
        driver_on(pty_pair) as meter,
        pytest.raises(MeterProtocolError, match="Checksum"),
    ):
        meter.read()


def test_short_frame_is_a_timeout(pty_pair: Any, line: Line) -> None:
    with pytest.raises(MeterTimeoutError, match=r"incomplete reply.*11 of 25"):
        read_once(pty_pair, line, [GOLDEN_REPLY[:11]])


def test_exception_reply_is_a_protocol_error(pty_pair: Any, line: Line) -> None:
    exception = frame(bytes([0x01, 0x84, 0x02]))
    with pytest.raises(MeterProtocolError, match=r"illegal data address"):
        read_once(pty_pair, line, [exception])


def test_reply_from_another_address_is_a_protocol_error(pty_pair: Any, line: Line) -> None:
    other = frame(bytes([0x02]) + GOLDEN_REPLY[1:-2])
    with pytest.raises(MeterProtocolError, match=r"answered from address 2 .* meter.address: 2"):
        read_once(pty_pair, line, [other])


def test_implausible_values_with_a_valid_crc_are_rejected(pty_pair: Any, line: Line) -> None:
    body = bytearray(GOLDEN_REPLY[:-2])
    body[19:21] = (250).to_bytes(2, "big")  # power factor 2.50
    with pytest.raises(MeterProtocolError, match=r"power factor"):
        read_once(pty_pair, line, [frame(bytes(body))])


def test_silence_is_a_timeout_after_the_timeout(pty_pair: Any, line: Line) -> None:
    with line([None]), driver_on(pty_pair, timeout=0.15) as meter:
        started = time.monotonic()
        with pytest.raises(MeterTimeoutError, match="no answer"):
            meter.read()
    assert 0.1 <= time.monotonic() - started < 1.0


def test_against_the_simulator(simulator: Callable[..., SimulatedMeter]) -> None:
    sim = simulator("pzem004t", load_w=1000, noise=0.0, power_factor=0.9)
    with create_driver("pzem004t", sim.port) as meter:  # default address 0xF8
        reading = meter.read()
    assert reading.voltage_v == 230.0
    assert reading.power_w == 1000.0
    assert reading.power_factor == 0.9
    assert reading.frequency_hz == 50.0
    assert reading.current_a == pytest.approx(1000 / (230 * 0.9), abs=0.001)


def test_mains_off_means_silence(simulator: Callable[..., SimulatedMeter]) -> None:
    sim = simulator("pzem004t")
    with create_driver("pzem004t", sim.port, timeout=0.15) as meter:
        assert meter.read().voltage_v == pytest.approx(230, abs=5)
        sim.set_mains(False)
        with pytest.raises(MeterTimeoutError):
            meter.read()
        sim.set_mains(True)
        assert meter.read().voltage_v == pytest.approx(230, abs=5)


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("crc", (MeterProtocolError, MeterTimeoutError)),
        ("noise", (MeterProtocolError, MeterTimeoutError)),
        ("short", (MeterTimeoutError,)),
        ("exception", (MeterProtocolError,)),
        ("silence", (MeterTimeoutError,)),
    ],
)
def test_injected_faults_are_typed_and_pass(
    simulator: Callable[..., SimulatedMeter], kind: str, error: tuple[type[Exception], ...]
) -> None:
    sim = simulator("pzem004t")
    with create_driver("pzem004t", sim.port, timeout=0.15) as meter:
        sim.inject_garbage(1, kind)
        with pytest.raises(error):
            meter.read()
        assert meter.read().power_w is not None  # the next reply is good again


def test_unplugged_port(simulator: Callable[..., SimulatedMeter]) -> None:
    sim = simulator("pzem004t")
    meter = create_driver("pzem004t", sim.port, timeout=0.15)
    meter.open()
    sim.unplug()
    with pytest.raises(MeterDisconnectedError):
        meter.read()
    meter.close()
    with pytest.raises(MeterDisconnectedError, match="not found"):
        meter.open()
    sim.replug()
    with meter:
        assert meter.read().voltage_v is not None
