"""systemd's readiness and watchdog protocol (``sd_notify``) in a few lines of socket code.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET`` (a datagram socket: a path,
or an abstract name written with a leading ``@``) and, with ``WatchdogSec=``,
``$WATCHDOG_USEC``.  The daemon sends ``READY=1`` once it runs, ``WATCHDOG=1`` at
least every half of the watchdog timeout *while its main loop is healthy*,
``STATUS=...`` for ``systemctl status`` and ``STOPPING=1`` on the way out.  When it
stops pinging, systemd kills and restarts it (``Restart=always``).

Outside systemd every call is a no-op that returns ``False``: the same code runs in
a terminal, in tests and on the demo.

:class:`Heartbeat` is the gate between the main loop and the watchdog: the loop
calls :meth:`Heartbeat.tick` every iteration, the parts it depends on (meter
reader, publisher) call :meth:`Heartbeat.alive`; a ping is sent only when it is due
and every part has reported within its allowance.  A stuck loop stops calling
``tick``; a stuck part makes ``tick`` withhold the ping.  Either way systemd
restarts the bridge.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"


def socket_address(value: str | None) -> str | None:
    """The ``sendto`` address for a ``$NOTIFY_SOCKET`` value, or ``None`` if unusable.

    ``@name`` is an abstract socket (``\\0name``); otherwise an absolute path.
    Other forms (``vsock:``, relative paths) are not used for services and are ignored.
    """
    if not value:
        return None
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_seconds(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """The watchdog *timeout* in seconds from ``$WATCHDOG_USEC``, if it applies to ``pid``."""
    raw = environ.get(WATCHDOG_USEC)
    if not raw:
        return None
    owner = environ.get(WATCHDOG_PID)
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None  # meant for another process (our parent, say)
        except ValueError:
            return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


class Notifier:
    """Talks to systemd's notification socket; every method is a no-op without one.

    Methods return whether the datagram was sent.  They never raise: a service
    manager that went away must not take the bridge down with it.
    """

    def __init__(self, address: str | None = None, watchdog_timeout: float | None = None) -> None:
        self._address = socket_address(address) if address else None
        self._watchdog_timeout = watchdog_timeout
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failures = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, unset: bool = False) -> Notifier:
        """Read ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``).

        With ``unset=True`` the variables are removed from ``os.environ`` so that
        child processes do not inherit them.
        """
        env = os.environ if environ is None else environ
        notifier = cls(env.get(NOTIFY_SOCKET), watchdog_seconds(env))
        if unset and environ is None:
            for name in (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID):
                os.environ.pop(name, None)
        return notifier

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens."""
        return self._address is not None

    @property
    def watchdog_timeout(self) -> float | None:
        """``WatchdogSec=`` in seconds, or ``None`` when no watchdog is armed."""
        return self._watchdog_timeout if self.enabled else None

    @property
    def watchdog_interval(self) -> float | None:
        """How often to ping: half the watchdog timeout (``None``: no watchdog)."""
        timeout = self.watchdog_timeout
        return None if timeout is None else timeout / 2

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram."""
        if self._address is None or not assignments:
            return False
        data = "\n".join(assignments).encode("utf-8", errors="replace")
        with self._lock:
            try:
                if self._sock is None:
                    kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    self._sock = socket.socket(socket.AF_UNIX, kind)
                self._sock.sendto(data, self._address)
            except OSError as exc:
                self._failures += 1
                if self._failures == 1 or self._failures % 100 == 0:
                    log.warning(
                        "cannot notify the service manager (%d failure(s)): %s",
                        self._failures,
                        exc,
                    )
                return False
        self._failures = 0
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: start-up is complete (``systemctl start`` returns now)."""
        lines = ["READY=1", f"MAINPID={os.getpid()}"]
        if status:
            lines.append(f"STATUS={_one_line(status)}")
        return self.send(*lines)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the main loop is alive and healthy."""
        if self.watchdog_timeout is None:
            return False
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: an orderly shutdown has begun."""
        lines = ["STOPPING=1"]
        if status:
            lines.append(f"STATUS={_one_line(status)}")
        return self.send(*lines)

    def status(self, text: str) -> bool:
        """``STATUS=...``: one line shown by ``systemctl status``."""
        return self.send(f"STATUS={_one_line(text)}")

    def extend_timeout(self, seconds: float) -> bool:
        """``EXTEND_TIMEOUT_USEC``: start-up or shutdown needs ``seconds`` more."""
        return self.send(f"EXTEND_TIMEOUT_USEC={max(0, int(seconds * 1_000_000))}")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


