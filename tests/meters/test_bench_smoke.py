"""The meter benchmark still runs (tiny counts; no timing asserted)."""

from __future__ import annotations

import pytest

from tests.benchmarks import bench_meters


@pytest.mark.bench_smoke
def test_bench_meters_smoke() -> None:
    result = bench_meters.run(smoke=True)
    assert set(result["protocols"]) == {"pzem004t", "mcp39f511n", "sdm120", "sdm630"}
    for figures in result["protocols"].values():
        assert figures["readings"] >= 1
        for key in (
            "readings_per_s",
            "wire_limit_per_s",
            "driver_cpu_ms_per_reading",
            "process_cpu_ms_per_reading",
        ):
            assert figures[key] > 0
    assert "target_per_s" in result["protocols"]["pzem004t"]
    assert "target_per_s" in result["protocols"]["mcp39f511n"]
