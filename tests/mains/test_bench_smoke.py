"""The mains benchmark still runs (tiny counts; figures are not judged here)."""

from __future__ import annotations

import pytest

from tests.benchmarks import bench_mains


@pytest.mark.bench_smoke
def test_bench_mains_smoke() -> None:
    result = bench_mains.run(smoke=True)
    latency = result["latency_ms"]
    assert isinstance(latency, dict)
    assert latency["changes"] == 6
    assert latency["p50"] >= 0  # never announced before the window ended
    assert isinstance(result["debouncer_edges_per_s"], int)
