"""The UPS as a part of the bridge: polled on a worker thread, published on the main loop.

:class:`UpsSource` is a :class:`~bridge.parts.Worker` that reads the UPS through
:class:`~bridge.ups.reader.UpsReader` every ``ups.poll`` seconds.  Its poll loop is the
one retry policy of the UPS (docs/architecture.md, "retries"): a failed read drops the
connection and the next poll, one period later, reconnects — no backoff, because a
read of a local upsd is cheap and a UPS that comes back must be seen within a poll.
The reader logs a failure once per episode; health carries ``ups_link``.

What it reads goes two ways: at once to the mains sensor (``OB`` is mains off, ``OL``
on, no data unknown; :meth:`bridge.mains.MainsSensor.feed_ups`), and posted to the main
loop, where :class:`UpsPublication` keeps the retained ``ups`` topic: published on
every change and refreshed every :data:`~bridge.mqtt.contract.UPS_REFRESH_S`, each time
with a fresh ``ts`` (and ``sig`` with a key).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bridge.clock import Clock
from bridge.errors import UsageError
from bridge.model import MainsState
from bridge.mqtt.contract import QOS_UPS, UPS_REFRESH_S
from bridge.parts import Worker
from bridge.ups.reader import UpsReader, UpsTarget
from bridge.ups.report import UpsOrigin, UpsReport, encode_ups

if TYPE_CHECKING:
    from bridge.config.bridge import UpsConfig
    from bridge.mains import MainsSensor
    from bridge.mqtt.publisher import BridgePublisher

log = logging.getLogger("bridge.ups")

Listener = Callable[[UpsReport | None, str | None], None]


def target_of(config: UpsConfig) -> UpsTarget:
    """The reader's target from the ``ups:`` section (the password read from its file)."""
    from bridge.config.common import read_secret

    assert config.name is not None  # noqa: S101 - only built when a UPS is configured
    return UpsTarget(
        name=config.name,
        host=config.host,
        port=config.port,
        username=config.username,
        password=read_secret(config.password_file, None, "ups"),
        poll=config.poll,
        timeout=config.timeout,
    )


def mains_level(report: UpsReport | None) -> MainsState:
    """What a report says of the mains: ``OB`` off, ``OL`` on, anything else unknown."""
    if report is None:
        return MainsState.UNKNOWN
    if report.on_battery:
        return MainsState.OFF
    if report.on_line:
        return MainsState.ON
    return MainsState.UNKNOWN


class UpsSource(Worker):
    """Polls the UPS; every result goes to each listener, on this worker's thread
    (``on_link`` too, when the UPS starts or stops answering)."""

    thread_name = "ups-source"

    def __init__(
        self,
        target: UpsTarget,
        listeners: list[Listener],
        on_link: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self._listeners = listeners
        self._on_link = on_link
        self.reader = UpsReader(target, self._got)
        self.link_up: bool | None = None
        """``None`` before the first poll, then whether the last one read the UPS."""

    @property
    def join_timeout(self) -> float:
        return self.reader.target.timeout + 1.0

    def _got(self, report: UpsReport | None, error: str | None) -> None:
        up = report is not None
        changed, self.link_up = up is not self.link_up, up
        if changed and self._on_link is not None:
            self._on_link()
        for listener in self._listeners:
            try:
                listener(report, error)
            except Exception:
                log.exception("UPS report handler failed")

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.reader.poll()
            self._stopping.wait(self.reader.target.poll)


@dataclass(eq=False)
class UpsPublication:
    """The retained ``ups`` topic (main loop only): on each change, and every refresh.

    ``mains_mark()`` gives this run's ``boot`` and the ``seq`` of the mains state shown
    now (:meth:`bridge.mains.report.MainsReport.mark`); each message carries them with its
    own number, counted when it is sent (:class:`~bridge.mqtt.contract.UpsOrigin`).
    """

    publisher: BridgePublisher
    device_id: str
    clock: Clock
    mains_mark: Callable[[], tuple[str, int]]
    key: bytes | None = None
    _report: UpsReport | None = field(default=None, init=False)
    _next: float = field(default=0.0, init=False)
    _n: int = field(default=0, init=False)
    _mark: tuple[str, int] | None = field(default=None, init=False)
    """The mains mark when the last report was queued: a new one republishes at once."""

    def received(self, report: UpsReport | None) -> None:
        """A poll's result: publish when it differs from what was published."""
        if report is None or report == self._report:
            return
        self._report = report
        self._publish()

    def tick(self, now: float) -> float:
        """Refresh when due, or at once when the mains state changed; when it is due next.

        (A report made just before a mains change names the state before it; readers
        ignore such a report once they have the change, so the next one follows it.)
        """
        if self._report is not None and (now >= self._next or self.mains_mark() != self._mark):
            self._publish()
        return self._next if self._report is not None else now + UPS_REFRESH_S

    def _publish(self) -> None:
        self._next = self.clock.monotonic() + UPS_REFRESH_S
        self._mark = self.mains_mark()
        self.publisher.retain(self.publisher.topics.ups, self._produce, QOS_UPS)

    def _produce(self) -> bytes:
        report = self._report
        assert report is not None  # noqa: S101 - retained only once a report is in
        self._n += 1  # numbered when sent, so that n grows in the order of sending
        boot, seq = self.mains_mark()
        origin = UpsOrigin(boot, seq, self._n)
        return encode_ups(self.device_id, self.clock.utcnow(), report, origin, self.key)


def ups_source(
    config: UpsConfig,
    sensor: MainsSensor,
    publication: UpsPublication,
    post: Callable[[Callable[[], None]], None],
    *,
    on_link: Callable[[], None],
) -> UpsSource:
    """The bridge's UPS part: each reading's mains level goes to ``sensor`` at once (on the
    UPS thread, like the pin's edges), and the report is ``post``-ed to the main loop for
    ``publication``.  A bridge with ``ups.name`` set but without PyNUTClient refuses to
    start with a :class:`~bridge.errors.UsageError` instead of polling in vain.
    """
    try:
        import PyNUTClient.PyNUT  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise UsageError(
            "ups.name: set, but NUT's Python client (PyNUTClient) is not installed: "
            "install it with `pip install 'powerbridge[ups]'`, or remove the ups section"
        ) from None

    def on_report(report: UpsReport | None, _error: str | None) -> None:  # the UPS thread
        sensor.feed_ups(mains_level(report))
        post(lambda: publication.received(report))

    return UpsSource(target_of(config), [on_report], on_link=lambda: post(on_link))
