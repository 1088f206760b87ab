"""The slave side of each wire protocol: find a request in the bytes, build the reply.

These are written from the protocol descriptions, independently of the drivers
(the drivers use minimalmodbus for Modbus framing; the slave side here has its
own CRC), so a test of driver against simulator checks two implementations
against each other.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod

from bridge.meters.simulator._physics import ElectricalModel

# -- Modbus RTU ------------------------------------------------------------------------------

GENERAL_ADDRESS = 0xF8


def crc16_modbus(data: bytes) -> int:
    """CRC-16/Modbus (poly 0xA001 reflected, init 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body: bytes) -> bytes:
    """``body`` followed by its CRC, low byte first."""
    return body + struct.pack("<H", crc16_modbus(body))


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and struct.pack("<H", crc16_modbus(frame[:-2])) == frame[-2:]


class Responder(ABC):
    """Finds requests in a byte stream and answers them from an :class:`ElectricalModel`."""

    def __init__(self, model: ElectricalModel) -> None:
        self.model = model

    @abstractmethod
    def frame_length(self, buffer: bytes) -> int | None:
        """Length of the request at the start of ``buffer``; ``None`` if incomplete (or
        unknowable: the line's silence will end it); 0 if the first byte starts no request."""

    @abstractmethod
    def respond(self, frame: bytes) -> bytes | None:
        """The reply to one request, or ``None`` to stay silent (as a real meter would)."""

    @abstractmethod
    def error_reply(self, frame: bytes) -> bytes | None:
        """A well-formed *refusal* of ``frame`` (Modbus exception, NACK) for fault injection."""


class ModbusResponder(Responder):
    """Common Modbus-RTU slave behaviour: address filter, CRC check, exception replies."""

    def __init__(self, model: ElectricalModel, address: int) -> None:
        super().__init__(model)
        self.address = address

    def frame_length(self, buffer: bytes) -> int | None:
        if len(buffer) < 2:
            return None
        function = buffer[1]
        if function in (0x03, 0x04, 0x06):
            return 8
        if function == 0x42:
            return 4
        return None  # unknown function: the silence after it ends the frame

    def respond(self, frame: bytes) -> bytes | None:
        if not crc_ok(frame):
            return None  # a real slave ignores a frame with a bad CRC
        address = frame[0]
        if address not in (self.address, GENERAL_ADDRESS):
            return None
        return self.handle(address, frame[1], frame[2:-2])

    def error_reply(self, frame: bytes) -> bytes | None:
        if len(frame) < 2:
            return None
        return self.exception(frame[0], frame[1], 0x04)  # slave device failure

    @staticmethod
    def exception(address: int, function: int, code: int) -> bytes:
        return with_crc(bytes([address, function | 0x80, code]))

    @staticmethod
    def registers_reply(address: int, function: int, registers: list[int]) -> bytes:
        data = struct.pack(f">{len(registers)}H", *registers)
        return with_crc(bytes([address, function, len(data)]) + data)

    @abstractmethod
    def handle(self, address: int, function: int, payload: bytes) -> bytes | None:
        """Reply to a CRC-checked request addressed to us."""


class PzemResponder(ModbusResponder):
    """PZEM-004T v3.0: input registers 0x0000–0x0009, holding 0x0001 (alarm), 0x0002 (address).

    Replies carry the address the request was sent to (0xF8 stays 0xF8).
    """

    def __init__(self, model: ElectricalModel, address: int = 0x01) -> None:
        super().__init__(model, address)
        self.alarm_threshold_w = 2300

    def input_registers(self) -> list[int]:
        sample = self.model.sample(1)
        current = min(round(sample.current_a * 1000), 0xFFFFFFFF)
        power = min(round(sample.power_w * 10), 0xFFFFFFFF)
        energy = min(round(self.model.energy_wh(1)), 0xFFFFFFFF)
        return [
            min(round(sample.voltage_v * 10), 0xFFFF),
            current & 0xFFFF,
            current >> 16,
            power & 0xFFFF,
            power >> 16,
            energy & 0xFFFF,
            energy >> 16,
            min(round(sample.frequency_hz * 10), 0xFFFF),
            min(round(sample.power_factor * 100), 100),
            0xFFFF if sample.power_w >= self.alarm_threshold_w else 0x0000,
        ]

    def handle(self, address: int, function: int, payload: bytes) -> bytes | None:
        handlers = {
            0x03: self._read_holding,
            0x04: self._read_input,
            0x06: self._write_single,
            0x42: self._reset_energy,
        }
        handler = handlers.get(function)
        if handler is None:
            return self.exception(address, function, 0x01)
        if function != 0x42 and len(payload) != 4:
            return self.exception(address, function, 0x03)
        return handler(address, function, payload)

    def _read_input(self, address: int, function: int, payload: bytes) -> bytes:
        start, count = struct.unpack(">HH", payload)
        if count < 1 or start + count > 10:
            return self.exception(address, function, 0x02)
        registers = self.input_registers()[start : start + count]
        return self.registers_reply(address, function, registers)

    def _read_holding(self, address: int, function: int, payload: bytes) -> bytes:
        start, count = struct.unpack(">HH", payload)
        holding = {1: self.alarm_threshold_w, 2: self.address}
        if count < 1 or start < 1 or start + count > 3:
            return self.exception(address, function, 0x02)
        registers = [holding[r] for r in range(start, start + count)]
        return self.registers_reply(address, function, registers)

    def _write_single(self, address: int, function: int, payload: bytes) -> bytes:
        register, value = struct.unpack(">HH", payload)
        if register == 1:
            self.alarm_threshold_w = value
        elif register == 2 and 1 <= value <= 0xF7:
            self.address = value
        else:
            return self.exception(address, function, 0x03)
        return with_crc(bytes([address, function]) + payload)

    def _reset_energy(self, address: int, function: int, payload: bytes) -> bytes:
        del payload
        self.model.add_energy(-self.model.energy_wh(1))
        return with_crc(bytes([address, function]))


