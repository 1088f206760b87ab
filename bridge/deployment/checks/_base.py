"""What every check shares: the verdict, the context, and the running service's retained state.

A check returns a :class:`CheckResult`; :class:`CheckContext` carries where the
configuration is, the host, the clocks and what earlier checks learnt (the loaded
configuration, the device id).  :func:`read_published` is the one reader of what a
running service publishes: the meter and mains checks judge the hardware by it
while the service owns it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

from bridge.clock import Clock, SystemClock, kernel_clock_synchronised
from bridge.config import BridgeConfig
from bridge.deployment import systemd
from bridge.errors import PayloadError
from bridge.mqtt.contract import BridgeTopics
from bridge.mqtt.session import BrokerProblemError, BrokerSession

T = TypeVar("T")


class Outcome(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict.  ``fix`` is set on every failure."""

    key: str
    title: str
    outcome: Outcome
    detail: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.key,
            "title": self.title,
            "status": self.outcome.value,
            "detail": self.detail,
            "fix": self.fix,
            "data": self.data,
        }


CHECK_TITLES: Final = {
    "config": "configuration",
    "meter": "meter",
    "mains": "mains pin",
    "broker": "broker",
    "data_dir": "data directory",
    "clock": "clock",
    "service": "service",
}
CHECK_NAMES: Final = tuple(CHECK_TITLES)


@dataclass
class CheckContext:
    """What the checks share: where the configuration is, the host, the clocks."""

    config_path: Path
    root: Path = Path("/")
    skip: frozenset[str] = frozenset()
    host: systemd.Host = field(default_factory=systemd.Host)
    clock: Clock = field(default_factory=SystemClock)
    clock_probe: Callable[[], bool | None] = kernel_clock_synchronised
    broker_timeout: float = 5.0
    config: BridgeConfig | None = None
    device_id: str | None = None
    _service_state: str | None = None

    @property
    def offline(self) -> bool:
        """True with ``--root``: installed files are inspected, systemctl is not asked."""
        return self.root.resolve() != Path("/")

    @property
    def cfg(self) -> BridgeConfig:
        """The loaded configuration (only the ``config`` check runs without it)."""
        if self.config is None:
            raise RuntimeError("the configuration has not been loaded")
        return self.config

    @property
    def did(self) -> str:
        """The device id (set by the ``config`` check)."""
        if self.device_id is None:
            raise RuntimeError("the device id is not known before the configuration is loaded")
        return self.device_id

    @property
    def data_dir(self) -> Path:
        return systemd.under(self.root, self.cfg.device.data_dir)

    def service_state(self) -> str:
        """``systemctl is-active`` of the bridge's unit (``unknown`` offline/without systemd)."""
        if self._service_state is None:
            if self.offline or not self.host.systemd_running:
                self._service_state = "unknown"
            else:
                self._service_state = self.host.active_state()
        return self._service_state

    def service_running(self) -> bool:
        return self.service_state() in ("active", "reloading", "deactivating")


CheckFunction = Callable[[CheckContext], CheckResult]


def result(
    key: str, outcome: Outcome, detail: str, fix: str | None = None, **data: Any
) -> CheckResult:
    return CheckResult(key, CHECK_TITLES[key], outcome, detail, fix, dict(data))


def fail(key: str, detail: str, fix: str, **data: Any) -> CheckResult:
    return result(key, Outcome.FAIL, detail, fix, **data)


def passed(key: str, detail: str, **data: Any) -> CheckResult:
    return result(key, Outcome.PASS, detail, **data)


def skipped(key: str, detail: str, **data: Any) -> CheckResult:
    return result(key, Outcome.SKIP, detail, **data)


@dataclass(frozen=True, slots=True)
class Published(Generic[T]):
    """One retained topic of the running service, and how a check reads it."""

    check: str
    topic: Callable[[BridgeTopics], str]
    decode: Callable[[bytes], T]
    owned: str
    """What the service owns and publishes (``the meter; its readings``)."""
    what: str
    """What the payload is, for a message that says it is unreadable."""
    missing: str
    fix: str


def read_published(ctx: CheckContext, published: Published[T]) -> T | CheckResult:
    """The running service's retained payload, decoded, or the failed check saying why not.

    While the service runs it owns the meter and the pin; the checks judge them by
    what it publishes instead of opening them a second time.
    """
    name = published.check
    topic = published.topic(BridgeTopics(ctx.cfg.mqtt.base_topic, ctx.did))
    try:
        with BrokerSession(ctx.cfg, ctx.did).connect(ctx.broker_timeout) as session:
            found = session.retained([topic], wait=1.0)
    except BrokerProblemError as exc:
        return fail(
            name,
            f"the service is running and owns {published.owned} cannot be seen: {exc}",
            exc.fix,
        )
    raw = found.get(topic)
    if raw is None:
        return fail(name, published.missing, published.fix)
    try:
        return published.decode(raw)
    except PayloadError as exc:
        return fail(name, f"the service's {published.what} is unreadable: {exc}", "report this")
