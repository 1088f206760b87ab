"""Wiring: configuration → broker address → runtime + MQTT listener; the ``client run`` command.

Finding the broker by mDNS retries through :mod:`bridge.shutdown.retry`; the listener's
reconnects are paho's; ``client status``/``uninstall`` use one short
:class:`~bridge.mqtt.session.MqttSession` each and do not retry (a person is waiting).
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from bridge.clock import Clock, SuspendAwareClock
from bridge.config.client import ClientConfig
from bridge.errors import BrokerError, PayloadError
from bridge.log import RepeatedFailure
from bridge.mqtt.contract import ClientStatePayload, ClientTopics, client_user
from bridge.mqtt.session import BrokerProblemError, MqttSession
from bridge.mqtt.signing import configured_key
from bridge.shutdown.actions import Actions
from bridge.shutdown.events import Stop
from bridge.shutdown.identity import client_identity
from bridge.shutdown.listener import Listener
from bridge.shutdown.memory import ReplayMemory, default_memory_path
from bridge.shutdown.retry import BROWSE_FIRST_S, until_found
from bridge.shutdown.runtime import ClientRuntime
from bridge.stopsignals import StopSignals

if TYPE_CHECKING:  # mDNS is loaded only with `host: auto`
    from bridge.mqtt.mdns import FoundBroker

log = logging.getLogger("bridge.shutdown")

AUTO = "auto"
BROWSE_TIMEOUT = 4.0


def load_signing_key(config: ClientConfig, source: str = "client.yaml") -> bytes | None:
    """The shared key, or ``None``; an unreadable or short key is a configuration error."""
    return configured_key(config.signing.key_file, source)


def resolve_broker(
    config: ClientConfig,
    *,
    browse: Callable[[float], list[FoundBroker]] | None = None,
    stop: threading.Event | None = None,
    retry_max: float = 60.0,
) -> tuple[str, int] | None:
    """``(host, port)`` from the configuration, or found by mDNS with ``host: auto``.

    With ``auto`` this keeps browsing (backing off to ``retry_max``,
    :func:`bridge.shutdown.retry.until_found`) until a broker is found or ``stop`` is set
    (then ``None``).  What was found and chosen is logged.
    """
    mqtt = config.mqtt
    if mqtt.host != AUTO:
        return mqtt.host, mqtt.effective_port
    from bridge.mqtt.mdns import browse_broker, choose_broker

    browse = browse or browse_broker
    failure = RepeatedFailure(log, "finding the broker by mDNS (_mqtt._tcp)")

    def look() -> tuple[str, int] | None:
        try:
            found = browse(BROWSE_TIMEOUT)
        except OSError as exc:
            found = []
            failure.failed(f"mDNS unavailable: {exc}")
        for broker in found:
            log.info("mDNS: found %s", broker.describe())
        chosen = choose_broker(found, bridges=config.bridges, tls=mqtt.tls.enabled)
        if chosen is None:
            if not found:
                failure.failed("no broker answered; is the bridge advertising it (mqtt.advertise)?")
            return None
        failure.recovered()
        return _address(config, chosen)

    return until_found(
        look,
        stop=stop or threading.Event(),
        first=min(BROWSE_FIRST_S, retry_max),
        most=retry_max,
    )


def _address(config: ClientConfig, chosen: FoundBroker) -> tuple[str, int]:
    """Where to connect to a broker found by mDNS (logged, with a TLS mismatch warning)."""
    mqtt = config.mqtt
    host = chosen.host
    if mqtt.tls.enabled and chosen.server and not mqtt.tls.insecure:
        host = chosen.server.rstrip(".")  # the certificate names the host, not the address
    port = mqtt.port or chosen.port
    log.warning("using the broker found by mDNS: %s → %s:%d", chosen.describe(), host, port)
    if chosen.tls != mqtt.tls.enabled:
        log.warning(
            "the broker is advertised %s TLS but mqtt.tls.enabled is %s",
            "with" if chosen.tls else "without",
            str(mqtt.tls.enabled).lower(),
        )
    return host, port


@dataclass
class RunningClient:
    """A client running in a background thread (tests, the demo)."""

    runtime: ClientRuntime
    listener: Listener
    thread: threading.Thread

    def stop(self, timeout: float = 5.0) -> None:
        self.runtime.submit(Stop())
        self.thread.join(timeout)
        self.listener.stop()


class ClientParts(TypedDict, total=False):
    """What a test or the demo may put in instead of the defaults of :func:`build_client`."""

    clock: Clock | None
    actions: Actions | None
    dry_run: bool
    key: bytes | None
    memory_path: Path | None


def build_client(
    config: ClientConfig, *, host: str, port: int, **parts: Unpack[ClientParts]
) -> tuple[ClientRuntime, Listener]:
    """The runtime and its listener; the replay memory lives in ``memory_path`` (default
    :func:`~bridge.shutdown.memory.default_memory_path`, or ``client.memory_file``)."""
    clock = parts.get("clock") or SuspendAwareClock()
    key = parts.get("key")
    dry_run = parts.get("dry_run", False) or config.shutdown.dry_run
    actions = parts.get("actions") or Actions(config.shutdown, dry_run=dry_run)
    path = parts.get("memory_path") or memory_file(config)
    runtime = ClientRuntime(
        config,
        clock=clock,
        actions=actions,
        key=key,
        memory=ReplayMemory(path),
    )
    client_id = runtime.client_id
    listener = Listener(
        config.mqtt,
        host=host,
        port=port,
        # Random per run: nobody can take this connection over by guessing its id, and a
        # second process with the same identity (a foreground test run next to the
        # service) does not make the broker drop this one (it is detected instead).
        mqtt_client_id=(
            config.mqtt.client_id or f"powerbridge-client-{client_id}-{secrets.token_hex(6)}"
        ),
        username=config.mqtt.username or client_user(client_id),
        password=config.mqtt.password(),
        status_topic=runtime.topics.status,
        subscriptions=runtime.subscriptions,
        on_event=runtime.submit,
        clock=clock,
    )
    runtime.publisher = listener
    return runtime, listener


def memory_file(config: ClientConfig) -> Path:
    """This client's replay memory file (``client.memory_file`` or the default)."""
    if config.client.memory_file:
        return Path(config.client.memory_file)
    return default_memory_path(client_identity(config)[0])


