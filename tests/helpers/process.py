"""Stopping a powerbridge service process in a test, with its stacks when it will not stop."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

TAIL_LINES = 80
TGKILL = {"x86_64": 234, "aarch64": 131, "armv7l": 268, "i686": 270}
"""The tgkill(2) system call's number, per machine."""


def another_thread(pid: int) -> int:
    """The id of a thread of ``pid`` other than its main thread (which fails the test if
    there is none)."""
    tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    others = [t for t in tids if t != pid]
    assert others, f"process {pid} has no thread but its main one"
    return others[-1]


def signal_thread(pid: int, tid: int, signum: int) -> None:
    """Send ``signum`` to one thread of a process, as the kernel may deliver it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(TGKILL[os.uname().machine], pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill({pid}, {tid}, {signum})")


def stop_service(
    process: subprocess.Popen[bytes], log: Path | None = None, timeout: float = 10.0
) -> int:
    """SIGTERM, then wait; its exit code.

    A process still running after ``timeout`` is asked for every thread's stack
    (``SIGUSR1``, :func:`bridge.stopsignals.enable_stack_dumps`), then killed, and the
    test fails with the end of its log: where it was waiting, not only that it hung.
    """
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        process.kill()
        process.wait(10)
    tail = ""
    if log is not None and log.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-TAIL_LINES:])
    raise AssertionError(
        f"{' '.join(map(str, process.args))} did not stop within {timeout:g} s of SIGTERM; "
        f"the end of its log, with its threads' stacks:\n{tail}"
    )
