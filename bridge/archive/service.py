"""The archive service: the broker session, the writer, the management view, retention.

Wiring and lifecycle only.  The broker session is the ``archiver`` role's: a fixed
client id and a *persistent* session (MQTT 3.1.1 ``clean_session=false``, MQTT 5 a
session expiry of :data:`SESSION_EXPIRY_S`) subscribed at QoS 1, with manual
acknowledgements — a message is acknowledged by :class:`~bridge.archive.ingest.Ingest`
only once its rows are committed.  The client comes from the shared builder,
:mod:`bridge.mqtt.paho` (``persistent``, ``manual_ack``), with the credentials, TLS and
reconnect backoff every other connection of the project gets.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from bridge.archive.config import ArchiveConfig
from bridge.archive.gaps import Gap, GapPolicy
from bridge.archive.ingest import Backoff, Ingest, Message
from bridge.archive.records import KINDS
from bridge.archive.resend import resend_commands
from bridge.archive.store import SqlStore, open_store
from bridge.clock import Clock, SystemClock
from bridge.mqtt.contract import QOS_CMD
from bridge.mqtt.paho import configured_client, connect_async
from bridge.mqtt.signing import load_key

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S: Final = 0.0005
"""The interpreter's thread switch interval in an archive process (Python's default: 5 ms).

Three threads share the interpreter while samples flow: paho's reads, the decoding of the
next batch and the database thread, which formats rows for COPY while PostgreSQL waits for
them.  Handed the interpreter sooner, the database thread keeps PostgreSQL fed: 6-29 % more
samples a second in paired runs (./dev bench archive, docs/performance.md).
"""
SESSION_EXPIRY_S: Final = 7 * 86400
"""MQTT 5: how long the broker keeps the archive's queue while it is away."""
RECEIVE_MAXIMUM: Final = 200
"""MQTT 5: unacknowledged messages the broker may send ahead (up to 100,000 samples of
500-sample batches): enough to keep the writer busy while a batch commits, and a bound on
what waits in memory.  (MQTT 3.1.1 has no such field: the broker's
``max_inflight_messages``, 20 by default, is the window.)"""
RETENTION_EVERY_S: Final = 3600.0


def subscriptions(base: str) -> list[str]:
    """Every topic filter the archive subscribes to (QoS 1)."""
    return [f"{base}/+/{kind}" for kind in KINDS]


@dataclass
class Served:
    """Where the management view listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


class ArchiveService:
    """``powerbridge archive run``: see the module docstring."""

    def __init__(
        self, config: ArchiveConfig, *, store: SqlStore | None = None, clock: Clock | None = None
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.store = store or open_store(config.archive.database)
        gaps = config.gaps
        self.ingest = Ingest(
            self.store,
            base=config.mqtt.base_topic,
            max_payload=config.archive.max_payload,
            batch_size=config.archive.batch_size,
            flush_interval=config.archive.flush_interval,
            retry_max=config.archive.retry_max,
            policy=GapPolicy(
                int(gaps.resend_after * 1000),
                int(gaps.resend_every * 1000),
                int(gaps.lost_after * 1000),
            ),
            clock=self.clock,
        )
        self.key = load_key(gaps.signing_key_file) if gaps.signing_key_file else None
        self.connected = threading.Event()
        self.served: Served | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._client: mqtt.Client | None = None
        self._web: Any = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Open the database (waiting while it is down), then the broker session and the view.

        Asked to stop while waiting for the database, it returns with nothing started.
        """
        if not self._open_database():
            return
        self.ingest.resume()
        self.ingest.ack = self._ack
        self.ingest.request = self._request
        self._spawn("archive-writer", self.ingest.run)
        self._spawn("archive-retention", self._retention_loop)
        if self.config.http.enabled:
            from bridge.archive.web.server import WebServer

            self._web = WebServer(self)
            self.served = self._web.start()
            log.info("management view at %s", self.served.url)
        self._connect()

    def request_stop(self) -> None:
        """Make :meth:`wait` (or a start waiting for the database) return; any thread."""
        self._stop.set()

    def stop(self) -> None:
        """Stop the session, the writer and the view, then close the database."""
        self.request_stop()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        self.ingest.stop()
        if self._web is not None:
            self._web.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        self.store.close()

    def wait(self) -> None:
        while not self._stop.wait(1.0):
            pass

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _open_database(self) -> bool:
        backoff = Backoff(most=self.config.archive.retry_max)
        while True:
            try:
                self.store.create_schema()
            except Exception as exc:  # noqa: BLE001 - any database failure: wait and retry
                self.store.reset()
                pause = backoff.pause()
                log.warning(
                    "cannot open %s (%s: %s); again in %.1f s",
                    self.store.describe(), exc.__class__.__name__, exc, pause,
                )  # fmt: skip
                if self._stop.wait(pause):
                    log.info("stopped while waiting for the database")
                    return False
            else:
                log.info("archive database: %s", self.store.describe())
                return True

    # -- the broker session -----------------------------------------------------------------
    def _connect(self) -> None:
        mqtt_config = self.config.mqtt
        client = configured_client(
            mqtt_config,
            client_id=self.config.client_id,
            username=self.config.username,
            password=self.config.mqtt_password(),
            persistent=True,  # the broker queues what arrives while the archive is away
            manual_ack=True,  # acknowledged once it is in the database
        )
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        connect_async(
            client,
            mqtt_config.host,
            mqtt_config.effective_port,
            keepalive=round(mqtt_config.keepalive),
            session_expiry=SESSION_EXPIRY_S,
            receive_maximum=RECEIVE_MAXIMUM,
        )

    def _on_connect(
        self, client: mqtt.Client, _u: object, flags: Any, reason: ReasonCode, _p: object
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused the archive: %s", reason)
            return
        session = bool(getattr(flags, "session_present", False))
        log.info("connected to the broker (session %s)", "resumed" if session else "new")
        client.subscribe([(topic, 1) for topic in subscriptions(self.config.mqtt.base_topic)])
        self.connected.set()

    def _on_disconnect(self, *_args: object) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("lost the broker; reconnecting (it keeps this session's queue)")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.ingest.offer(Message(msg.topic, bytes(msg.payload), msg.mid if msg.qos > 0 else 0))

    def _ack(self, mid: int) -> None:
        if self._client is not None:
            self._client.ack(mid, 1)

    def _request(self, gap: Gap) -> None:
        if self._client is None:
            return
        for topic, payload in resend_commands(
            gap, base=self.config.mqtt.base_topic, now=self.clock.utcnow(), key=self.key
        ):
            self._client.publish(topic, payload, qos=QOS_CMD)

    # -- retention -------------------------------------------------------------------------
    def _retention_loop(self) -> None:
        keep = self.config.archive.retention
        if keep <= 0:
            return
        first = True
        while not self._stop.wait(0 if first else RETENTION_EVERY_S):
            first = False
            cutoff = int((self.clock.utcnow().timestamp() - keep) * 1000)
            try:
                removed = self.store.apply_retention(cutoff)
            except Exception as exc:  # noqa: BLE001 - retried at the next round
                self.store.reset()
                log.warning("retention failed (%s); next try in an hour", exc)
                continue
            if removed:
                log.info("retention: removed %d (older than %s s)", removed, keep)
