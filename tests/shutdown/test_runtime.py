"""The runtime on a manual clock: every scenario of the policy, end to end without a network."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest

from bridge.mqtt.contract import ClientTopics, client_node_id
from bridge.shutdown.runtime import RETRY_AFTER
from tests.shutdown.payloads import KEY
from tests.shutdown.sim import Sim


def online(sim: Sim) -> Sim:
    sim.connect()
    sim.status(True, retained=True)
    sim.mains("on", 1, elapsed=3600, retained=True)
    return sim


def test_outage_longer_than_the_delay_shuts_down_once_at_the_deadline() -> None:
    sim = online(Sim("delay: 600"))
    sim.advance(10)
    sim.mains("off", 2, elapsed=0.5)  # confirmation window: began 0.5 s before publishing
    deadline = sim.now - 0.5 + 600
    sim.advance(599)
    assert sim.shutdown_times == []
    sim.advance(60)
    assert sim.shutdown_times == [pytest.approx(deadline)]
    # more time and refreshes of the same outage: still exactly one action
    sim.mains("off", 2, elapsed=700)
    sim.advance(3600)
    assert len(sim.shutdown_times) == 1
    assert sim.last_state()["state"] == "shutting_down"


def test_a_shutdown_command_that_returned_is_not_a_silent_latch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The harmless test command (`[logger, powerbridge test]`) returns and we are still up."""
    sim = online(Sim("delay: 600\nwarnings: [10]"))
    with caplog.at_level(logging.WARNING):
        sim.mains("off", 2)
        sim.advance(601)
        assert len(sim.shutdown_times) == 1
        assert "has returned with exit 0" in caplog.text
        assert sim.last_state()["state"] == "shutting_down"
        sim.advance(600)  # still the same outage: not run again
        assert len(sim.shutdown_times) == 1
        sim.mains("on", 3)
        assert sim.last_state()["state"] == "idle"
        assert sim.last_state()["armed"] is True
        assert "watching again" in caplog.text
        # the next outage is handled like the first: warned, then really run
        sim.mains("off", 4)
        warned = len(sim.runner.warnings())
        sim.advance(601)
    assert len(sim.runner.warnings()) == warned + 1
    assert len(sim.shutdown_times) == 2


def test_a_failed_shutdown_is_retried_while_due_and_logged_with_its_exit_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = online(Sim("delay: 600\nwarnings: [10]"))
    sim.runner.returncode = 1  # e.g. a poweroff inhibited or refused
    with caplog.at_level(logging.WARNING):
        sim.mains("off", 2)
        sim.advance(601)
        assert len(sim.shutdown_times) == 1
        assert sim.last_state()["error"] == "no shutdown command succeeded"
        assert "shutdown attempt 1 failed" in caplog.text
        assert "exit 1" in caplog.text
        warned = len(sim.runner.warnings())
        sim.advance(RETRY_AFTER * 3 + 1)
        assert len(sim.shutdown_times) == 4  # every RETRY_AFTER while the outage lasts
        assert len(sim.runner.warnings()) == warned  # no warnings of attempts in between
        sim.runner.returncode = 0
        sim.advance(RETRY_AFTER)
        assert len(sim.shutdown_times) == 5
        sim.advance(RETRY_AFTER * 3)
        assert len(sim.shutdown_times) == 5  # it worked: no more attempts
    times = sim.shutdown_times
    assert [round(b - a) for a, b in itertools.pairwise(times)] == [60, 60, 60, 60]


def test_restore_before_the_deadline_cancels(caplog: pytest.LogCaptureFixture) -> None:
    sim = online(Sim("delay: 600"))
    with caplog.at_level(logging.WARNING):
        sim.mains("off", 2)
        sim.advance(599)
        sim.mains("on", 3)
        sim.advance(3600)
    assert sim.shutdown_times == []
    assert "countdown started: shutdown in 600 s" in caplog.text
    assert "countdown cancelled" in caplog.text
    assert sim.last_state()["state"] == "idle"


def test_a_hundred_flaps_shorter_than_the_delay_never_shut_down() -> None:
    sim = online(Sim("delay: 60"))
    seq = 1
    for _ in range(100):
        seq += 1
        sim.mains("off", seq)
        sim.advance(59)  # 100 × 59 s off in total: far more than the delay, never in one go
        seq += 1
        sim.mains("on", seq)
        sim.advance(1)
    sim.advance(600)
    assert sim.shutdown_times == []


