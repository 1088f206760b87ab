"""``powerbridge archive``: every sample of a fleet on one database, and a view of it.

One small module per job:

* :mod:`.config` — ``archive.yaml``, declared once (schema, dataclasses, key reference);
* :mod:`.service` — wiring and lifecycle: the ``archiver`` role's persistent MQTT session,
  the ingest, the management view, retention;
* :mod:`.records` — a message to rows, decoded through :mod:`bridge.mqtt.contract` only;
* :mod:`.ingest` — batches into transactions; a message is acknowledged once committed;
* :mod:`.gaps` — missing sequence numbers per device (pure, time passed in);
* :mod:`.resend` — the ``cmd/resend`` commands that ask a bridge for a range again;
* :mod:`.store` — SQLite (default) and PostgreSQL behind one :class:`~.store.SqlStore`;
* :mod:`.web` — the management view (Starlette; server-rendered pages, inline SVG charts);
* :mod:`.metrics` — Prometheus figures; :mod:`.checks` — ``archive check``;
  :mod:`.unit` — its systemd unit.

Its libraries (psycopg, Starlette, uvicorn, prometheus-client) are the ``archive`` extra:
a bridge or a PC never imports this package.
"""
