"""Polling a UPS through upsd with NUT's own Python client (PyNUTClient), on a thread.

Each poll is one ``LIST VAR``; a failed poll (upsd down, UPS unknown, driver stale) drops
the connection, reports ``None`` once with the reason, and the next poll reconnects.  The
callback runs on the reader's thread: the caller hands the report on to its own loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.ups.report import UpsReport, report_from_variables

log = logging.getLogger("bridge.ups")


@dataclass(frozen=True, slots=True)
class UpsTarget:
    """Which UPS to read, and how (``ups:`` of the bridge's configuration)."""

    name: str
    host: str = "127.0.0.1"
    port: int = 3493
    username: str | None = None
    password: str | None = None
    poll: float = 2.0
    timeout: float = 5.0


def _text(value: Any) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


class UpsReader:
    """Reads ``target`` every ``poll`` seconds and calls ``on_report(report, error)``."""

    def __init__(
        self, target: UpsTarget, on_report: Callable[[UpsReport | None, str | None], None]
    ) -> None:
        self.target = target
        self._on_report = on_report
        self._client: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def read_once(self) -> UpsReport:
        """One poll (raises on any failure; the connection is then dropped)."""
        from PyNUTClient.PyNUT import PyNUTClient  # type: ignore[import-untyped]

        t = self.target
        try:
            if self._client is None:
                self._client = PyNUTClient(
                    host=t.host,
                    port=t.port,
                    login=t.username,
                    password=t.password,
                    timeout=t.timeout,
                )
            raw = self._client.GetUPSVars(t.name)
        except Exception:
            self._client = None
            raise
        return report_from_variables({_text(k): _text(v) for k, v in raw.items()})

    def poll(self) -> UpsReport | None:
        """One poll, reported to the callback; never raises."""
        try:
            report = self.read_once()
        except Exception as exc:  # noqa: BLE001 - PyNUTClient raises anything; all mean "no data"
            reason = f"{type(exc).__name__}: {exc}"
            if not self._failing:
                log.warning(
                    "cannot read UPS %s at %s:%d: %s",
                    self.target.name,
                    self.target.host,
                    self.target.port,
                    reason,
                )
            self._failing = True
            self._on_report(None, reason)
            return None
        if self._failing:
            log.info("reading UPS %s again", self.target.name)
        self._failing = False
        self._on_report(report, None)
        return report

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ups-reader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.target.poll)