class SdmResponder(ModbusResponder):
    """Eastron SDM120 (``phases=1``) or SDM630 (``phases=3``): float32 input registers."""

    LAST_REGISTER = 0x0180
    MAX_COUNT = 80

    def __init__(self, model: ElectricalModel, address: int = 1, *, phases: int = 1) -> None:
        super().__init__(model, address)
        self.phases = phases

    def values(self) -> dict[int, float]:
        """Register address → value of every quantity the meter publishes."""
        kwh_import = self.model.energy_wh(1) / 1000.0
        values: dict[int, float] = {0x0048: kwh_import, 0x004A: 0.0, 0x0156: kwh_import}
        if self.phases == 1:
            s = self.model.sample(1)
            values |= {
                0x0000: s.voltage_v,
                0x0006: s.current_a,
                0x000C: s.power_w,
                0x0012: s.apparent_power_va,
                0x0018: s.reactive_power_var,
                0x001E: s.power_factor,
                0x0046: s.frequency_hz,
            }
            return values
        # Three phases: the load is spread evenly; phase voltages get their own noise.
        phases = [self.model.sample(1) for _ in range(3)]
        third = 1 / 3
        total_w = sum(p.power_w for p in phases) * third
        total_va = sum(p.apparent_power_va for p in phases) * third
        total_var = sum(p.reactive_power_var for p in phases) * third
        for index, p in enumerate(phases):
            values |= {
                0x0000 + 2 * index: p.voltage_v,
                0x0006 + 2 * index: p.current_a * third,
                0x000C + 2 * index: p.power_w * third,
                0x0012 + 2 * index: p.apparent_power_va * third,
                0x0018 + 2 * index: p.reactive_power_var * third,
                0x001E + 2 * index: p.power_factor,
            }
        values |= {
            0x0034: total_w,
            0x0038: total_va,
            0x003C: total_var,
            0x003E: total_w / total_va if total_va > 0 else 0.0,
            0x0046: phases[0].frequency_hz,
        }
        return values

    def handle(self, address: int, function: int, payload: bytes) -> bytes | None:
        if function != 0x04:
            return self.exception(address, function, 0x01)
        if len(payload) != 4:
            return self.exception(address, function, 0x03)
        start, count = struct.unpack(">HH", payload)
        if count < 1 or count > self.MAX_COUNT:
            return self.exception(address, function, 0x03)
        if start % 2 or count % 2 or start + count > self.LAST_REGISTER:
            return self.exception(address, function, 0x02)
        values = self.values()
        registers: list[int] = []
        for register in range(start, start + count, 2):
            registers.extend(struct.unpack(">HH", struct.pack(">f", values.get(register, 0.0))))
        return self.registers_reply(address, function, registers)


# -- MCP39F511N ------------------------------------------------------------------------------

MCP_HEADER, MCP_ACK, MCP_NACK, MCP_CSFAIL = 0xA5, 0x06, 0x15, 0x51
MCP_MAX_FRAME = 64
MCP_MAX_READ = 32
MCP_CONFIG_START = 0x006E
MCP_SIZE = 0x0100
MCP_SYSTEM_CONFIGURATION = 0x00A0
MCP_ACCUMULATION_INTERVAL = 0x00A8
MCP_ENERGY_BITS = {1: 1 << 8, 2: 1 << 9}


