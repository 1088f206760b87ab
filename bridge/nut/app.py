"""``powerbridge nut serve``: the MQTT feed, the NUT server and mDNS, wired on one event loop.

paho's network thread only timestamps each message and hands it to the loop
(``call_soon_threadsafe``); the :class:`~bridge.nut.feed.Feed` is touched by the loop
alone, so the server reads a consistent state without locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from bridge import __version__
from bridge.clock import Clock, SystemClock
from bridge.errors import ConfigError, ConfigProblem
from bridge.mqtt.contract import OFFLINE, ONLINE, QOS_STATUS, ClientTopics, nut_user
from bridge.mqtt.paho import configured_client, refusal
from bridge.mqtt.signing import configured_key
from bridge.nut.config import NutConfig, load_users
from bridge.nut.feed import Feed
from bridge.nut.server import NutServer, ServedUpses, Ups
from bridge.nut.variables import Identity
from bridge.shutdown.intake import Intake

log = logging.getLogger("bridge.nut")


class MqttLink:
    """One paho client: subscribes in ``on_connect``, hands every event to the loop."""

    def __init__(
        self, config: NutConfig, feed: Feed, loop: asyncio.AbstractEventLoop, clock: Clock
    ) -> None:
        self._feed, self._loop, self._clock = feed, loop, clock
        client_id = config.nut.client_id
        self._status = ClientTopics(config.mqtt.base_topic, client_id).status
        self._client = configured_client(
            config.mqtt,
            client_id=config.mqtt.client_id or f"powerbridge-nut-{client_id}",
            username=config.mqtt.username or nut_user(client_id),
            password=config.mqtt.password(),
        )
        self._client.will_set(self._status, OFFLINE, qos=QOS_STATUS, retain=True)
        self._client.reconnect_delay_set(
            min_delay=max(1, round(config.mqtt.reconnect_min)),
            max_delay=max(1, round(config.mqtt.reconnect_max)),
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._host, self._port = config.mqtt.host, config.mqtt.effective_port
        self._keepalive = max(5, round(config.mqtt.keepalive))

    def start(self) -> None:
        log.info("connecting to the broker at %s:%d", self._host, self._port)
        self._client.connect_async(self._host, self._port, keepalive=self._keepalive)
        self._client.loop_start()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._client.publish(
                self._status, OFFLINE, qos=QOS_STATUS, retain=True
            ).wait_for_publish(2.0)
        self._client.disconnect()
        self._client.loop_stop()

    def _call(self, func: Any, *args: Any, **kwargs: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._loop.call_soon_threadsafe(lambda: func(*args, **kwargs))

    def _on_connect(
        self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        if reason.is_failure:
            log.warning("broker: %s", refusal(reason))
            return
        log.info("connected to the broker")
        client.publish(self._status, ONLINE, qos=QOS_STATUS, retain=True)
        client.subscribe([(s.topic, s.qos) for s in self._feed.subscriptions()])
        self._call(self._feed.connected)

    def _on_disconnect(
        self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        log.warning("connection to the broker lost (%s)", reason)
        self._call(self._feed.disconnected, self._clock.monotonic())

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._call(
            self._feed.message,
            msg.topic,
            bytes(msg.payload),
            retained=bool(msg.retain),
            now=self._clock.monotonic(),
            wall=self._clock.utcnow(),
        )


def _ssl_context(config: NutConfig) -> ssl.SSLContext | None:
    if not config.nut.cert_file or not config.nut.key_file:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(config.nut.cert_file, config.nut.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [ConfigProblem("nut.yaml", None, "nut.cert_file", f"cannot load: {exc}")]
        ) from None
    return context


def build(
    config: NutConfig, clock: Clock, users: dict[str, str], key: bytes | None
) -> tuple[Feed, ServedUpses, NutServer]:
    """The feed, the served directory and the server of ``config`` (nothing started)."""
    feed = Feed(
        [u.bridge for u in config.ups],
        base=config.mqtt.base_topic,
        client_id=config.nut.client_id,
        settings=config.shutdown.settings(),
        started_at=clock.monotonic(),
        intake=Intake(
            [u.bridge for u in config.ups],
            key=key,
            max_age=config.signing.max_age,
            allow_remote=config.shutdown.allow_remote,
        ),
    )
    upses = [
        Ups(
            name=u.alias,
            description=u.description or f"powerbridge {u.bridge}",
            identity=Identity(device_id=u.bridge, model=u.model, version=__version__),
        )
        for u in config.ups
    ]
    context = _ssl_context(config)
    served = ServedUpses(
        upses,
        lambda device: feed.state(device, clock.monotonic()),
        users,
        version=__version__,
        tls=context is not None,
    )
    server = NutServer(
        served,
        ssl_context=context,
        max_connections=config.nut.max_connections,
        idle_timeout=config.nut.idle_timeout,
    )
    return feed, served, server


async def serve(config: NutConfig, *, clock: Clock | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    clock = clock or SystemClock()
    users = load_users(config.nut.users_file)
    key = configured_key(config.signing.key_file, "nut.yaml")
    loop = asyncio.get_running_loop()
    feed, _served, server = build(config, clock, users, key)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start(config.nut.listen, config.nut.port)
    link = MqttLink(config, feed, loop, clock)
    link.start()
    advertisement = None
    if config.nut.mdns:
        try:
            from bridge.nut.mdns import advertise_nut

            advertisement = await asyncio.to_thread(
                advertise_nut, server.ports[0], config.nut.listen
            )
        except OSError as exc:
            log.warning("not advertised by mDNS: %s", exc)
    names = ", ".join(f"{u.alias} (bridge {u.bridge})" for u in config.ups)
    log.info("serving %s on port %d", names, server.ports[0])
    try:
        await stop.wait()
    finally:
        if advertisement is not None:
            await asyncio.to_thread(advertisement.close)
        await server.close()
        link.stop()
    return 0
