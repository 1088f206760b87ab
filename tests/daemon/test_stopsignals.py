"""Stop signals reach a thread of their own; SIGUSR1 dumps stacks (bridge/stopsignals.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bridge.stopsignals import StopSignals

ROOT = Path(__file__).resolve().parents[2]


def _record() -> tuple[list[tuple[int, str]], threading.Event, object]:
    seen: list[tuple[int, str]] = []
    done = threading.Event()

    def on_signal(signum: int) -> None:
        seen.append((signum, threading.current_thread().name))
        done.set()

    return seen, done, on_signal


def test_a_stop_signal_is_handled_on_the_watcher_thread_and_handlers_are_restored() -> None:
    seen, done, on_signal = _record()
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals(on_signal) as signals:  # type: ignore[arg-type]
        assert signals.installed
        os.kill(os.getpid(), signal.SIGTERM)
        assert done.wait(5)
    assert seen == [(signal.SIGTERM, "stop-signals")]
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.set_wakeup_fd(-1) == -1  # the pipe is gone too
    assert not any(t.name == "stop-signals" for t in threading.enumerate())


def test_a_signal_arriving_while_the_main_thread_holds_a_lock_does_not_deadlock() -> None:
    # The deadlock this module exists for: the main thread holds a lock (a queue's, an
    # event's) when SIGTERM arrives, and the stop action needs that same lock.  A handler
    # running on the main thread would wait for itself forever; the watcher thread waits
    # until the main thread lets go.
    lock = threading.Lock()
    stopped = threading.Event()

    def on_signal(_signum: int) -> None:
        with lock:
            stopped.set()

    with StopSignals(on_signal):
        with lock:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(200_000):  # bytecodes, during which the Python handler runs
                pass
            time.sleep(0.2)
            assert not stopped.is_set()  # waiting for the lock, on its own thread
        assert stopped.wait(5)


def test_only_the_named_signals_reach_the_callback() -> None:
    seen, done, on_signal = _record()
    other = signal.signal(signal.SIGUSR2, lambda *_: None)  # also writes to the wakeup pipe
    try:
        with StopSignals(on_signal, (signal.SIGINT,)):  # type: ignore[arg-type]
            os.kill(os.getpid(), signal.SIGUSR2)
            os.kill(os.getpid(), signal.SIGINT)
            assert done.wait(5)
    finally:
        signal.signal(signal.SIGUSR2, other)
    assert seen == [(signal.SIGINT, "stop-signals")]


def test_off_the_main_thread_nothing_is_installed() -> None:
    result: list[bool] = []
    before = signal.getsignal(signal.SIGTERM)
    signals = StopSignals(lambda _s: None)
    thread = threading.Thread(target=lambda: result.append(signals.install()))
    thread.start()
    thread.join(5)
    assert result == [False]
    assert not signals.installed
    assert signal.getsignal(signal.SIGTERM) is before
    signals.restore()  # nothing to restore: no error


def test_a_failing_callback_is_logged_and_the_next_signal_still_arrives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []
    second = threading.Event()

    def on_signal(signum: int) -> None:
        calls.append(signum)
        if len(calls) == 1:
            raise RuntimeError("bug in a stop callback")
        second.set()

    with StopSignals(on_signal):
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)
        assert second.wait(5)
    assert calls == [signal.SIGTERM, signal.SIGINT]
    assert "error while handling SIGTERM" in caplog.text


@pytest.mark.realtime
def test_sigusr1_prints_every_threads_stack_and_the_process_goes_on() -> None:
    program = (
        "import sys, threading, time\n"
        "from bridge.stopsignals import enable_stack_dumps\n"
        "enable_stack_dumps()\n"
        "def parked_in_a_helper():\n"
        "    time.sleep(60)\n"
        "threading.Thread(target=parked_in_a_helper, daemon=True).start()\n"
        "print('ready', flush=True)\n"
        "for line in sys.stdin:\n"
        "    print('still here', flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", program],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    assert process.stderr is not None
    try:
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        process.stdin.write("go on\n")
        process.stdin.flush()
        assert process.stdout.readline() == "still here\n"  # SIGUSR1 did not stop it
    finally:
        process.stdin.close()  # end of input: the program ends
        process.wait(10)
    stderr = process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    assert process.returncode == 0
    assert "parked_in_a_helper" in stderr
    assert "(most recent call first)" in stderr