def mcp_checksum(data: bytes) -> int:
    return sum(data) & 0xFF


class McpResponder(Responder):
    """MCP39F511N: address pointer, register read/write, energy accumulators with enable bits."""

    def __init__(self, model: ElectricalModel, *, accumulation_interval_n: int = 4) -> None:
        super().__init__(model)
        self.config = bytearray(MCP_SIZE)
        struct.pack_into("<H", self.config, MCP_ACCUMULATION_INTERVAL, accumulation_interval_n)
        self.pointer = 0
        self._energy_base = {1: 0.0, 2: 0.0}

    def frame_length(self, buffer: bytes) -> int | None:
        if buffer[0] != MCP_HEADER:
            return 0
        if len(buffer) < 2:
            return None
        length = buffer[1]
        if length < 4 or length > MCP_MAX_FRAME:
            return 0
        return length if len(buffer) >= length else None

    def error_reply(self, frame: bytes) -> bytes | None:
        return bytes([MCP_NACK])

    def system_configuration(self) -> int:
        value: int = struct.unpack_from("<I", self.config, MCP_SYSTEM_CONFIGURATION)[0]
        return value

    def memory(self) -> bytes:
        """The register map as the meter would show it now."""
        memory = bytearray(self.config)
        s1, s2 = self.model.sample(1), self.model.sample(2)
        config = self.system_configuration()
        energies = []
        for channel in (1, 2):
            if config & MCP_ENERGY_BITS[channel]:
                energy = self.model.energy_wh(channel) - self._energy_base[channel]
                energies.append(max(0, round(energy * 1000)))  # 1 mWh per LSB
            else:
                energies.append(0)
        status = 0xF0  # signs: active and reactive positive on both channels
        struct.pack_into(
            "<HHHHHhh",
            memory,
            0x0000,
            0,
            status,
            0x1507,  # system version (a date code)
            min(round(s1.voltage_v * 10), 0xFFFF),
            min(round(s1.frequency_hz * 1000), 0xFFFF),
            min(round(s1.power_factor * 32768), 32767),
            min(round(s2.power_factor * 32768), 32767),
        )

        def u32(value: float, scale: float) -> int:
            return min(round(value * scale), 0xFFFFFFFF)

        struct.pack_into(
            "<8I",
            memory,
            0x000E,
            u32(s1.current_a, 10_000),
            u32(s2.current_a, 10_000),
            u32(s1.power_w, 100),
            u32(s2.power_w, 100),
            u32(s1.reactive_power_var, 100),
            u32(s2.reactive_power_var, 100),
            u32(s1.apparent_power_va, 100),
            u32(s2.apparent_power_va, 100),
        )
        struct.pack_into("<QQ", memory, 0x002E, energies[0], energies[1])
        return bytes(memory)

    def respond(self, frame: bytes) -> bytes | None:
        if mcp_checksum(frame[:-1]) != frame[-1]:
            return bytes([MCP_CSFAIL])
        commands = frame[2:-1]
        data = bytearray()
        read_any = False
        index = 0
        while index < len(commands):
            command = commands[index]
            if command == 0x41 and index + 3 <= len(commands):
                self.pointer = (commands[index + 1] << 8) | commands[index + 2]
                index += 3
            elif command == 0x4E and index + 2 <= len(commands):
                count = commands[index + 1]
                if count < 1 or count > MCP_MAX_READ or self.pointer + count > MCP_SIZE:
                    return bytes([MCP_NACK])
                data += self.memory()[self.pointer : self.pointer + count]
                read_any = True
                index += 2
            elif command == 0x4D and index + 2 <= len(commands):
                count = commands[index + 1]
                payload = commands[index + 2 : index + 2 + count]
                if len(payload) != count or not self._write(self.pointer, payload):
                    return bytes([MCP_NACK])
                index += 2 + count
            elif command == 0x53:  # save registers to flash: nothing to keep in a simulation
                index += 1
            else:
                return bytes([MCP_NACK])
        if not read_any:
            return bytes([MCP_ACK])
        body = bytes([MCP_ACK, len(data) + 3]) + bytes(data)
        return body + bytes([mcp_checksum(body)])

    def _write(self, address: int, payload: bytes) -> bool:
        if address < MCP_CONFIG_START or address + len(payload) > MCP_SIZE:
            return False  # output registers are read-only
        before = self.system_configuration()
        self.config[address : address + len(payload)] = payload
        after = self.system_configuration()
        for channel, bit in MCP_ENERGY_BITS.items():
            if after & bit and not before & bit:
                self._energy_base[channel] = self.model.energy_wh(channel)  # counting starts at 0
        return True
