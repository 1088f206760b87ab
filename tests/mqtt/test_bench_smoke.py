"""The spool benchmark still runs (tiny counts; the figures are judged by `./dev bench`)."""

from __future__ import annotations

import pytest

from tests.benchmarks import bench_spool


@pytest.mark.bench_smoke
def test_bench_spool_smoke() -> None:
    result = bench_spool.run(smoke=True)
    replay = result["replay"]
    assert replay["gaps"] == 0
    assert replay["messages"] >= 4  # 2,000 samples in batches of 500
    assert replay["all_acknowledged_s"] >= 0
    hour = result["hour_at_1hz"]
    assert hour["sync_points_per_hour"] > 0
    assert hour["bytes_written_per_hour_mb"] > 0