def test_client_started_mid_outage_uses_the_outages_real_start() -> None:
    sim = Sim("delay: 600")
    sim.connect()
    sim.status(True, retained=True)
    sim.mains("off", 7, elapsed=400, retained=True)  # the outage began 400 s ago
    start = sim.now
    sim.advance(10)
    # a retained report (and a retained `online`) describes the past: no countdown yet
    assert sim.runtime.phase_name == "idle"
    sim.mains("off", 7, elapsed=410)  # the bridge's next refresh, live: its count is trusted
    assert sim.runtime.phase_name == "counting"
    sim.advance(188)
    assert sim.shutdown_times == []
    sim.advance(3)
    assert sim.shutdown_times == [pytest.approx(start + 200)]


def test_a_later_refresh_corrects_an_old_retained_message() -> None:
    """The retained copy is up to 30 s old; the next refresh gives the earlier start."""
    sim = Sim("delay: 600")
    sim.connect()
    sim.status(True, retained=True)
    sim.mains("off", 7, elapsed=100, retained=True)  # published 25 s ago, at 100 s
    first = sim.now
    sim.advance(5)
    sim.mains("off", 7, elapsed=130)  # the refresh: 130 s now, so it began at first - 125
    sim.advance(600)
    assert sim.shutdown_times == [pytest.approx(first - 125 + 600)]


@pytest.mark.parametrize("jump", [3600.0, -3600.0])
def test_wall_clock_jumps_do_not_move_the_deadline(jump: float) -> None:
    sim = online(Sim("delay: 600", key=KEY))
    sim.mains("off", 2)
    deadline = sim.now + 600
    sim.advance(100)
    sim.clock.jump_wall(jump)  # this computer's clock steps
    sim.advance(100)
    sim.mains("off", 2, elapsed=200, bridge_wall_offset=-jump)  # the bridge's clock did not
    sim.advance(100)
    sim.mains("off", 2, elapsed=300, bridge_wall_offset=-jump + 1800)  # ...now the bridge's does
    assert sim.runtime.rejections.total == 0
    sim.advance(299)
    assert sim.shutdown_times == []
    sim.advance(2)
    assert sim.shutdown_times == [pytest.approx(deadline)]


def test_broker_lost_mid_outage_continues_to_the_original_deadline() -> None:
    sim = online(Sim("delay: 600"))
    sim.mains("off", 2)
    deadline = sim.now + 600
    sim.advance(100)
    sim.disconnect()
    sim.advance(499)
    assert sim.shutdown_times == []
    sim.advance(2)
    assert sim.shutdown_times == [pytest.approx(deadline)]


def test_bridge_offline_mid_outage_with_shutdown_now_shuts_down_at_once() -> None:
    sim = online(Sim("delay: 600\non_lost_during_outage: shutdown_now"))
    sim.mains("off", 2)
    sim.refreshing(100)
    assert sim.shutdown_times == []
    sim.status(False)
    assert sim.shutdown_times == [pytest.approx(sim.now)]


def test_broker_lost_on_mains_never_shuts_down_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = online(Sim("delay: 60\nlost_warning_after: 120\non_lost_during_outage: shutdown_now"))
    with caplog.at_level(logging.WARNING):
        sim.disconnect()
        sim.advance(119)
        assert "unreachable" not in caplog.text
        sim.advance(2)
        assert "bridge test-bridge (last known: mains on) is unreachable" in caplog.text
        sim.advance(86400)
    assert sim.shutdown_times == []


def test_bridge_never_heard_from_is_reported_and_never_acted_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = Sim("delay: 0")
    with caplog.at_level(logging.WARNING):
        sim.connect()
        sim.advance(86400)
    assert sim.shutdown_times == []
    assert "has never been heard from" in caplog.text
    assert caplog.text.count("has never been heard from") == 1  # logged once, not every wake


def test_retained_outage_of_a_dead_bridge_is_not_acted_on() -> None:
    sim = Sim("delay: 600")
    sim.connect()
    sim.status(False, retained=True)
    sim.mains("off", 9, elapsed=86400, retained=True)
    sim.advance(3600)
    assert sim.shutdown_times == []
    assert "stale" in sim.last_state()["notices"]


