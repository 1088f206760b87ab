"""docs/performance.md is rendered from bench-results.json: the table of every figure against
its target, the machine, the command, NUT side by side, and hand-written text kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.benchmarks import render


def dist(p50: float, p99: float, top: float, count: int = 200) -> dict[str, float]:
    return {"count": count, "min": p50 / 2, "p50": p50, "p99": p99, "max": top}


def sample() -> dict[str, Any]:
    return {
        "machine": {
            "cpu": "Example CPU 3000",
            "cores": 2,
            "python": "3.11.7",
            "system": "Linux 6.1",
            "date": "2026-01-02T03:04:05+00:00",
        },
        "latency": {
            "path": "edge -> decision",
            "transport": {
                "confirm_off_s": 0.0,
                "confirm_on_s": 0.0,
                "outage_to_counting_ms": dist(5.0, 12.5, 19.0),
                "restore_to_cancel_ms": dist(4.0, 25.0, 30.0),
                "load_average": [0.5, 0.4, 0.3],
            },
            "default": {
                "confirm_off_s": 0.5,
                "confirm_on_s": 2.0,
                "outage_to_counting_ms": dist(506.0, 520.0, 530.0),
                "restore_to_cancel_ms": dist(2005.0, 2020.0, 2030.0),
                "after_window": {
                    "outage_to_counting_ms": dist(6.0, 20.0, 30.0),
                    "restore_to_cancel_ms": dist(5.0, 20.0, 30.0),
                },
            },
        },
        "fanout": {
            "clients": 200,
            "processes": 4,
            "runs": 100,
            "last_client_counting_ms": dist(300.0, 1500.0, 1600.0, 100),
            "last_client_cancelled_ms": dist(310.0, 400.0, 410.0, 100),
            "every_client_counting_ms": dist(150.0, 390.0, 1600.0, 20000),
        },
        "client_cost": {
            "command": "python -m bridge client run -c client.yaml --dry-run",
            "window_s": 120.0,
            "cpu_pct_of_one_core": 0.02,
            "rss_mb": 32.5,
            "peak_rss_mb": 32.5,
            "rss_anon_mb": 20.0,
            "rss_file_mb": 12.5,
            "pss_mb": 21.0,
            "threads": 2,
            "wakeups_per_s": 1.0,
        },
        "nut": {
            "available": True,
            "installed": "already installed",
            "version": "2.8.0-7",
            "timing": "defaults",
            "flips": 40,
            "onbatt_ms": dist(4000.0, 7000.0, 7100.0, 40),
            "online_ms": dist(3500.0, 6900.0, 7000.0, 40),
        },
    }


def row(text: str, figure: str) -> list[str]:
    for line in text.splitlines():
        if line.startswith(f"| {figure} |"):
            return [cell.strip() for cell in line.strip("|").split("|")]
    raise AssertionError(f"no row {figure!r} in:\n{text}")


def test_summary_judges_every_figure_against_its_target() -> None:
    text = render.render(sample())
    assert row(text, "outage → client decision, confirmation 0, p99")[1:] == [
        "12.5 ms",
        "≤ 20 ms",
        "pass",
    ]
    assert row(text, "fan-out: outage → last of 200 clients decided, p99")[1:] == [
        "1.50 s",
        "≤ 1 s",
        "**FAIL**",
    ]
    assert row(text, "shutdown client idle: RSS")[3] == "**FAIL**"
    assert row(text, "shutdown client idle: CPU of one core")[3] == "pass"
    # NUT p50 4 s against our 5 ms: 800×.
    assert row(text, "NUT ONBATT latency / ours (outage, confirmation 0), p50")[1:] == [
        "800×",
        "≥ 100×",
        "pass",
    ]
    # A benchmark that was not run is said so, never given a figure or a verdict.
    assert row(text, "bridge at 10 samples/s: peak RSS")[1:] == ["not measured", "≤ 40 MB", "—"]
    assert row(text, "PZEM-004T read rate")[1] == "not measured"


def test_machine_command_and_side_by_side_sections() -> None:
    text = render.render(sample())
    assert "Example CPU 3000, 2 cores" in text
    assert "2026-01-02T03:04:05+00:00" in text
    assert "`./dev bench`" in text
    assert "| outage (ONBATT) | 4.00 / 7.00 / 7.10 s | 5.00 / 12.5 / 19.0 ms |" in text
    assert "| 800× | 7.91× |" in text  # against ours at confirmation 0, and at the default
    assert "includes more hops" in text
    assert "0.5 s / 2 s (default)" in text


def test_nut_that_cannot_run_is_explained_not_invented() -> None:
    results = sample()
    results["nut"] = {"available": False, "reason": "NutUnavailableError: upsd not found"}
    text = render.render(results)
    assert "**NUT could not run on this machine**: NutUnavailableError: upsd not found" in text
    assert row(text, "NUT ONBATT latency / ours (outage, confirmation 0), p50")[1] == (
        "not measured"
    )


def test_main_writes_between_the_markers_and_keeps_hand_written_text(tmp_path: Path) -> None:
    results = tmp_path / "bench-results.json"
    results.write_text(json.dumps(sample()))
    doc = tmp_path / "performance.md"
    render.main(results, doc)
    first = doc.read_text()
    assert first.startswith("# Performance")
    assert first.count(render.BEGIN) == first.count(render.END) == 1
    doc.write_text(
        first.replace("# Performance\n", "# Performance\n\nIntro by hand.\n")
        + "\n## Changes\n\nBy hand.\n"
    )
    changed = sample()
    changed["latency"]["transport"]["outage_to_counting_ms"]["p99"] = 33.0
    results.write_text(json.dumps(changed))
    render.main(results, doc)
    second = doc.read_text()
    assert "Intro by hand." in second
    assert second.endswith("## Changes\n\nBy hand.\n")
    assert row(second, "outage → client decision, confirmation 0, p99")[1:] == [
        "33.0 ms",
        "≤ 20 ms",
        "**FAIL**",
    ]
    assert second.count(render.BEGIN) == 1
