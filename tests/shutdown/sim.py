"""An in-process shutdown client on a manual clock: the runtime without a network (tests only)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.clock import ManualClock
from bridge.config import parse_client_config
from bridge.mqtt.contract import BridgeTopics, ClientTopics
from bridge.shutdown.actions import Actions, Invocation, RunResult
from bridge.shutdown.events import Connected, Disconnected, Message
from bridge.shutdown.memory import ReplayMemory
from bridge.shutdown.runtime import ClientRuntime
from tests.shutdown.payloads import BOOT, WALL, command, mains

SHUTDOWN_ARGV = ("/bin/true", "powerbridge-test-shutdown")


@dataclass
class Published:
    topic: str
    payload: bytes
    qos: int
    retain: bool

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.payload)
        return data


@dataclass
class FakePublisher:
    messages: list[Published] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        self.messages.append(Published(topic, payload, qos, retain))

    def on(self, topic: str) -> list[Published]:
        return [m for m in self.messages if m.topic == topic]


class RecordingRunner:
    """Records every command with the monotonic time it ran at; runs nothing."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.calls: list[tuple[float, Invocation]] = []
        self.returncode = 0
        """What the shutdown command "returns" (0: accepted)."""

    def __call__(self, invocation: Invocation) -> RunResult:
        self.calls.append((self.clock.monotonic(), invocation))
        if invocation.argv == SHUTDOWN_ARGV:
            return RunResult(invocation, self.returncode)
        return RunResult(invocation, 0)

    @property
    def shutdown_times(self) -> list[float]:
        return [t for t, inv in self.calls if inv.argv == SHUTDOWN_ARGV]

    def warnings(self) -> list[tuple[float, Invocation]]:
        return [(t, inv) for t, inv in self.calls if inv.argv[0] == "wall"]


class Sim:
    """A client with a manual clock; messages are handed to the runtime as the network would."""

    def __init__(
        self,
        shutdown: str = "delay: 600",
        *,
        bridges: tuple[str, ...] = ("test-bridge",),
        key: bytes | None = None,
        extra: str = "",
        start: float = 1000.0,
        memory: Path | None = None,
    ) -> None:
        self.clock = ManualClock(monotonic=start, wall=WALL)
        lines = ["bridges: [" + ", ".join(bridges) + "]", "shutdown:"]
        lines += [f"  {line}" for line in shutdown.splitlines()]
        lines += [f"  command: [{SHUTDOWN_ARGV[0]}, {SHUTDOWN_ARGV[1]}]", "  notify: wall"]
        if key is not None:
            lines += ["signing:", "  key_file: /nonexistent/used-only-by-the-cli"]
        self.config = parse_client_config("\n".join(lines) + "\n" + extra)
        self.runner = RecordingRunner(self.clock)
        self.publisher = FakePublisher()
        self.runtime = ClientRuntime(
            self.config,
            clock=self.clock,
            actions=Actions(self.config.shutdown, system="linux", runner=self.runner),
            key=key,
            client_id="pc1",
            name="PC 1",
            publisher=self.publisher,
            spawn=lambda work: work(),
            memory=ReplayMemory(memory) if memory is not None else None,
        )
        self.key = key
        self.base = self.config.mqtt.base_topic
        self.announced: dict[str, tuple[str, int, float]] = {}
        self.runs: dict[str, tuple[str, int]] = {}
        """Per bridge: its current run id and the number of its last ``mains`` message."""

    # -- network events ------------------------------------------------------------------
    def deliver(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        self.runtime.handle(
            Message(topic, payload, retained, self.clock.monotonic(), self.clock.utcnow())
        )
        self.step()

    def connect(self) -> None:
        self.runtime.handle(Connected(self.clock.monotonic()))
        self.step()

    def disconnect(self) -> None:
        self.runtime.handle(Disconnected(self.clock.monotonic()))
        self.step()

    def status(self, online: bool, device: str = "test-bridge", *, retained: bool = False) -> None:
        topic = BridgeTopics(self.base, device).status
        self.deliver(topic, b"online" if online else b"offline", retained=retained)

    def mains(
        self,
        state: str,
        seq: int,
        *,
        elapsed: float = 0.0,
        device: str = "test-bridge",
        retained: bool = False,
        bridge_wall_offset: float = 0.0,
        boot: str | None = None,
        n: int | None = None,
    ) -> None:
        """A ``mains`` message of ``device``'s current run (or of run ``boot``), numbered next."""
        from datetime import timedelta

        self.announced[device] = (state, seq, self.clock.monotonic() - elapsed)
        run, last = self.runs.get(device, (BOOT, 0))
        if boot is not None and boot != run:
            run, last = boot, 0
        number = last + 1 if n is None else n
        self.runs[device] = (run, max(last, number))
        ts = self.clock.utcnow() + timedelta(seconds=bridge_wall_offset)
        payload = mains(
            state, seq, device=device, elapsed=elapsed, ts=ts, key=self.key, boot=run, n=number
        )
        self.deliver(BridgeTopics(self.base, device).mains, payload, retained=retained)

    def command(self, name: str, *, target: str = "pc1", **kw: Any) -> None:
        topic = ClientTopics(self.base, target).cmd(name)
        self.deliver(topic, command(topic, ts=self.clock.utcnow(), **kw))

    # -- time ------------------------------------------------------------------------------
    def step(self) -> None:
        self.runtime.process_pending()
        self.runtime.evaluate()
        self.runtime.process_pending()

    def advance(self, seconds: float) -> None:
        """Let time pass, waking the runtime exactly when it asked to be woken."""
        target = self.clock.monotonic() + seconds
        while True:
            decision = self.runtime.decision
            wake = self.runtime.next_wake(decision) if decision is not None else target
            if wake > target:
                break
            self.clock.advance(max(0.0, wake - self.clock.monotonic()))
            self.step()
        self.clock.advance(target - self.clock.monotonic())
        self.step()

    def refreshing(self, seconds: float, every: float = 30.0) -> None:
        """Let time pass while every bridge republishes its announcement as a live bridge does."""
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end:
            self.advance(min(every, end - self.clock.monotonic()))
            for device, (state, seq, start) in list(self.announced.items()):
                self.mains(state, seq, elapsed=self.clock.monotonic() - start, device=device)

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    @property
    def shutdown_times(self) -> list[float]:
        return self.runner.shutdown_times

    def last_state(self) -> dict[str, Any]:
        return self.publisher.on(ClientTopics(self.base, "pc1").state)[-1].json()
