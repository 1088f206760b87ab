"""Shared fixtures: a real Mosquitto from the shipped configuration, and pseudo-terminals."""

from __future__ import annotations

import contextlib
import errno
import os
import pty
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.broker.runner import (
    BrokerSetup,
    Mosquitto,
    MosquittoNotFoundError,
    find_mosquitto,
    prepare,
)

if "libfaketime" in os.environ.get("LD_PRELOAD", ""):
    # The any-day run (./dev test) preloads libfaketime with the wall clock moved ahead and
    # the monotonic clock left alone.  Its clock_nanosleep then sometimes fails a perfectly
    # good sleep with EINVAL (subprocess.wait's polling sleep, for one), which has nothing
    # to do with dates: such a sleep returns early instead, and the caller's loop re-checks.
    _real_sleep = time.sleep

    def _sleep_despite_libfaketime(seconds: float) -> None:
        try:
            _real_sleep(seconds)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise

    time.sleep = _sleep_despite_libfaketime


REALTIME_FIXTURES = frozenset({"pty_pair", "simulator", "line", "broker"})
"""Fixtures whose tests run against real time (pseudo-terminals, a real Mosquitto)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a real-time fixture ``realtime`` (see pyproject.toml)."""
    for item in items:
        if REALTIME_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.realtime)


@pytest.fixture(autouse=True)
def _client_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shutdown clients started by a test keep their replay memory in a fresh directory."""
    monkeypatch.setenv("POWERBRIDGE_STATE_DIR", str(tmp_path_factory.mktemp("client-state")))


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    """The mosquitto binary; a missing one fails the test with an install instruction."""
    try:
        return find_mosquitto()
    except MosquittoNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def broker_setup() -> BrokerSetup:
    """Override in a test module to change identities or switch TLS on."""
    return BrokerSetup()


@pytest.fixture
def broker(mosquitto_binary: str, broker_setup: BrokerSetup, tmp_path: Path) -> Iterator[Mosquitto]:
    """A running Mosquitto on a free loopback port, rendered from ``mosquitto/``.

    ``broker.stop()``, ``broker.kill()`` (SIGKILL) and ``broker.start()`` /
    ``broker.restart()`` keep the same port and persistence directory.
    """
    del mosquitto_binary
    instance = prepare(tmp_path / "mosquitto", broker_setup)
    instance.start()
    try:
        yield instance
    finally:
        instance.kill()


class PtyPair:
    """A pseudo-terminal: ``port`` is the path a driver opens; ``master`` is the far end."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.port = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    """A raw-mode pseudo-terminal pair for serial tests (closed afterwards)."""
    pair = PtyPair()
    try:
        yield pair
    finally:
        pair.close()
