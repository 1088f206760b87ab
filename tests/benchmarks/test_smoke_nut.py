"""Network UPS Tools still runs here for the side-by-side benchmark: one outage, one ONBATT.

NUT missing is a failure with the install instruction, never a skip: ``.ci/run`` and
``./dev setup`` install Debian's ``nut-server`` and ``nut-client``.
"""

from __future__ import annotations

import pytest

from tests.benchmarks import bench_nut


@pytest.mark.bench_smoke
def test_nut_notifies_one_outage_with_its_default_timing() -> None:
    result = bench_nut.run(smoke=True)
    if not result["available"]:
        pytest.fail(f"NUT cannot run: {result['reason']}", pytrace=False)
    assert result["flips"] == 1
    latency = result["onbatt_ms"]["max"]
    # Polled twice (driver 2 s, upsmon 5 s): never instant, never beyond both polls and more.
    assert 0 < latency < 30_000
    assert result["version"]
