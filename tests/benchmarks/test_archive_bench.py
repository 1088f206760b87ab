"""The archive benchmark still runs (tiny counts), and its figures render against the targets."""

from __future__ import annotations

from typing import Any

import pytest

from tests.benchmarks import bench_archive, render_archive


@pytest.mark.bench_smoke
@pytest.mark.integration
@pytest.mark.realtime
def test_archive_bench_smoke_measures_every_figure_with_nothing_missing() -> None:
    result = bench_archive.run(smoke=True)
    for key in ("ingest_postgresql", "ingest_sqlite"):
        assert result[key]["per_s"] > 0
        assert result[key]["missing"] == 0
    assert result["raw_copy"]["per_s"] > 0
    assert result["catch_up"]["missing"] == 0
    assert result["catch_up"]["fleet_page"]["count"] == 40
    assert result["rss"]["peak_rss_mb"] > 10
    assert result["rss"]["missing"] == 0


def sample() -> dict[str, Any]:
    return {
        "machine": {"cpu": "Example CPU", "cores": 2, "date": "2026-01-02T03:04:05+00:00"},
        "archive": {
            "ingest_postgresql": {"per_s": 81_000},
            "raw_copy": {"per_s": 200_000},
            "ingest_vs_raw_copy": 0.405,
            "ingest_sqlite": {"per_s": 29_000},
            "catch_up": {
                "samples": 8_640_000, "all_stored_s": 140.0, "missing": 0,
                "sustained_per_s": 62_000, "rss_mb": 120.0, "feeder": {"publish_s": 9.0},
                "fleet_page": {"p95_ms": 3.4}, "day_chart": {"p95_ms": 71.0},
            },
            "rss": {"peak_rss_mb": 60.0},
            "load_average": [1.5, 1.2, 1.0],
        },
    }  # fmt: skip


def test_the_table_judges_each_figure_against_its_target() -> None:
    text = render_archive.render(sample())
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()}
    assert rows["ingest into PostgreSQL through the broker"].endswith(
        "| 81,000 /s | ≥ 50,000 /s | pass |"
    )
    assert "| 40.5% | ≥ 60% | **FAIL** |" in rows["ingest / raw COPY"]
    assert "**FAIL**" in rows["ingest into SQLite through the broker"]
    assert "| 0 | ≤ 0 | pass |" in rows["catch-up: missing sequence numbers (query)"]


def test_the_block_is_replaced_and_the_rest_kept() -> None:
    first = render_archive.update("# Performance\n\nby hand\n", "A\n")
    assert first.startswith("# Performance\n\nby hand\n")
    second = render_archive.update(first + "\nafter\n", "B\n")
    assert "A\n" not in second
    assert second.endswith("after\n")
    assert "B\n" in second
