"""A publisher on its own main-loop thread, as the daemon runs it (tests and benchmarks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bridge.broker.runner import Mosquitto
from bridge.config.bridge import BridgeConfig, parse_bridge_config
from bridge.daemon import MainLoop
from bridge.db import connect, db_path
from bridge.mqtt.discovery import DiscoveryMessage, discovery_messages
from bridge.mqtt.publisher import BridgePublisher
from bridge.mqtt.spool import Spool

T = TypeVar("T")
DEVICE = "test-bridge"


def bridge_config(
    broker: Mosquitto, tmp_path: Path, extra: str = "", *, mqtt_extra: str = ""
) -> BridgeConfig:
    secret = tmp_path / "bridge.pass"
    secret.write_text(broker.bridge(DEVICE).password + "\n")
    return parse_bridge_config(
        f"""
device: {{id: {DEVICE}, data_dir: {tmp_path / "data"}}}
mqtt:
  host: 127.0.0.1
  port: {broker.port}
  password_file: {secret}
  keepalive: 5s
  reconnect_min: 200ms
  reconnect_max: 1s
  {mqtt_extra}
spool: {{batch_size: 50}}
{extra}
"""
    )


class Harness:
    """A publisher on its own 'main loop' thread, as the daemon runs it."""

    def __init__(
        self,
        config: BridgeConfig,
        *,
        discovery: list[DiscoveryMessage] | None = None,
        commands: dict[str, Callable[[dict[str, Any]], None]] | None = None,
        key: bytes | None = None,
    ) -> None:
        data = Path(config.device.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        self.loop = MainLoop()
        self.spool = Spool(connect(db_path(data)), config.spool)
        if discovery is None:
            discovery = discovery_messages(
                config, device_id=DEVICE, device_name="Test bridge", sw_version="9.9"
            )
        self.publisher = BridgePublisher(
            config,
            self.spool,
            device_id=DEVICE,
            conn=connect(db_path(data)),
            post=self.loop.post,
            discovery=discovery,
            commands=commands,
            signing_key=key,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.loop.run(0.05)
            self.publisher.pump()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the loop thread and return its result."""
        done = threading.Event()
        box: list[T] = []

        def work() -> None:
            box.append(fn())
            done.set()

        self.loop.post(work)
        assert done.wait(10), "loop did not run the call"
        return box[0]

    def start(self) -> Harness:
        self._thread.start()
        self.publisher.start()
        return self

    def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.call(lambda: self.publisher.connected):
            assert time.monotonic() < deadline, "publisher did not connect"
            time.sleep(0.05)

    def wait_drained(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.call(lambda: self.spool.depth):
            assert time.monotonic() < deadline, f"spool not drained: {self.spool.depth}"
            time.sleep(0.05)

    def stop(self) -> None:
        self.call(self.publisher.stop)
        self._stop.set()
        self._thread.join(5)
        self.spool.close()