def describe(runtime: ClientRuntime) -> str:
    s = runtime.settings
    bridges = runtime.config.bridges
    commands = " or else ".join(str(c) for c in runtime.actions.commands)
    if len(bridges) == 1:
        when = f"shut down when an outage has lasted {s.delay:g} s"
    else:
        when = (
            f"shut down {s.delay:g} s after fewer than {s.min_supplies} of the "
            f"{len(bridges)} supplies have mains"
        )
    return (
        f"shutdown client {runtime.client_id} watching {', '.join(bridges)}: {when}; "
        f"lost during an outage: {s.on_lost_during_outage}; "
        f"signed messages: {'required' if runtime.intake.signed else 'not required'}; "
        f"command: {commands}{' (DRY RUN)' if runtime.actions.dry_run else ''}"
    )


def start_client(
    config: ClientConfig, *, host: str, port: int, **parts: Unpack[ClientParts]
) -> RunningClient:
    """Start a client in a background thread (for tests and the demo)."""
    runtime, listener = build_client(config, host=host, port=port, **parts)
    thread = threading.Thread(target=runtime.run, name="powerbridge-client", daemon=True)
    thread.start()
    listener.start()
    return RunningClient(runtime, listener, thread)


def _session(config: ClientConfig, purpose: str, timeout: float) -> MqttSession:
    """A connected short session as this client's broker user (for ``status``, ``uninstall``)."""
    address = resolve_broker(config, stop=_stopped_after(timeout))
    if address is None:
        raise BrokerError("no broker found by mDNS")
    client_id, _name = client_identity(config)
    session = MqttSession(
        config.mqtt,
        username=config.mqtt.username or client_user(client_id),
        purpose=purpose,
        host=address[0],
        port=address[1],
    )
    try:
        return session.connect(timeout)
    except BrokerProblemError as exc:
        if exc.kind == "unreachable":
            raise BrokerError(f"cannot connect to {session.where}: {exc}") from None
        raise BrokerError(f"{exc}\n  fix: {exc.fix}") from None


def fetch_state(
    config: ClientConfig, *, timeout: float = 3.0
) -> tuple[str | None, dict[str, Any] | None]:
    """The client's retained ``status`` and ``state`` as the broker has them (for ``status``)."""
    client_id, _name = client_identity(config)
    topics = ClientTopics(config.mqtt.base_topic, client_id)
    with _session(config, "status", timeout) as session:
        found = session.retained([topics.status, topics.state], wait=timeout)
    status = found.get(topics.status)
    state = None
    if topics.state in found:
        try:
            state = ClientStatePayload.decode(found[topics.state]).to_dict()
        except PayloadError:
            state = None
    return (status.decode(errors="replace") if status else None), state


def retained_topics(config: ClientConfig) -> list[str]:
    """Every retained topic this client publishes: its ``state``, its ``status`` and its
    Home Assistant discovery configs (whether or not discovery is on now: it may have been)."""
    from bridge.shutdown.discovery import client_discovery

    client_id, name = client_identity(config)
    topics = ClientTopics(config.mqtt.base_topic, client_id)
    discovery = client_discovery(
        config.mqtt.discovery.prefix, config.mqtt.base_topic, client_id, name
    )
    return [topics.state, topics.status, *(topic for topic, _payload in discovery)]


def clear_retained(config: ClientConfig, *, timeout: float = 5.0) -> list[str]:
    """Delete this client's retained messages on the broker (an empty retained payload on
    each of :func:`retained_topics`), as ``client uninstall`` does once the service is
    stopped; the topics cleared.  :class:`BrokerError` if the broker cannot be reached,
    refuses us or does not acknowledge every message within ``timeout``."""
    topics = retained_topics(config)
    with _session(config, "uninstall", timeout) as session:
        try:
            for topic in topics:
                session.publish(topic, b"", qos=1, retain=True, timeout=timeout)
        except BrokerProblemError as exc:
            raise BrokerError(
                f"the broker did not acknowledge within {timeout:g} s: {exc}"
            ) from None
    return topics


def _stopped_after(seconds: float) -> threading.Event:
    event = threading.Event()
    timer = threading.Timer(seconds, event.set)
    timer.daemon = True
    timer.start()
    return event


def run_client(config: ClientConfig, *, source: Path, dry_run: bool = False) -> int:
    """``powerbridge client run``: run in the foreground until SIGTERM/SIGINT; exit code."""
    key = load_signing_key(config, str(source))
    stop = threading.Event()
    holder: list[ClientRuntime] = []

    def on_signal(signum: int) -> None:  # the signal watcher's thread, never the handler
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()
        if holder:
            holder[0].submit(Stop())

    with StopSignals(on_signal):
        address = resolve_broker(config, stop=stop)
        if address is None:
            return 0
        runtime, listener = build_client(
            config, host=address[0], port=address[1], dry_run=dry_run, key=key
        )
        holder.append(runtime)
        log.info("%s", describe(runtime))
        if stop.is_set():
            return 0
        listener.start()
        try:
            runtime.run()
        finally:
            listener.stop()
    log.info("shutdown client stopped")
    return 0