def test_remote_shutdown_with_cancel_window() -> None:
    extra = "allow_remote: true\nremote_cancel_window: 60"
    sim = online(Sim(f"delay: 600\n{extra}", key=KEY))
    sim.command("shutdown_now", args={"reason": "UPS maintenance"})
    requested = sim.now
    sim.advance(30)
    assert sim.last_state()["cause"] == "remote"
    sim.command("cancel")
    sim.advance(3600)
    assert sim.shutdown_times == []
    sim.command("shutdown_now", target="all")
    requested = sim.now
    sim.advance(61)
    assert sim.shutdown_times == [pytest.approx(requested + 60)]


def test_a_remote_request_is_obeyed_once_even_in_dry_run() -> None:
    sim = online(Sim("delay: 600\nallow_remote: true\nremote_cancel_window: 10\ndry_run: true",
                     key=KEY))  # fmt: skip
    sim.command("shutdown_now")
    sim.advance(11)
    assert sim.runtime.shutdowns == 1
    sim.advance(60)
    assert sim.runtime.shutdowns == 1
    assert sim.last_state()["state"] == "idle"  # dry run: ready for the next time
    sim.command("shutdown_now")
    sim.advance(11)
    assert sim.runtime.shutdowns == 2


def test_remote_commands_are_refused_unless_enabled() -> None:
    sim = online(Sim("delay: 600", key=KEY))
    sim.command("shutdown_now")
    sim.advance(3600)
    assert sim.shutdown_times == []
    assert sim.runtime.rejections.counts == {"remote_disabled": 1}


def test_users_are_warned_once_at_each_mark() -> None:
    sim = online(Sim("delay: 600\nwarnings: [5m, 1m]"))
    sim.mains("off", 2)
    start = sim.now
    sim.advance(700)
    times = [t - start for t, _ in sim.runner.warnings()]
    assert times == [pytest.approx(300), pytest.approx(540)]
    _, first = sim.runner.warnings()[0]
    assert first.stdin is not None
    assert "shut down in 5 min" in first.stdin


def test_a_mark_already_passed_at_the_start_warns_once() -> None:
    sim = online(Sim("delay: 30\nwarnings: [5m, 1m]"))
    sim.mains("off", 2)
    sim.advance(40)
    assert len(sim.runner.warnings()) == 1


def test_dry_run_logs_and_rearms(caplog: pytest.LogCaptureFixture) -> None:
    sim = online(Sim("delay: 10\ndry_run: true\nwarnings: []"))
    with caplog.at_level(logging.WARNING):
        sim.mains("off", 2)
        sim.advance(11)
        sim.mains("on", 3)
        sim.advance(1)
        sim.mains("off", 4)
        sim.advance(11)
    assert sim.runner.calls == []
    assert sim.runtime.shutdowns == 2
    assert caplog.text.count("dry run: would shut down now") == 2
    assert sim.last_state()["armed"] is False


def test_state_and_discovery_are_published() -> None:
    sim = online(Sim("delay: 600"))
    topics = ClientTopics("powerbridge", "pc1")
    assert sim.last_state()["armed"] is False  # retained messages only: not seen alive yet
    sim.mains("on", 1, elapsed=3601)  # a live refresh
    state = sim.last_state()
    assert state["v"] == 1
    assert state["state"] == "idle"
    assert state["armed"] is True
    assert state["seconds_left"] is None
    assert state["bridges"] == ["test-bridge"]
    assert state["error"] is None
    assert state["supplies"]["test-bridge"]["mains"] == "on"
    assert state["supplies"]["test-bridge"]["online"] is True
    sim.mains("off", 2)
    sim.advance(10)
    state = sim.last_state()
    assert state["state"] == "counting"
    assert state["cause"] == "outage"
    assert state["seconds_left"] == pytest.approx(590, abs=5)
    assert state["deadline"] is not None
    assert state["supplies"]["test-bridge"]["mains"] == "off"
    assert all(m.retain and m.qos == 1 for m in sim.publisher.on(topics.state))
    node = client_node_id("pc1")
    discovery = {m.topic: m.json() for m in sim.publisher.messages if m.topic.endswith("/config")}
    assert set(discovery) == {
        f"homeassistant/sensor/{node}/shutdown_in/config",
        f"homeassistant/binary_sensor/{node}/armed/config",
    }
    sensor = discovery[f"homeassistant/sensor/{node}/shutdown_in/config"]
    assert sensor["unique_id"] == f"{node}_shutdown_in"
    # The entity id for Home Assistant 2025.10+ (default_entity_id) and before (object_id).
    assert sensor["default_entity_id"] == "sensor.client_pc1_shutdown_in"
    assert sensor["object_id"] == "client-pc1_shutdown_in"
    armed = discovery[f"homeassistant/binary_sensor/{node}/armed/config"]
    assert armed["default_entity_id"] == "binary_sensor.client_pc1_armed"
    assert sensor["device_class"] == "duration"
    assert sensor["state_topic"] == topics.state
    assert sensor["availability"][0]["topic"] == topics.status


