"""The watcher's model of a fleet and its rendering: pure, no broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.model import MainsState
from bridge.mqtt.contract import MainsPayload, encode_client_state, encode_state
from bridge.tui.fleet import Fleet, subscriptions
from bridge.tui.render import Screen, client_line, duration, progress_bar, render_fleet
from bridge.watch import parse_broker

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def mains(state: MainsState, seq: int, elapsed: float = 0.5) -> bytes:
    return MainsPayload(
        "rack-a", state, T0, seq, T0, elapsed, boot="0123456789abcdef", n=seq, outage_count=seq
    ).encode()


def test_subscriptions_cover_bridges_and_clients() -> None:
    subs = subscriptions("powerbridge")
    assert "powerbridge/+/mains" in subs
    assert "powerbridge/+/health" in subs
    assert "powerbridge/clients/+/state" in subs
    assert not any(s.endswith("/#") for s in subs)


def test_mains_changes_are_reported_once_per_announcement() -> None:
    fleet = Fleet("powerbridge")
    first = fleet.handle("powerbridge/rack-a/mains", mains(MainsState.ON, 1), 10.0, retained=True)
    assert [(c.kind, c.who, c.value, c.retained) for c in first] == [
        ("mains", "rack-a", "on", True)
    ]
    # The 30 s refresh carries the same seq: not a change.
    assert fleet.handle("powerbridge/rack-a/mains", mains(MainsState.ON, 1, 30.5), 40.0) == []
    off = fleet.handle("powerbridge/rack-a/mains", mains(MainsState.OFF, 2), 50.0)
    assert [c.value for c in off] == ["off"]
    view = fleet.bridges["rack-a"]
    assert view.mains_elapsed(53.0) == 3.5  # elapsed_s 0.5 + 3 s since receipt


def test_a_retained_mains_is_aged_by_its_publishing_time_within_one_refresh() -> None:
    """``watch --once`` sees the broker's retained copy, refreshed every 30 s: its
    ``elapsed_s`` is as old as the copy.  The age comes from the bridge's publishing time
    (``ts``) against this machine's clock, bounded by the refresh period."""
    fleet = Fleet("powerbridge")
    at = T0 + timedelta(seconds=12)  # the copy was published 12 s ago
    fleet.handle(
        "powerbridge/rack-a/mains", mains(MainsState.OFF, 2), 100.0, retained=True, wall=at
    )
    assert fleet.bridges["rack-a"].mains_elapsed(101.0) == 0.5 + 12 + 1
    # A wall clock far off cannot make it more than one refresh off, nor negative.
    far = T0 + timedelta(hours=3)
    fleet.handle(
        "powerbridge/rack-a/mains", mains(MainsState.ON, 3), 200.0, retained=True, wall=far
    )
    assert fleet.bridges["rack-a"].mains_elapsed(200.0) == 0.5 + 30.0
    behind = T0 - timedelta(hours=1)
    fleet.handle(
        "powerbridge/rack-a/mains", mains(MainsState.OFF, 4), 300.0, retained=True, wall=behind
    )
    assert fleet.bridges["rack-a"].mains_elapsed(300.0) == 0.5
    # A live message is current when it arrives, whatever the clocks say.
    fleet.handle("powerbridge/rack-a/mains", mains(MainsState.ON, 5), 400.0, wall=far)
    assert fleet.bridges["rack-a"].mains_elapsed(402.0) == 2.5


def test_status_state_and_health() -> None:
    fleet = Fleet("powerbridge")
    changes = fleet.handle("powerbridge/rack-a/status", b"online", 1.0)
    assert changes[0].describe() == "bridge rack-a is online"
    assert fleet.handle("powerbridge/rack-a/status", b"online", 2.0) == []
    state = encode_state("rack-a", T0, 5, "pzem004t", {"power_w": 118.4, "voltage_v": 230.1})
    assert fleet.handle("powerbridge/rack-a/state", state, 3.0) == []
    health = json.dumps({"v": 1, "device": "rack-a", "meter_link": False}).encode()
    fleet.handle("powerbridge/rack-a/health", health, 3.0)
    line = render_fleet(fleet, 4.0)[1]
    assert "rack-a" in line
    assert "118.4 W" in line
    assert "230.1 V" in line
    assert "meter link down" in line
    assert "last reading" not in line
    assert "last reading 27 s ago" in render_fleet(fleet, 30.0)[1]


