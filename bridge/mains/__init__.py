"""Mains sensing: is the mains present, confirmed, numbered, recorded and reported.

One module per role (the tree is the architecture):

* :mod:`~bridge.mains.debounce` — the pure confirmation windows (:class:`MainsDebouncer`);
* :mod:`~bridge.mains.pin` — the GPIO pin, mains simulation and the ``simulate`` command;
* :mod:`~bridge.mains.crosscheck` — what the power meter says about the mains;
* :mod:`~bridge.mains.sensor` — :class:`MainsSensor`, the worker that ties them together;
* :mod:`~bridge.mains.store` — :class:`OutageStore`, the one holder of the mains state
  (on disk and in memory), which builds the outage events from the outages it closes;
* :mod:`~bridge.mains.report` — :class:`MainsReport`, the retained ``mains`` and
  ``outage`` topics and the outage events, on the daemon's main loop; it keeps only
  the change it currently shows, as the store handed it over.

The names other modules use are importable from ``bridge.mains`` directly.
"""

from bridge.mains.crosscheck import combine, meter_level
from bridge.mains.debounce import Announcement, Blip, Edge, MainsDebouncer
from bridge.mains.pin import MainsPinError
from bridge.mains.sensor import MainsSensor
from bridge.mains.store import MainsChange, OutageStore

__all__ = [
    "Announcement",
    "Blip",
    "Edge",
    "MainsChange",
    "MainsDebouncer",
    "MainsPinError",
    "MainsSensor",
    "OutageStore",
    "combine",
    "meter_level",
]
