"""Logging setup (text or JSON lines) and a throttle for failures that repeat.

A failure that repeats (broker down, meter unplugged) is logged once with its
cause, then summarised: ``still failing (N times in the last 5 min)``, then once
more when it recovers.  :class:`RepeatedFailure` implements that in one place.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

SECRET_MARKERS = ("password", "secret", "key")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, and any ``extra`` fields."""

    _RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._RESERVED and not key.startswith("_"):
                out[key] = (
                    value if isinstance(value, int | float | str | bool | None) else str(value)
                )
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(verbosity: int = 0, fmt: str = "text", stream: TextIO | None = None) -> None:
    """Configure the root logger: WARNING by default, INFO with -v, DEBUG with -vv."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # paho and zeroconf are chatty at DEBUG; keep them one level quieter than us.
    for noisy in ("paho", "zeroconf", "asyncio"):
        logging.getLogger(noisy).setLevel(max(level, logging.INFO))


class RepeatedFailure:
    """Log the first failure with its cause, then a summary at most every ``interval`` s.

    >>> broker = RepeatedFailure(log, "broker unreachable")
    >>> broker.failed(exc)   # logs "broker unreachable: <cause>" the first time
    >>> broker.recovered()   # logs "broker reachable again after N failures" once
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        interval: float = 300.0,
        clock: Any = time.monotonic,
    ) -> None:
        self._log = logger
        self._what = what
        self._interval = interval
        self._clock = clock
        self.count = 0
        self._since_summary = 0
        self._last_summary = 0.0
        self._first_at = 0.0

    @property
    def failing(self) -> bool:
        return self.count > 0

    def failed(self, cause: object) -> None:
        now = self._clock()
        self.count += 1
        self._since_summary += 1
        if self.count == 1:
            self._first_at = now
            self._last_summary = now
            self._since_summary = 0
            self._log.warning("%s: %s", self._what, cause)
        elif now - self._last_summary >= self._interval:
            self._log.warning(
                "%s: still failing (%d times in the last %.0f s; latest: %s)",
                self._what,
                self._since_summary,
                now - self._last_summary,
                cause,
            )
            self._last_summary = now
            self._since_summary = 0

    def recovered(self) -> None:
        if self.count:
            self._log.warning(
                "%s: recovered after %d failure(s) over %.1f s",
                self._what,
                self.count,
                self._clock() - self._first_at,
            )
        self.count = 0
        self._since_summary = 0