def test_client_countdown_is_counted_down_locally() -> None:
    fleet = Fleet("powerbridge")
    payload = encode_client_state(
        {"state": "counting", "seconds_left": 20.0, "delay_s": 30.0, "dry_run": True}
    )
    changes = fleet.handle("powerbridge/clients/pc-1/state", payload, 100.0)
    assert [(c.kind, c.value) for c in changes] == [("client_state", "counting")]
    view = fleet.clients["pc-1"]
    assert view.seconds_left(105.0) == 15.0
    line = client_line(view, 105.0, ascii_only=True)
    assert "15 s left of 30 s" in line
    assert "#" * 10 + "-" * 10 in line  # 50 % of the delay gone
    assert "(dry run)" in line


def test_a_client_that_is_not_armed_says_so() -> None:
    fleet = Fleet("powerbridge")
    payload = encode_client_state({"state": "idle", "armed": False, "dry_run": False})
    fleet.handle("powerbridge/clients/pc-1/state", payload, 1.0)
    assert "NOT ARMED" in client_line(fleet.clients["pc-1"], 2.0)
    armed = encode_client_state({"state": "idle", "armed": True, "bridges": {"rack-a": {}}})
    fleet.handle("powerbridge/clients/pc-1/state", armed, 3.0)
    line = client_line(fleet.clients["pc-1"], 4.0)
    assert "NOT ARMED" not in line
    assert "watching rack-a" in line


def test_topics_outside_the_base_and_bad_payloads_are_ignored() -> None:
    fleet = Fleet("powerbridge")
    assert fleet.handle("other/rack-a/mains", b"x", 1.0) == []
    assert fleet.handle("powerbridge/rack-a/mains", b"{not json", 1.0) == []
    assert fleet.handle("powerbridge/rack-a/status", b"maybe", 1.0) == []
    assert fleet.handle("powerbridge/clients/pc-1/state", b'{"v":2}', 1.0) == []
    assert fleet.bad_payloads == 3
    assert "3 malformed payloads ignored" in render_fleet(fleet, 1.0)[-1]


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["status", "mains", "state", "health"]),
    client=st.booleans(),
    payload=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["v", "state", "seq", "seconds_left", "delay_s", "bridges", "since"]),
            st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=5), st.booleans()),
        ).map(lambda d: json.dumps(d).encode()),
    ),
)
def test_any_payload_never_crashes_the_view(kind: str, client: bool, payload: bytes) -> None:
    fleet = Fleet("powerbridge")
    topic = f"powerbridge/clients/pc/{kind}" if client else f"powerbridge/b/{kind}"
    fleet.handle(topic, payload, 1.0)
    assert render_fleet(fleet, 2.0)


def test_progress_bar_and_durations() -> None:
    assert progress_bar(0.0, 4) == "░░░░"
    assert progress_bar(1.5, 4) == "████"
    assert progress_bar(0.5, 4, ascii_only=True) == "##--"
    assert duration(None) == "?"
    assert duration(8.24) == "8.2 s"
    assert duration(42.4) == "42 s"
    assert duration(125) == "2 min 05 s"
    assert duration(3 * 3600 + 120) == "3 h 02 min"


def test_parse_broker() -> None:
    assert parse_broker("pi.local", tls=False) == ("pi.local", 1883)
    assert parse_broker("pi.local", tls=True) == ("pi.local", 8883)
    assert parse_broker("10.0.0.2:1884", tls=False) == ("10.0.0.2", 1884)
    assert parse_broker("[::1]:8883", tls=True) == ("::1", 8883)
    assert parse_broker("::1", tls=False) == ("::1", 1883)


def test_screen_plain_mode_never_writes_escapes() -> None:
    import io

    out = io.StringIO()
    screen = Screen(out, live=False)
    screen.frame(["a", "b"])
    screen.line("event")
    assert out.getvalue() == "event\n"
    live_out = io.StringIO()
    live = Screen(live_out, live=True)
    live.frame(["a", "b"])
    live.frame(["c"])
    assert "\x1b[2F" in live_out.getvalue()