def test_state_is_republished_while_counting_but_not_while_idle() -> None:
    sim = online(Sim("delay: 600"))
    topic = ClientTopics("powerbridge", "pc1").state
    sim.mains("on", 1, elapsed=3601)  # live: armed from here on
    before = len(sim.publisher.on(topic))
    sim.refreshing(600)
    assert len(sim.publisher.on(topic)) == before  # idle: only changes are published
    sim.mains("off", 2)
    sim.refreshing(60)
    assert len(sim.publisher.on(topic)) - before >= 12  # about every 5 s


def test_bad_input_is_counted_and_shown() -> None:
    sim = online(Sim("delay: 0"))
    sim.deliver("powerbridge/test-bridge/mains", b"garbage")
    sim.deliver("powerbridge/test-bridge/status", b"maybe")
    sim.deliver("powerbridge/test-bridge/mains", b'{"v":1,"state":"off"}')
    sim.advance(1)
    assert sim.shutdown_times == []
    assert sim.runtime.rejections.counts == {"malformed": 3}
    assert sim.last_state()["rejected"] == 3


def test_unsigned_mains_rejected_when_a_key_is_set() -> None:
    sim = Sim("delay: 0", key=KEY)
    sim.connect()
    sim.status(True)
    sim.key = None  # the "bridge" now sends unsigned messages
    sim.mains("off", 1)
    sim.advance(10)
    assert sim.shutdown_times == []
    assert sim.runtime.rejections.counts == {"unsigned": 1}


def test_min_supplies_across_two_bridges() -> None:
    sim = Sim("delay: 100\nmin_supplies: 1", bridges=("a", "b"))
    sim.connect()
    for device in ("a", "b"):
        sim.status(True, device=device, retained=True)
        sim.mains("on", 1, device=device, retained=True)
    sim.mains("off", 2, device="a")
    sim.advance(200)
    assert sim.shutdown_times == []
    sim.mains("off", 2, device="b")
    second = sim.now
    sim.mains("off", 2, device="a", elapsed=200)
    sim.advance(101)
    assert sim.shutdown_times == [pytest.approx(second + 100)]


def test_home_assistant_restart_gets_discovery_and_state_again() -> None:
    sim = online(Sim("delay: 600"))
    before = len(sim.publisher.messages)
    sim.deliver("homeassistant/status", b"online", retained=True)  # the retained copy: no
    sim.advance(5)
    assert len(sim.publisher.messages) == before
    sim.deliver("homeassistant/status", b"online")
    assert len(sim.publisher.messages) == before  # not in the same instant...
    sim.advance(3.1)
    topics = [m.topic for m in sim.publisher.messages[before:]]  # ...but within 3 s
    assert sorted(topics) == [
        "homeassistant/binary_sensor/client-pc1/armed/config",
        "homeassistant/sensor/client-pc1/shutdown_in/config",
        "powerbridge/clients/pc1/state",
    ]


