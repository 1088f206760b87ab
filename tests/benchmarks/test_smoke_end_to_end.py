"""The end-to-end benchmarks still run (tiny counts; the figures are not judged here, only
that each measured what it claims to measure)."""

from __future__ import annotations

import pytest

from tests.benchmarks import bench_client_cost, bench_fanout, bench_latency

pytestmark = [pytest.mark.bench_smoke, pytest.mark.integration]


def test_latency_smoke_times_outages_and_restores_to_the_decision() -> None:
    result = bench_latency.run(smoke=True)
    transport, default = result["transport"], result["default"]
    assert transport["outage_to_counting_ms"]["count"] == 3
    assert transport["restore_to_cancel_ms"]["count"] == 3
    assert 0 < transport["outage_to_counting_ms"]["min"] < 5_000
    # At the default window the client can only decide after the bridge has confirmed.
    assert default["outage_to_counting_ms"]["min"] >= 500
    assert default["restore_to_cancel_ms"]["min"] >= 2_000
    assert default["after_window"]["outage_to_counting_ms"]["min"] >= 0
    assert result["target_p99_ms"] == 20.0
    assert isinstance(result["meets_target"], bool)


def test_fanout_smoke_waits_for_the_last_client() -> None:
    result = bench_fanout.run(smoke=True)
    assert (result["clients"], result["processes"], result["runs"]) == (4, 2, 2)
    last, each = result["last_client_counting_ms"], result["every_client_counting_ms"]
    assert last["count"] == 2
    assert each["count"] == 8
    assert last["max"] == each["max"]  # the last client of the slowest run
    assert last["min"] >= each["min"] > 0


def test_client_cost_smoke_measures_a_running_client_process() -> None:
    result = bench_client_cost.run(smoke=True)
    assert result["window_s"] >= 2.0
    assert 10 < result["rss_mb"] < 500
    assert result["rss_mb"] == pytest.approx(result["rss_anon_mb"] + result["rss_file_mb"], abs=0.2)
    assert result["threads"] >= 2  # the main loop and paho's network thread
    assert 0 <= result["cpu_pct_of_one_core"] < 100