@dataclass
class _Part:
    allowance: float
    last: float


class Heartbeat:
    """Gate the watchdog on the health of the main loop and of the parts it depends on.

    >>> beat = Heartbeat(notifier)
    >>> beat.expect("meter", within=30.0)   # the meter thread must report every 30 s
    >>> ...                                 # meter thread: beat.alive("meter")
    >>> while running:                      # main loop
    ...     beat.tick()                     # pings when due, if every part is alive

    ``tick`` is cheap and rate-limited: it pings at most once per :attr:`interval`
    — by default a quarter of the watchdog timeout, half of
    ``notifier.watchdog_interval``, so that a loop that wakes up to a second late
    still pings well within systemd's recommended half — and the main loop may
    call it every iteration; :meth:`deadline` says when the next ping is due, for a
    loop that sleeps until its next timer.  A main loop that stops iterating stops
    the pings.
    """

    def __init__(
        self,
        notifier: Notifier,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float | None = None,
    ) -> None:
        self._notifier = notifier
        self._clock = clock
        half = notifier.watchdog_interval
        self._interval = interval if interval is not None else (None if half is None else half / 2)
        self._parts: dict[str, _Part] = {}
        self._lock = threading.Lock()
        self._last_ping: float | None = None
        self._withheld_for: tuple[str, ...] = ()
        self.pings = 0
        """Pings sent so far (for tests and diagnostics)."""

    @property
    def interval(self) -> float | None:
        """Least time between two pings (``None``: no watchdog, ``tick`` does nothing)."""
        return self._interval

    def deadline(self) -> float | None:
        """When (on the heartbeat's clock) the next ping is due; ``None`` without a watchdog."""
        if self._interval is None:
            return None
        if self._last_ping is None:
            return self._clock()
        return self._last_ping + self._interval

    def expect(self, name: str, within: float) -> None:
        """Require ``alive(name)`` at least every ``within`` seconds (counted from now)."""
        with self._lock:
            self._parts[name] = _Part(within, self._clock())

    def forget(self, name: str) -> None:
        """Stop requiring ``name`` (a part that was switched off on purpose)."""
        with self._lock:
            self._parts.pop(name, None)

    def alive(self, name: str) -> None:
        """Called by a part (any thread) each time it made progress."""
        with self._lock:
            part = self._parts.get(name)
            if part is not None:
                part.last = self._clock()

    def stalled(self) -> list[str]:
        """Parts that have not reported within their allowance, oldest first."""
        now = self._clock()
        with self._lock:
            late = [
                (now - p.last, name)
                for name, p in self._parts.items()
                if now - p.last > p.allowance
            ]
        return [name for _age, name in sorted(late, reverse=True)]

    def tick(self) -> bool:
        """Called from the main loop each iteration; returns whether a ping was sent."""
        if self._interval is None:
            return False
        stalled = tuple(self.stalled())
        if stalled:
            if stalled != self._withheld_for:
                self._withheld_for = stalled
                log.error("watchdog withheld: no progress from %s", ", ".join(stalled))
                self._notifier.status(f"unhealthy: no progress from {', '.join(stalled)}")
            return False
        if self._withheld_for:
            log.warning("watchdog resumed: every part reports again")
            self._withheld_for = ()
            self._notifier.status("running")
        now = self._clock()
        if self._last_ping is not None and now - self._last_ping < self._interval:
            return False
        if self._notifier.watchdog():
            self._last_ping = now
            self.pings += 1
            return True
        return False
