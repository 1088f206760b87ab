"""The shutdown client: shuts a PC down cleanly after a sustained mains outage, never otherwise.

Layout (the decision is pure; everything else is I/O around it):

* :mod:`~bridge.shutdown.view` — what the client knows of each watched bridge (frozen
  snapshots) and the :class:`~bridge.shutdown.view.Tracker` that merges accepted facts;
* :mod:`~bridge.shutdown.intake` — turns raw MQTT payloads into accepted facts or counted
  rejections (strict decoding, signatures, replay protection);
* :mod:`~bridge.shutdown.policy` — ``decide(view, now, settings) -> Decision``, pure;
* :mod:`~bridge.shutdown.actions` — the per-OS shutdown command, hooks, user warnings;
* :mod:`~bridge.shutdown.runtime` — the event loop that ties them together on an
  injected monotonic clock, with its :mod:`~bridge.shutdown.events`, topic
  :mod:`~bridge.shutdown.routes`, retained :mod:`~bridge.shutdown.state` payload and
  :mod:`~bridge.shutdown.identity`;
* :mod:`~bridge.shutdown.listener` — the paho-mqtt connection (a
  :class:`~bridge.mqtt.link.StatusLink`, reconnecting with paho's backoff);
* :mod:`~bridge.shutdown.retry` — the one place for everything else the client retries;
* :mod:`~bridge.shutdown.service` — systemd / launchd / Task Scheduler installation.

Nothing here imports Raspberry Pi libraries: a PC needs only ``pip install powerbridge``.
"""
