"""A search, not a replay: a Hypothesis state machine of the client's intake + policy.

The world is modelled in process on one manual clock: a bridge (a mains input it
debounces with a confirmation window, a persistent announcement counter, a new run
id at each start, a refresh every 30 s), a broker (retained ``status``/``mains``,
restarted with or without persistence), and the real :class:`ClientRuntime` with
its replay memory on disk.  Hypothesis interleaves mains changes and blips, bridge
stops/kills/restarts, broker restarts, client restarts, duplicated, re-sent (out of
order) and replayed deliveries and wall-clock offsets on either side, and checks
after every step:

* **never early, never on old news** — a shutdown at ``t`` needs an outage
  announcement this client process received *live* whose outage began at or
  before ``t - delay``, and no newer announcement of restored mains received since;
* **never missed** — once bridge, broker and client have been up together for a
  refresh period and the confirmed outage has lasted ``delay`` (+ 1 s), the client
  has shut down for it;
* **never back in time** — the announcement the client acts on never goes back to an
  older one, whatever is re-sent or replayed, across client restarts too.

The budget is fixed (``MAX_EXAMPLES`` × ``STEPS``) and the seed is fixed and printed
(``PROPERTY_SEED``, default 15015), so CI runs the same search every time in well
under a minute; ``PROPERTY_SEED=<n>`` and ``PROPERTY_EXAMPLES=<n>`` search further.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from bridge.clock import ManualClock
from bridge.config import parse_client_config
from bridge.model import MainsState
from bridge.mqtt.contract import MAINS_REFRESH_S, BridgeTopics, MainsPayload
from bridge.shutdown.actions import Actions, Invocation, RunResult
from bridge.shutdown.events import Connected, Disconnected, Message
from bridge.shutdown.memory import ReplayMemory
from bridge.shutdown.runtime import ClientRuntime
from tests.shutdown.sim import SHUTDOWN_ARGV, FakePublisher

DEVICE = "test-bridge"
DELAY = 40.0
WINDOW = 1.0
EPS = 1e-6
MAX_EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "500"))
STEPS = 40
SEED = int(os.environ.get("PROPERTY_SEED", "15015"))
TOPICS = BridgeTopics("powerbridge", DEVICE)
STATS: dict[str, int] = {"examples": 0, "steps": 0, "shutdowns": 0, "deliveries": 0}


@dataclass
class Sent:
    """One ``mains`` message the bridge sent, with the truth behind it."""

    payload: bytes
    state: MainsState
    seq: int
    began: float
    """True monotonic start of the announced state (its first edge)."""


@dataclass
class Bridge:
    """The bridge as the contract describes it (not the daemon's code: the model)."""

    running: bool = False
    boot: str = ""
    n: int = 0
    seq: int = 0
    """The persistent announcement counter: it survives every restart."""
    pin_on: bool = True
    confirmed: MainsState = MainsState.UNKNOWN
    began: float = 0.0
    pending: tuple[bool, float] | None = None
    next_refresh: float = 0.0
    wall_offset: float = 0.0
    sent: list[Sent] = field(default_factory=list)
    history: list[tuple[float, MainsState, int]] = field(default_factory=list)
    """Confirmed announcements: (began, state, seq)."""


class World:
    def __init__(self, memory: Path) -> None:
        self.clock = ManualClock(monotonic=10_000.0, wall=datetime(2026, 11, 20, tzinfo=UTC))
        self.client_wall_offset = 0.0
        self.memory = memory
        self.bridge = Bridge()
        self.broker_up = True
        self.retained: dict[str, tuple[bytes, Sent | None]] = {}
        self.persisted: dict[str, tuple[bytes, Sent | None]] = {}
        self.shutdowns: list[float] = []
        self.runtime: ClientRuntime | None = None
        self.connected = False
        self.live_off: list[Sent] = []
        """Outage announcements this client process received live."""
        self.seen: list[Sent] = []
        """Every announcement this client process received (live or retained)."""
        self.stable_since = self.now
        self.ready_again = True
        self.violations: list[str] = []
        config = "\n".join(
            [
                f"bridges: [{DEVICE}]",
                "shutdown:",
                f"  delay: {DELAY}",
                "  warnings: []",
                "  notify: none",
                f"  command: [{SHUTDOWN_ARGV[0]}, {SHUTDOWN_ARGV[1]}]",
            ]
        )
        self.config = parse_client_config(config + "\n")

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    # -- the client ---------------------------------------------------------------------
    def run(self, invocation: Invocation) -> RunResult:
        """The shutdown "command": records, and judges (the runtime swallows exceptions of
        its runner, so a violation is kept and raised by :meth:`raise_violations`)."""
        if invocation.argv == SHUTDOWN_ARGV:
            try:
                # One shutdown per outage in one client process: a second one needs restored
                # mains in between (the harmless command returns; a real one would power off).
                assert self.ready_again, "a second shutdown in one process, mains not restored"
                self.ready_again = False
                self.shutdowns.append(self.now)
                self.check_shutdown(self.now)
            except AssertionError as exc:
                self.violations.append(str(exc))
        return RunResult(invocation, 0)

    def raise_violations(self) -> None:
        assert not self.violations, self.violations[0]

    def start_client(self) -> None:
        self.runtime = ClientRuntime(
            self.config,
            clock=self.clock,
            actions=Actions(self.config.shutdown, system="linux", runner=self.run),
            client_id="pc1",
            publisher=FakePublisher(),
            spawn=lambda work: work(),
            memory=ReplayMemory(self.memory),
        )
        self.live_off, self.seen = [], []
        self.ready_again = True
        self.connect_client()

    def connect_client(self) -> None:
        if not self.broker_up or self.runtime is None:
            return
        self.connected = True
        self.runtime.handle(Connected(self.now))
        self.stable_since = max(self.stable_since, self.now)
        for topic, (payload, sent) in list(self.retained.items()):
            self.deliver(topic, payload, sent, retained=True)
        self.step()

    def disconnect_client(self) -> None:
        if self.runtime is not None and self.connected:
            self.runtime.handle(Disconnected(self.now))
        self.connected = False

    def deliver(self, topic: str, payload: bytes, sent: Sent | None, *, retained: bool) -> None:
        if self.runtime is None or not self.connected:
            return
        STATS["deliveries"] += 1
        wall = self.clock.utcnow() + timedelta(seconds=self.client_wall_offset)
        self.runtime.handle(Message(topic, payload, retained, self.now, wall))
        if sent is not None:
            mark = self.runtime.intake.marks.get(DEVICE)
            accepted = mark is not None and (mark.seq, mark.state) == (sent.seq, sent.state)
            if accepted:
                self.seen.append(sent)
                if sent.state is MainsState.ON:
                    self.ready_again = True
                if not retained and sent.state is MainsState.OFF:
                    self.live_off.append(sent)

    def step(self) -> None:
        if self.runtime is not None:
            self.runtime.process_pending()
            self.runtime.evaluate()
            self.runtime.process_pending()

    # -- the bridge ---------------------------------------------------------------------
    def publish_mains(self) -> None:
        b = self.bridge
        b.n += 1
        ts = self.clock.utcnow() + timedelta(seconds=b.wall_offset)
        payload = MainsPayload(
            device=DEVICE,
            state=b.confirmed,
            since=ts,
            seq=b.seq,
            ts=ts,
            elapsed_s=max(0.0, self.now - b.began),
            boot=b.boot,
            n=b.n,
        ).encode()
        sent = Sent(payload, b.confirmed, b.seq, b.began)
        b.sent.append(sent)
        b.next_refresh = self.now + MAINS_REFRESH_S
        if self.broker_up:
            self.retained[TOPICS.mains] = (payload, sent)
            self.deliver(TOPICS.mains, payload, sent, retained=False)

    def publish_status(self, online: bool) -> None:
        payload = b"online" if online else b"offline"
        if self.broker_up:
            self.retained[TOPICS.status] = (payload, None)
            self.deliver(TOPICS.status, payload, None, retained=False)

    def start_bridge(self) -> None:
        b = self.bridge
        b.running, b.boot, b.n = True, secrets.token_hex(8), 0
        b.seq += 1
        b.confirmed, b.began = MainsState.UNKNOWN, self.now
        b.pending = (b.pin_on, self.now)
        self.stable_since = max(self.stable_since, self.now)
        self.publish_status(True)
        self.publish_mains()

    def bridge_tick(self) -> None:
        b = self.bridge
        if not b.running:
            return
        if b.pending is not None and self.now >= b.pending[1] + WINDOW - EPS:
            on, first = b.pending
            b.pending = None
            b.seq += 1
            b.confirmed = MainsState.ON if on else MainsState.OFF
            b.began = first
            b.history.append((first, b.confirmed, b.seq))
            self.publish_mains()
        elif self.now >= b.next_refresh - EPS:
            self.publish_mains()

    def next_bridge_time(self) -> float:
        b = self.bridge
        if not b.running:
            return float("inf")
        times = [b.next_refresh]
        if b.pending is not None:
            times.append(b.pending[1] + WINDOW)
        return min(times)

    def set_pin(self, on: bool) -> None:
        b = self.bridge
        if b.pin_on == on:
            return
        b.pin_on = on
        if not b.running:
            return
        confirmed_on = b.confirmed is MainsState.ON
        if b.confirmed is not MainsState.UNKNOWN and on == confirmed_on:
            b.pending = None  # a blip: never announced
        else:
            b.pending = (on, self.now)

    # -- time ---------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while True:
            wake = self.next_bridge_time()
            if self.runtime is not None and self.runtime.decision is not None:
                wake = min(wake, self.runtime.next_wake(self.runtime.decision))
            if wake > target:
                break
            self.clock.advance(max(0.0, wake - self.now))
            self.bridge_tick()
            self.step()
            self.check_not_missed()
        self.clock.advance(target - self.now)
        self.bridge_tick()
        self.step()
        self.check_not_missed()

    # -- the properties -----------------------------------------------------------------
    def check_shutdown(self, t: float) -> None:
        STATS["shutdowns"] += 1
        assert self.live_off, "shut down without a live outage announcement (old news)"
        candidates = [
            s
            for s in self.live_off
            if s.began <= t - DELAY + 1e-3
            and not any(x.state is MainsState.ON and x.seq > s.seq for x in self.seen)
        ]
        assert candidates, (
            f"shut down at {t:.3f} without {DELAY:g} s of outage by live evidence: "
            f"live outages {[(s.seq, round(s.began, 3)) for s in self.live_off]}, "
            f"seen {[(s.seq, s.state.value) for s in self.seen]}"
        )

    def check_not_missed(self) -> None:
        b = self.bridge
        if not (b.running and self.broker_up and self.connected and self.runtime is not None):
            return
        if b.confirmed is not MainsState.OFF:
            return
        due = max(b.began + DELAY, self.stable_since + MAINS_REFRESH_S + WINDOW) + 1.0
        # One outage may span restarts of the bridge (off confirmed again by the next run,
        # no "on" in between): a shutdown for it at any point counts.
        start = b.began
        for began, state, _seq in reversed(b.history):
            if state is not MainsState.OFF:
                break
            start = min(start, began)
        if self.now >= due:
            assert any(t >= start - EPS for t in self.shutdowns), (
                f"missed: outage since {b.began:.3f} (seq {b.seq}), now {self.now:.3f}, "
                f"stable since {self.stable_since:.3f}, shutdowns {self.shutdowns}"
            )


class ClientUnderInterleavings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world: World | None = None
        self.highest_seq = 0

    @initialize(pin_on=st.booleans(), client_first=st.booleans(), tmp=st.just(None))
    def setup(self, pin_on: bool, client_first: bool, tmp: Any) -> None:
        del tmp
        STATS["examples"] += 1
        path = Path(MEMORY_DIR[0]) / f"memory-{secrets.token_hex(6)}.json"
        self.world = World(path)
        self.world.bridge.pin_on = pin_on
        if client_first:
            self.world.start_client()
            self.world.start_bridge()
        else:
            self.world.start_bridge()
            self.world.advance(2.0)
            self.world.start_client()

    @property
    def w(self) -> World:
        assert self.world is not None
        return self.world

    def _step(self) -> None:
        STATS["steps"] += 1

    # -- time and the mains --------------------------------------------------------------
    @rule(seconds=st.sampled_from([0.3, 0.9, 2.0, 5.0, 15.0, 31.0, 45.0, 61.0, 120.0]))
    def time_passes(self, seconds: float) -> None:
        self._step()
        self.w.advance(seconds)

    @rule(on=st.booleans())
    def mains_changes(self, on: bool) -> None:
        self._step()
        self.w.set_pin(on)

    @rule(length=st.sampled_from([0.2, 0.5, 0.9]))
    def blip(self, length: float) -> None:
        self._step()
        before = self.w.bridge.pin_on
        self.w.set_pin(not before)
        self.w.advance(length)
        self.w.set_pin(before)

    # -- the bridge -----------------------------------------------------------------------
    @precondition(lambda self: self.w.bridge.running)
    @rule(clean=st.booleans())
    def bridge_stops(self, clean: bool) -> None:
        """SIGTERM says offline; a kill (or a power cut) leaves it to the last will."""
        self._step()
        self.w.bridge.running = False
        self.w.publish_status(False)  # the will has the same effect, a little later
        del clean

    @precondition(lambda self: not self.w.bridge.running)
    @rule()
    def bridge_starts(self) -> None:
        self._step()
        self.w.start_bridge()

    @rule(offset=st.sampled_from([-7200.0, -3600.0, 0.0, 120.0, 3 * 3600.0]))
    def bridge_clock_is_off(self, offset: float) -> None:
        self._step()
        self.w.bridge.wall_offset = offset

    @rule(offset=st.sampled_from([-3600.0, 0.0, 3600.0]))
    def client_clock_is_off(self, offset: float) -> None:
        self._step()
        self.w.client_wall_offset = offset

    # -- the broker ------------------------------------------------------------------------
    @precondition(lambda self: self.w.broker_up)
    @rule(persistence=st.booleans(), save_first=st.booleans())
    def broker_dies(self, persistence: bool, save_first: bool) -> None:
        """A broker crash; with persistence, it restores what it last saved."""
        self._step()
        w = self.w
        if save_first:
            w.persisted = dict(w.retained)
        w.retained = dict(w.persisted) if persistence else {}
        w.broker_up = False
        w.disconnect_client()
        w.step()

    @precondition(lambda self: not self.w.broker_up)
    @rule(bridge_first=st.booleans())
    def broker_starts(self, bridge_first: bool) -> None:
        self._step()
        w = self.w
        w.broker_up = True
        w.stable_since = w.now

        def bridge_reconnects() -> None:
            if w.bridge.running:
                w.publish_status(True)
                w.publish_mains()  # the bridge republishes its retained state on connect

        if bridge_first:
            bridge_reconnects()
            w.connect_client()
        else:
            w.connect_client()
            bridge_reconnects()
        w.step()

    @precondition(lambda self: self.w.broker_up)
    @rule()
    def broker_saves(self) -> None:
        self._step()
        self.w.persisted = dict(self.w.retained)

    # -- the client ------------------------------------------------------------------------
    @rule()
    def client_restarts(self) -> None:
        """The PC reboots (or the service restarts): only the memory file survives."""
        self._step()
        w = self.w
        w.disconnect_client()
        w.start_client()

    @rule()
    def a_new_pc_is_installed(self) -> None:
        """A client with no memory at all (a new PC, a reinstalled one) replaces this one."""
        self._step()
        w = self.w
        w.disconnect_client()
        w.memory.unlink(missing_ok=True)
        self.highest_seq = 0
        w.start_client()

    @precondition(lambda self: self.w.broker_up and self.w.connected)
    @rule()
    def client_link_drops(self) -> None:
        self._step()
        w = self.w
        w.disconnect_client()
        w.step()
        w.connect_client()

    # -- deliveries ------------------------------------------------------------------------
    @precondition(lambda self: self.w.bridge.sent)
    @rule(back=st.integers(0, 6), retained=st.booleans())
    def old_message_delivered_again(self, back: int, retained: bool) -> None:
        """A duplicate (back 0), a re-send out of order, or an old retained copy."""
        self._step()
        w = self.w
        sent = w.bridge.sent[-1 - min(back, len(w.bridge.sent) - 1)]
        w.deliver(TOPICS.mains, sent.payload, sent, retained=retained)
        w.step()

    @precondition(lambda self: self.w.bridge.running and len(self.w.bridge.sent) > 1)
    @rule(back=st.integers(1, 3))
    def flaky_link_resends(self, back: int) -> None:
        """PUBACKs lost, then a drop: ``offline``/``online``, and paho re-sends older messages."""
        self._step()
        w = self.w
        w.publish_status(False)
        w.publish_status(True)
        for sent in w.bridge.sent[-1 - min(back, len(w.bridge.sent) - 1) :]:
            w.deliver(TOPICS.mains, sent.payload, sent, retained=False)
        w.step()

    @precondition(lambda self: self.w.broker_up)
    @rule(online=st.booleans())
    def stale_status_delivered(self, online: bool) -> None:
        """A ``status`` that describes the past (a broker's memory, a twin's will)."""
        self._step()
        w = self.w
        w.deliver(TOPICS.status, b"online" if online else b"offline", None, retained=True)
        w.step()

    @invariant()
    def what_the_client_believes_never_goes_back_in_time(self) -> None:
        """The announcement the client acts on only moves forward, even across restarts."""
        if self.world is None or self.world.runtime is None:
            return
        seq = self.world.runtime.tracker.view().bridges[0].seq
        if seq is not None:
            assert seq >= self.highest_seq, f"acted on seq {seq} after {self.highest_seq}"
            self.highest_seq = seq

    @invariant()
    def every_shutdown_was_justified(self) -> None:
        if self.world is not None:
            self.world.raise_violations()
            times = self.world.shutdowns
            assert times == sorted(times)


MEMORY_DIR: list[str] = [""]


@pytest.fixture
def memory_dir(tmp_path: Path) -> Path:
    MEMORY_DIR[0] = str(tmp_path)
    return tmp_path


def test_client_intake_and_policy_under_interleavings(
    memory_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    del memory_dir
    for key in STATS:
        STATS[key] = 0
    options: dict[str, Any] = {
        "max_examples": MAX_EXAMPLES,
        "stateful_step_count": STEPS,
        "deadline": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
        "database": None,
    }
    test_case = seed(SEED)(ClientUnderInterleavings.TestCase)
    test_case.settings = settings(**options)
    with capsys.disabled():
        print(f"\nproperty suite: PROPERTY_SEED={SEED}, {MAX_EXAMPLES} examples of {STEPS} steps")
    test_case().runTest()
    with capsys.disabled():
        print(
            f"property suite (PROPERTY_SEED={SEED}): {STATS['examples']} examples, "
            f"{STATS['steps']} steps, {STATS['deliveries']} deliveries, "
            f"{STATS['shutdowns']} shutdowns checked"
        )
    assert STATS["examples"] >= MAX_EXAMPLES * 0.9
    assert STATS["shutdowns"] > 0  # the search does reach the shutdowns it judges
