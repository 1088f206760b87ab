"""The bridge's messages as they appear on the wire, built with the public contract (tests only)."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.model import MainsState
from bridge.mqtt.contract import MainsPayload, UpsOrigin, UpsReport, encode_state
from bridge.ups.report import encode_ups

WALL = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BOOT = "b0075eed00000001"


class BridgeMessages:
    """Numbers ``mains`` messages as one bridge run does: ``seq`` per state, ``n`` per message."""

    def __init__(self, device: str = "rack-a", boot: str = BOOT) -> None:
        self.device = device
        self.boot = boot
        self.seq = 0
        self.n = 0
        self.ups_n = 0
        self.state = MainsState.UNKNOWN

    def announce(self, state: str, elapsed: float = 0.0) -> bytes:
        self.seq += 1
        self.state = MainsState(state)
        return self._mains(elapsed)

    def refresh(self, elapsed: float) -> bytes:
        return self._mains(elapsed)

    def _mains(self, elapsed: float) -> bytes:
        self.n += 1
        return MainsPayload(
            device=self.device,
            state=self.state,
            since=WALL,
            seq=self.seq,
            ts=WALL,
            elapsed_s=elapsed,
            boot=self.boot,
            n=self.n,
        ).encode()

    def ups(
        self,
        status: str,
        *,
        charge: float,
        runtime: float,
        load: float = 20.0,
        device: str | None = None,
        ts: datetime = WALL,
    ) -> bytes:
        """A ``ups`` report of this run, made under the mains state announced last."""
        self.ups_n += 1
        report = UpsReport(status, charge=charge, runtime_s=runtime, load=load)
        origin = UpsOrigin(self.boot, self.seq, self.ups_n)
        return encode_ups(device or self.device, ts, report, origin)

    def reading(self, **values: float) -> bytes:
        return encode_state(self.device, WALL, 1, "simulator", values)
