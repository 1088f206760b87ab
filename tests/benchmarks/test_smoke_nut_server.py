"""The NUT server load benchmark still runs: a few clients for a few seconds, against both."""

from __future__ import annotations

import pytest

from tests.benchmarks import bench_nut_server


@pytest.mark.bench_smoke
@pytest.mark.realtime
def test_both_servers_answer_every_request() -> None:
    result = bench_nut_server.run(smoke=True)
    ours, upsd = result["ours"], result["upsd"]
    assert ours["errors"] == 0
    assert ours["requests"] >= result["clients"] * 2
    if not upsd.get("available"):
        pytest.fail(f"NUT cannot run: {upsd['reason']}", pytrace=False)
    assert upsd["errors"] == 0
    assert upsd["requests"] >= result["clients"] * 2
