"""Stop signals handled off the signal handler, and stack dumps on ``SIGUSR1``.

A Python signal handler runs on the main thread between two bytecodes, possibly while
that thread holds a lock: a ``queue.Queue``'s, an ``Event``'s, a database's.  A handler
that takes such a lock itself (putting on the queue, setting the event) can deadlock the
process on ``SIGTERM``, and ``systemctl stop`` then waits for its timeout and kills it.

So the handlers installed here do nothing.  The interpreter's C-level handler writes the
signal's number to a pipe (:func:`signal.set_wakeup_fd`); a thread of its own reads the
pipe and calls ``on_signal(signum)``, where taking any lock is safe.  Only the main
thread may install them; elsewhere (a test running a daemon on a thread)
:meth:`StopSignals.install` does nothing and says so.

:func:`enable_stack_dumps` makes ``kill -USR1 PID`` print every thread's stack to
stderr (the journal, under systemd) without stopping the process: how to see where a
process that will not stop is waiting (docs/troubleshooting.md).
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
DUMP_SIGNAL = getattr(signal, "SIGUSR1", None)
"""``kill -USR1 PID`` prints every thread's stack (POSIX only)."""


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: nothing (the pipe carries the signal to the watcher)."""


class StopSignals:
    """``on_signal(signum)`` for each of ``signals``, on a thread of its own.

    Use as a context manager around the blocking part of a command; on exit the previous
    handlers and wakeup file descriptor are restored.
    """

    def __init__(
        self,
        on_signal: Callable[[int], None],
        signals: Iterable[signal.Signals] = STOP_SIGNALS,
    ) -> None:
        self._on_signal = on_signal
        self._signals = frozenset(int(s) for s in signals)
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1
        self._pipe: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    @property
    def installed(self) -> bool:
        return self._pipe is not None

    def install(self) -> bool:
        """Install the handlers; ``False`` (and nothing changed) off the main thread."""
        if threading.current_thread() is not threading.main_thread():
            log.debug("not on the main thread: signals left as they are")
            return False
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)  # a full pipe drops a byte, never blocks the handler
        self._previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        self._pipe = (read_end, write_end)
        for signum in self._signals:
            self._previous[signum] = signal.signal(signum, _ignore)
        self._thread = threading.Thread(
            target=self._watch, args=(read_end,), name="stop-signals", daemon=True
        )
        self._thread.start()
        return True

    def restore(self) -> None:
        """Put back the previous handlers; the watcher thread ends."""
        if self._pipe is None:
            return
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        signal.set_wakeup_fd(self._previous_fd)
        read_end, write_end = self._pipe
        self._pipe = None
        os.close(write_end)  # the watcher reads end-of-file and returns
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        os.close(read_end)

    def __enter__(self) -> StopSignals:
        self.install()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.restore()

    def _watch(self, read_end: int) -> None:
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum in self._signals:
                    self._deliver(signum)

    def _deliver(self, signum: int) -> None:
        try:
            self._on_signal(signum)
        except Exception:  # a bug in a stop callback must not kill the watcher
            log.exception("error while handling %s", signal.Signals(signum).name)


def enable_stack_dumps() -> None:
    """``kill -USR1 PID`` prints every thread's stack to stderr; the process goes on."""
    if DUMP_SIGNAL is None or threading.current_thread() is not threading.main_thread():
        return
    try:
        faulthandler.register(DUMP_SIGNAL, file=sys.stderr, all_threads=True, chain=False)
    except (OSError, ValueError, RuntimeError) as exc:  # stderr without a file descriptor
        log.debug("no stack dumps on SIGUSR1: %s", exc)
