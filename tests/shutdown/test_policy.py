"""``decide``: one table row per rule of the policy, on an injected monotonic ``now``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from bridge.config import parse_client_config
from bridge.model import MainsState
from bridge.shutdown.policy import Cause, Phase, PolicySettings, decide
from bridge.shutdown.view import BridgeView, View

ON, OFF, UNKNOWN = MainsState.ON, MainsState.OFF, MainsState.UNKNOWN
T0 = 1000.0  # client start, monotonic
S = PolicySettings(delay=600, lost_warning_after=120, remote_cancel_window=60, warnings=(300, 60))


def on(device: str = "a", **kw: object) -> BridgeView:
    base = BridgeView(device, ON, 1, T0 - 50, T0, True, None, True)
    return replace(base, **kw)  # type: ignore[arg-type]


def off(device: str = "a", start: float = T0, **kw: object) -> BridgeView:
    """An outage announcement (seq 2) received live."""
    base = BridgeView(device, OFF, 2, start, T0 + 1, True, None, True, live_seq=2)
    return replace(base, **kw)  # type: ignore[arg-type]


def unknown(device: str = "a") -> BridgeView:
    return BridgeView(device)


@dataclass
class Row:
    name: str
    bridges: tuple[BridgeView, ...]
    now: float
    phase: Phase
    deadline: float | None = None
    cause: Cause | None = None
    notices: tuple[str, ...] = ()
    next_check: float | None = None
    settings: PolicySettings = S
    connected: bool = True
    disconnected_since: float | None = None
    remote_at: float | None = None
    supplied: int | None = None
    extra: dict[str, object] = field(default_factory=dict)


ROWS = [
    # -- rule 1: never heard from
    Row("unknown bridge, within grace", (unknown(),), T0 + 5, Phase.IDLE, next_check=T0 + 15),
    Row(
        "unknown bridge after grace: no decision, warn",
        (unknown(),),
        T0 + 3600,
        Phase.IDLE,
        notices=("never_heard",),
        supplied=1,
    ),
    Row(
        "retained outage from a bridge never seen alive: old news, no decision",
        (off(start=T0 - 5000, seen_alive=False, live_seq=None, online=False, offline_since=T0),),
        T0 + 3600,
        Phase.IDLE,
        notices=("stale",),
    ),
    Row(
        "retained outage with a retained status online (a broker's memory): old news",
        (off(start=T0 - 5000, seen_alive=False, live_seq=None, online=True),),
        T0 + 3600,
        Phase.IDLE,
        notices=("stale",),
        supplied=1,
    ),
    Row(
        "a live bridge whose newer outage announcement came retained only: old news",
        (off(start=T0 - 5000, seq=3, live_seq=2),),
        T0 + 3600,
        Phase.IDLE,
        notices=("stale",),
        supplied=1,
    ),
    Row(
        "bridge restarted during a live outage and confirming: lost, original deadline",
        (off(start=T0, confirming_since=T0 + 100, last_heard=T0 + 100),),
        T0 + 200,
        Phase.COUNTING,
        deadline=T0 + 600,
        cause=Cause.OUTAGE,
        notices=("lost_in_outage",),
        settings=replace(S, silence_after=1000),
        next_check=T0 + 300,
    ),
    Row(
        "bridge restarted during a live outage and confirming, shutdown_now: at once",
        (off(start=T0, confirming_since=T0 + 100, last_heard=T0 + 100),),
        T0 + 200,
        Phase.SHUTDOWN,
        deadline=T0 + 100,
        cause=Cause.LOST_DURING_OUTAGE,
        notices=("lost_in_outage",),
        settings=replace(S, silence_after=1000, on_lost_during_outage="shutdown_now"),
    ),
    # -- rule 2/3: on and off
    Row("mains on", (on(),), T0 + 10, Phase.IDLE, next_check=T0 + 90, supplied=1),
    Row(
        "outage within delay: counting, wakes for the 300 s warning",
        (off(start=T0, last_heard=T0 + 95),),
        T0 + 100,
        Phase.COUNTING,
        deadline=T0 + 600,
        cause=Cause.OUTAGE,
        next_check=T0 + 300,
        supplied=0,
        settings=replace(S, silence_after=1000),
    ),
    Row(
        "outage after the 300 s mark wakes for the 60 s mark",
        (off(start=T0, last_heard=T0 + 290),),
        T0 + 320,
        Phase.COUNTING,
        deadline=T0 + 600,
        cause=Cause.OUTAGE,
        next_check=T0 + 380,
    ),
    Row(
        "outage after the last mark wakes at the deadline",
        (off(start=T0, last_heard=T0 + 550),),
        T0 + 560,
        Phase.COUNTING,
        deadline=T0 + 600,
        cause=Cause.OUTAGE,
        next_check=T0 + 600,
    ),
    Row(
        "outage reaches its deadline: shut down",
        (off(start=T0, last_heard=T0 + 590),),
        T0 + 600,
        Phase.SHUTDOWN,
        deadline=T0 + 600,
        cause=Cause.OUTAGE,
    ),
    Row(
        "client started mid-outage: deadline from the outage's real start",
        (off(start=T0 - 400, last_heard=T0 + 1),),
        T0 + 2,
        Phase.COUNTING,
        deadline=T0 + 200,
        cause=Cause.OUTAGE,
    ),
    Row(
        "client started after the deadline had passed: shut down at once",
        (off(start=T0 - 900, last_heard=T0 + 1),),
        T0 + 1,
        Phase.SHUTDOWN,
        deadline=T0 - 300,
        cause=Cause.OUTAGE,
    ),
    Row(
        "zero delay shuts down on the announcement",
        (off(start=T0),),
        T0 + 1,
        Phase.SHUTDOWN,
        deadline=T0,
        settings=replace(S, delay=0),
    ),
    # -- rule 4: several supplies
    Row(
        "two supplies, min 1, one out: the other still feeds us",
        (off("a", start=T0), on("b")),
        T0 + 700,
        Phase.IDLE,
        settings=replace(S, min_supplies=1),
        supplied=1,
        extra={"ignore_notices": True},
    ),
    Row(
        "two supplies, min 1, both out: counts from the later outage",
        (off("a", start=T0), off("b", start=T0 + 200, last_heard=T0 + 650)),
        T0 + 700,
        Phase.COUNTING,
        deadline=T0 + 800,
        cause=Cause.OUTAGE,
        settings=replace(S, min_supplies=1),
        extra={"ignore_notices": True},
    ),
    Row(
        "two supplies, min 2, one out: counts from its start",
        (off("a", start=T0, last_heard=T0 + 550), on("b", last_heard=T0 + 550)),
        T0 + 560,
        Phase.COUNTING,
        deadline=T0 + 600,
        settings=replace(S, min_supplies=2),
    ),
    Row(
        "three supplies, min 2, two out: counts from the second outage",
        (
            off("a", start=T0, last_heard=T0 + 400),
            off("b", start=T0 + 100, last_heard=T0 + 400),
            on("c", last_heard=T0 + 400),
        ),
        T0 + 410,
        Phase.COUNTING,
        deadline=T0 + 700,
        settings=replace(S, min_supplies=2),
    ),
    Row(
        "two supplies, min 1, one out, other never heard: no decision",
        (off("a", start=T0), unknown("b")),
        T0 + 5000,
        Phase.IDLE,
        notices=("lost_in_outage", "never_heard"),
        settings=replace(S, min_supplies=1),
        supplied=1,
    ),
    # -- rule 5: lost during an outage
    Row(
        "bridge offline during outage, continue: original deadline",
        (off(start=T0, online=False, offline_since=T0 + 10, last_heard=T0 + 9),),
        T0 + 60,
        Phase.COUNTING,
        deadline=T0 + 600,
        cause=Cause.OUTAGE,
        notices=("lost_in_outage",),
    ),
    Row(
        "bridge offline during outage, continue: shuts down at the original deadline",
        (off(start=T0, online=False, offline_since=T0 + 10, last_heard=T0 + 9),),
        T0 + 600,
        Phase.SHUTDOWN,
        deadline=T0 + 600,
        notices=("lost_in_outage",),
    ),
    Row(
        "broker lost during outage, continue: original deadline",
        (off(start=T0, last_heard=T0 + 9),),
        T0 + 60,
        Phase.COUNTING,
        deadline=T0 + 600,
        notices=("broker_lost", "lost_in_outage"),
        connected=False,
        disconnected_since=T0 + 10,
    ),
    Row(
        "bridge offline during outage, shutdown_now: at once",
        (off(start=T0, online=False, offline_since=T0 + 10, last_heard=T0 + 9),),
        T0 + 10,
        Phase.SHUTDOWN,
        deadline=T0 + 10,
        cause=Cause.LOST_DURING_OUTAGE,
        notices=("lost_in_outage",),
        settings=replace(S, on_lost_during_outage="shutdown_now"),
    ),
    Row(
        "broker lost during outage, shutdown_now: at once",
        (off(start=T0, last_heard=T0 + 9),),
        T0 + 12,
        Phase.SHUTDOWN,
        deadline=T0 + 10,
        cause=Cause.LOST_DURING_OUTAGE,
        notices=("broker_lost", "lost_in_outage"),
        settings=replace(S, on_lost_during_outage="shutdown_now"),
        connected=False,
        disconnected_since=T0 + 10,
    ),
    Row(
        "silent bridge during outage is lost after silence_after (shutdown_now)",
        (off(start=T0, last_heard=T0 + 10),),
        T0 + 100,
        Phase.SHUTDOWN,
        deadline=T0 + 100,
        cause=Cause.LOST_DURING_OUTAGE,
        notices=("lost_in_outage",),
        settings=replace(S, on_lost_during_outage="shutdown_now"),
    ),
    Row(
        "refreshing bridge during outage is not lost (shutdown_now): wakes at silence",
        (off(start=T0, last_heard=T0 + 40),),
        T0 + 50,
        Phase.COUNTING,
        deadline=T0 + 600,
        cause=Cause.OUTAGE,
        next_check=T0 + 130,
        settings=replace(S, on_lost_during_outage="shutdown_now"),
    ),
    Row(
        "shutdown_now, lost outage bridge but another supply on (min 1): no shutdown",
        (off("a", start=T0, online=False, offline_since=T0 + 5), on("b", last_heard=T0 + 9)),
        T0 + 10,
        Phase.IDLE,
        notices=("lost_in_outage",),
        settings=replace(S, on_lost_during_outage="shutdown_now"),
    ),
    Row(
        "shutdown_now, loss before the condition began: shuts down when it begins",
        (
            off("a", start=T0, online=False, offline_since=T0 + 5, last_heard=T0 + 4),
            off("b", start=T0 + 20, last_heard=T0 + 20),
        ),
        T0 + 20,
        Phase.SHUTDOWN,
        deadline=T0 + 20,
        cause=Cause.LOST_DURING_OUTAGE,
        notices=("lost_in_outage",),
        settings=replace(S, on_lost_during_outage="shutdown_now"),
    ),
    # -- rule 2: lost while on mains
    Row(
        "bridge on mains goes offline: no warning yet",
        (on(online=False, offline_since=T0 + 10, last_heard=T0 + 9),),
        T0 + 60,
        Phase.IDLE,
        next_check=T0 + 99,
    ),
    Row(
        "bridge on mains offline for long: warn, never shut down",
        (on(online=False, offline_since=T0 + 10, last_heard=T0 + 9),),
        T0 + 86400,
        Phase.IDLE,
        notices=("lost_on_mains",),
    ),
    Row(
        "broker lost while on mains: warn after the grace, never shut down",
        (on(last_heard=T0 + 9),),
        T0 + 86400,
        Phase.IDLE,
        notices=("broker_lost", "lost_on_mains"),
        connected=False,
        disconnected_since=T0 + 10,
    ),
    Row(
        "broker lost while on mains, within the grace: wake for the warning",
        (on(last_heard=T0 + 9),),
        T0 + 60,
        Phase.IDLE,
        notices=("broker_lost",),
        next_check=T0 + 99,
        connected=False,
        disconnected_since=T0 + 10,
    ),
    Row(
        "silent bridge on mains: warn after silence + grace, never shut down",
        (on(last_heard=T0),),
        T0 + 86400,
        Phase.IDLE,
        notices=("lost_on_mains",),
        settings=replace(S, on_lost_during_outage="shutdown_now"),
    ),
    Row(
        "silent bridge on mains: silent but within the grace",
        (on(last_heard=T0),),
        T0 + 100,
        Phase.IDLE,
        next_check=T0 + 120,
    ),
    # -- rule 6: remote shutdown
    Row(
        "remote shutdown: counts the cancel window",
        (on(last_heard=T0 + 9),),
        T0 + 10,
        Phase.COUNTING,
        deadline=T0 + 65,
        cause=Cause.REMOTE,
        remote_at=T0 + 5,
        next_check=T0 + 65,
    ),
    Row(
        "remote shutdown after the cancel window: shut down",
        (on(last_heard=T0 + 60),),
        T0 + 65,
        Phase.SHUTDOWN,
        deadline=T0 + 65,
        cause=Cause.REMOTE,
        remote_at=T0 + 5,
    ),
    Row(
        "remote shutdown later than the outage deadline: the outage wins",
        (off(start=T0 - 590),),
        T0 + 2,
        Phase.COUNTING,
        deadline=T0 + 10,
        cause=Cause.OUTAGE,
        remote_at=T0,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_decide(row: Row) -> None:
    view = View(
        bridges=row.bridges,
        started_at=T0,
        connected=row.connected,
        disconnected_since=row.disconnected_since,
        remote_requested_at=row.remote_at,
    )
    decision = decide(view, row.now, row.settings)
    assert decision.phase is row.phase, decision.reason
    assert decision.deadline == (pytest.approx(row.deadline) if row.deadline else None)
    if row.cause is not None:
        assert decision.cause is row.cause
    if not row.extra.get("ignore_notices"):
        assert tuple(sorted(n.code for n in decision.notices)) == tuple(sorted(row.notices))
    if row.next_check is not None:
        assert decision.next_check == pytest.approx(row.next_check)
    if row.supplied is not None:
        assert decision.supplied == row.supplied
    if decision.phase is Phase.COUNTING:
        assert decision.seconds_left == pytest.approx(decision.deadline - row.now)  # type: ignore[operator]
    if decision.next_check is not None:
        assert decision.next_check > row.now


def test_deadline_does_not_move_with_the_time_of_asking() -> None:
    """The deadline is a fact about the outage, not about when decide() is called."""
    view = View(bridges=(off(start=T0 - 123.5),), started_at=T0, connected=True)
    deadlines = {decide(view, T0 + t, S).deadline for t in (0, 1, 17.25, 400)}
    assert deadlines == {T0 - 123.5 + 600}


def test_a_restored_supply_cancels_the_countdown() -> None:
    counting = decide(View((off(start=T0),), T0, connected=True), T0 + 590, S)
    restored = decide(View((on(seq=3, state_start=T0 + 595),), T0, connected=True), T0 + 595, S)
    assert counting.phase is Phase.COUNTING
    assert restored.phase is Phase.IDLE
    assert restored.deadline is None


def test_lost_on_mains_never_shuts_down_at_any_time() -> None:
    lost = on(online=False, offline_since=T0, last_heard=T0)
    for settings in (S, replace(S, on_lost_during_outage="shutdown_now", delay=0)):
        for dt in (0, 1, 100, 10_000, 10**7):
            for connected in (True, False):
                view = View((lost,), T0, connected=connected, disconnected_since=T0)
                assert decide(view, T0 + dt, settings).phase is Phase.IDLE


def test_settings_from_config() -> None:
    config = parse_client_config(
        "bridges: [a, b]\nshutdown:\n  delay: 90s\n  min_supplies: 2\n"
        "  on_lost_during_outage: shutdown_now\n  warnings: [10s, 60s, 10s]\n"
    )
    s = PolicySettings.from_config(config.shutdown)
    assert s.delay == 90
    assert s.min_supplies == 2
    assert s.on_lost_during_outage == "shutdown_now"
    assert s.warnings == (60.0, 10.0)


def test_default_settings_are_the_configuration_defaults() -> None:
    assert PolicySettings() == PolicySettings.from_config(
        parse_client_config("bridges: [a]").shutdown
    )
    assert (PolicySettings().delay, PolicySettings().warnings) == (600.0, (300.0, 60.0))


def test_unknown_state_counts_as_unknown() -> None:
    """A bridge view with no announcement is never an outage, whatever else it says."""
    odd = BridgeView("a", UNKNOWN, None, T0 - 10_000, None, False, T0, True)
    decision = decide(View((odd,), T0, connected=True), T0 + 10**6, replace(S, delay=0))
    assert decision.phase is Phase.IDLE
