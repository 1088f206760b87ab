"""A small fleet in an archive, written through the ingest as if it had come over MQTT."""

from __future__ import annotations

from datetime import datetime, timedelta

from bridge.archive.ingest import Ingest, Message
from tests.archive.fakes import TODAY, deployment, event, health, mains, msg, samples


def seed_fleet(ingest: Ingest, *, now: datetime = TODAY, hours: float = 24.0) -> None:
    """Three devices: ``berlin-rack-a`` with a day at 1 Hz and an outage, ``paris-rack-a``
    silent for 10 minutes (stale) with a gap, ``lab-pi`` with a few minutes of data."""
    start = now - timedelta(hours=hours)
    count = int(hours * 3600)
    messages: list[Message] = []
    for first in range(1, count + 1, 1000):
        seqs = range(first, min(count, first + 999) + 1)
        messages.append(
            msg("berlin-rack-a", "samples", samples("berlin-rack-a", seqs, start=start))
        )
    lab = now - timedelta(minutes=4)
    began = now - timedelta(hours=5)
    back = began + timedelta(minutes=40)
    b = "berlin-rack-a"
    messages += [
        msg(b, "events", event(b, count + 1, "outage_started", began, None)),
        msg(b, "events", event(b, count + 2, "outage_ended", began, back)),
        msg("berlin-rack-a", "mains", mains("berlin-rack-a", "on")),
        msg("berlin-rack-a", "health", health("berlin-rack-a")),
        msg("berlin-rack-a", "deployment", deployment("berlin-rack-a")),
        msg("berlin-rack-a", "status", b"online"),
    ]  # fmt: skip
    paris = now - timedelta(minutes=10) - timedelta(seconds=600)
    messages += [
        msg("paris-rack-a", "samples", samples("paris-rack-a", range(1, 301), start=paris)),
        msg("paris-rack-a", "samples", samples("paris-rack-a", range(401, 601), start=paris)),
        msg("paris-rack-a", "mains", mains("paris-rack-a", "off")),
        msg("paris-rack-a", "deployment", deployment("paris-rack-a", "Paris rack A")),
        msg("paris-rack-a", "status", b"offline"),
        msg("lab-pi", "samples", samples("lab-pi", range(1, 240), start=lab)),
    ]  # fmt: skip
    for start_index in range(0, len(messages), 20):
        batch, _ = ingest.build(messages[start_index : start_index + 20])
        ingest.store.write(batch)
