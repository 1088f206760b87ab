"""Prometheus metrics of the archive (``/metrics``), on a registry of its own.

Fleet figures are read from the database at each scrape (a collector, so a scrape
shows the archive's state, not a copy of it); ingest figures are counters kept by
:class:`~bridge.archive.ingest.Ingest`.  The ingest rate is
``rate(powerbridge_archive_samples_stored_total[1m])``; the gauge
``powerbridge_archive_ingest_rate`` is the same over the time since the last scrape,
for a glance without PromQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bridge.archive.ingest import Figures
from bridge.archive.store import SqlStore

PREFIX = "powerbridge_archive"


class ArchiveCollector(Collector):
    """Fleet gauges from the store, ingest counters from :class:`Figures`."""

    def __init__(
        self,
        store: SqlStore,
        figures: Figures,
        now_ms: Callable[[], int],
        backlog: Callable[[], int] = lambda: 0,
    ) -> None:
        self.backlog = backlog
        self.store = store
        self.figures = figures
        self.now_ms = now_ms
        self._last: tuple[float, int] | None = None

    def collect(self) -> Iterator[Metric]:
        now = self.now_ms()
        rows = self.store.fleet(now)
        gauges = {
            "last_sample_age_seconds": "Age of the newest archived sample, per device",
            "open_gaps": "Open gaps in the sequence numbers, per device",
            "missing_seq": "Sequence numbers missing in open gaps, per device",
            "lost_gaps": "Gaps recorded as lost (older than the bridges keep samples)",
            "outages": "Outages archived, per device",
            "samples_today": "Samples archived today (UTC), per device",
        }
        families = {
            name: GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=["device"])
            for name, text in gauges.items()
        }
        for r in rows:
            labels = [r.device]
            if r.newest_sample_ms is not None:
                age = (now - r.newest_sample_ms) / 1000
                families["last_sample_age_seconds"].add_metric(labels, age)
            families["open_gaps"].add_metric(labels, r.open_gaps)
            families["missing_seq"].add_metric(labels, r.missing)
            families["lost_gaps"].add_metric(labels, r.lost)
            families["outages"].add_metric(labels, r.outages)
            families["samples_today"].add_metric(labels, r.samples_today)
        yield from families.values()
        yield GaugeMetricFamily(f"{PREFIX}_devices", "Devices known to the archive", len(rows))
        f = self.figures
        counters = {
            "messages": (f.messages, "Messages received from the broker"),
            "samples_received": (f.samples_received, "Samples received (duplicates included)"),
            "samples_stored": (f.samples_stored, "Samples stored (new rows)"),
            "duplicates": (f.duplicates, "Samples received again and ignored"),
            "database_failures": (f.db_failures, "Failed attempts to write to the database"),
            "resend_requests": (f.resend_requests, "Ranges asked for again"),
            "gaps_lost": (f.gaps_lost, "Gaps given up since start"),
        }
        for name, (value, text) in counters.items():
            yield CounterMetricFamily(f"{PREFIX}_{name}", text, value=value)
        rejected = CounterMetricFamily(
            f"{PREFIX}_rejected", "Payloads rejected, never stored", labels=["reason"]
        )
        for reason in ("malformed", "oversized"):
            rejected.add_metric([reason], f.rejected[reason])
        yield rejected
        yield GaugeMetricFamily(
            f"{PREFIX}_database_up", "1 while the database accepts writes",
            0 if f.db_down_since is not None else 1,
        )  # fmt: skip
        yield GaugeMetricFamily(
            f"{PREFIX}_backlog", "Messages received, waiting for the writer", self.backlog()
        )
        mono = time.monotonic()
        rate = 0.0
        if self._last is not None and mono > self._last[0]:
            rate = (f.samples_stored - self._last[1]) / (mono - self._last[0])
        self._last = (mono, f.samples_stored)
        yield GaugeMetricFamily(
            f"{PREFIX}_ingest_rate", "Samples stored per second since the last scrape", rate
        )


def registry(
    store: SqlStore,
    figures: Figures,
    now_ms: Callable[[], int],
    backlog: Callable[[], int] = lambda: 0,
) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(ArchiveCollector(store, figures, now_ms, backlog))
    return reg