@pytest.mark.realtime
def test_the_loop_survives_a_failing_publisher_and_still_shuts_down() -> None:
    """A bug or a broken connection object must not end the watch."""
    import threading
    import time
    from datetime import UTC, datetime

    from bridge.shutdown.actions import Actions
    from bridge.shutdown.events import Connected, Message, Stop
    from bridge.shutdown.runtime import ClientRuntime
    from tests.shutdown.payloads import mains
    from tests.shutdown.sim import SHUTDOWN_ARGV, RecordingRunner

    class RealClock:
        def monotonic(self) -> float:
            return time.monotonic()

        def utcnow(self) -> datetime:
            return datetime.now(UTC)

    class BrokenPublisher:
        calls = 0

        def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
            BrokenPublisher.calls += 1
            raise RuntimeError("publisher is broken")

    template = Sim("delay: 500ms\nwarnings: []")
    clock = RealClock()
    runner = RecordingRunner(clock)  # type: ignore[arg-type]
    runtime = ClientRuntime(
        template.config,
        clock=clock,
        actions=Actions(template.config.shutdown, system="linux", runner=runner),
        client_id="pc1",
        publisher=BrokenPublisher(),
    )
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    runtime.submit(Connected(clock.monotonic()))
    runtime.submit(Message("powerbridge/test-bridge/status", b"online", True, clock.monotonic(),
                           clock.utcnow()))  # fmt: skip
    start = clock.monotonic()
    runtime.submit(
        Message("powerbridge/test-bridge/mains", mains("off", 1), False, start, clock.utcnow())
    )
    deadline = time.monotonic() + 5
    while not runner.shutdown_times and time.monotonic() < deadline:
        time.sleep(0.02)
    runtime.submit(Stop())
    thread.join(5)
    assert not thread.is_alive()
    assert BrokenPublisher.calls > 0
    assert [inv.argv for _, inv in runner.calls] == [SHUTDOWN_ARGV]
    assert abs(runner.shutdown_times[0] - (start + 0.5)) < 1.0


# -- liveness, restarts and order ---------------------------------------------------------


def test_a_restarted_bridge_re_announcing_an_ended_outage_is_not_obeyed() -> None:
    """Issue 15, first reproduction: the bridge restarts after the mains came back."""
    sim = online(Sim("delay: 20"))
    sim.mains("off", 2, elapsed=0.5)
    sim.advance(5)
    sim.status(False)  # the bridge stops; the mains returns while it is down
    sim.advance(60)  # (counted on as "lost in an outage": that is the documented rule)
    assert len(sim.shutdown_times) == 1
    fresh = Sim("delay: 20")  # ...and a PC booting now starts its client
    fresh.connect()
    fresh.status(True, retained=True)
    fresh.mains("off", 2, elapsed=29.9, retained=True)
    fresh.advance(20)
    fresh.mains("unknown", 3, boot="1234567812345678")  # the restarted bridge confirms
    fresh.advance(2)
    fresh.mains("on", 4, boot="1234567812345678", elapsed=2)
    fresh.advance(600)
    assert fresh.shutdown_times == []


def test_an_outage_that_goes_on_across_a_bridge_restart_keeps_its_deadline() -> None:
    sim = online(Sim("delay: 120"))
    sim.mains("off", 2, elapsed=0.5)
    start = sim.now - 0.5
    sim.advance(30)
    sim.status(False)
    sim.advance(10)
    sim.status(True)
    sim.mains("unknown", 3, boot="1234567812345678")
    sim.advance(5)
    sim.mains("off", 4, boot="1234567812345678", elapsed=5)  # confirmed since its own start
    sim.advance(200)
    assert sim.shutdown_times == [pytest.approx(start + 120)]


def test_the_replay_memory_survives_a_restart_of_the_client(tmp_path: Path) -> None:
    memory = tmp_path / "memory.json"
    first = online(Sim("delay: 10", memory=memory))
    first.mains("off", 2)
    first.mains("on", 3)
    assert memory.exists()
    second = Sim("delay: 10", memory=memory)
    second.connect()
    second.mains("off", 2, elapsed=1)  # a late re-delivery of this run: ignored
    second.mains("off", 2, elapsed=1, boot="0000aaaa0000aaaa")  # a replay: refused
    second.advance(60)
    assert second.shutdown_times == []
    assert second.runtime.rejections.counts == {"replayed": 1}
    assert not second.runtime.tracker.view().bridges[0].heard


def test_client_forget_deletes_the_replay_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bridge.cli import main

    memory = tmp_path / "memory.json"
    config = tmp_path / "client.yaml"
    config.write_text(f"client:\n  id: pc1\n  memory_file: {memory}\nbridges: [test-bridge]\n")
    sim = online(Sim("delay: 10", memory=memory))
    sim.mains("on", 2)
    assert memory.exists()
    assert main(["client", "forget", "-c", str(config)]) == 0
    assert not memory.exists()
    assert f"deleted {memory}" in capsys.readouterr().out
