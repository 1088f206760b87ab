"""Real shutdown client runtimes in one process, reporting each change of their decision.

``python -m tests.benchmarks.probe_clients SPEC.json`` starts one
:class:`~bridge.shutdown.runtime.ClientRuntime` with its paho
:class:`~bridge.shutdown.listener.Listener` per client in the spec (the same pieces and
threads as ``powerbridge client run``), and prints to stdout one line per event::

    ready <client> <monotonic>      connected, and the bridge is known to have mains
    counting <client> <monotonic>   the decision now counts down to a shutdown (outage seen)
    idle <client> <monotonic>       the decision is idle again (countdown cancelled)

The time is taken when ``evaluate()`` returns — after the pure ``decide()`` and after the
client has logged and queued its new retained ``state`` — so it is the decision as the client
acts on it.  It stops when stdin closes.  Shutdowns are impossible here: a 24 h delay, a dry
run, and ``/bin/true`` as the command.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.clock import SuspendAwareClock
from bridge.config import parse_client_config
from bridge.model import MainsState
from bridge.mqtt.contract import client_user
from bridge.shutdown.actions import Actions
from bridge.shutdown.listener import Listener
from bridge.shutdown.policy import Decision, Phase
from bridge.shutdown.runtime import ClientRuntime, Stop


class TimedRuntime(ClientRuntime):
    """A client runtime that reports when its decision changes phase (and when it is ready)."""

    report: Callable[[str, str, float], None]
    _phase: Phase | None = None
    _ready = False

    def evaluate(self) -> Decision:
        decision = super().evaluate()
        at = time.monotonic()
        if decision.phase is not self._phase:
            first = self._phase is None
            self._phase = decision.phase
            if not first:
                self.report(decision.phase.value, self.client_id, at)
        if not self._ready:
            view = self.tracker.view()
            if view.connected and all(b.mains is MainsState.ON for b in view.bridges):
                self._ready = True
                self.report("ready", self.client_id, at)
        return decision


def client_yaml(client_id: str, host: str, port: int, bridges: list[str]) -> str:
    return f"""
client: {{id: {client_id}}}
mqtt: {{host: {host}, port: {port}, reconnect_min: 1s, reconnect_max: 2s}}
bridges: [{", ".join(bridges)}]
shutdown: {{delay: 24h, command: [/bin/true], dry_run: true, notify: none}}
"""


def main(argv: list[str]) -> int:
    spec: dict[str, Any] = json.loads(Path(argv[0]).read_text())
    logging.basicConfig(
        filename=spec["log"],
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    lock = threading.Lock()
    out = sys.stdout

    def report(kind: str, client: str, at: float) -> None:
        with lock:
            out.write(f"{kind} {client} {at:.9f}\n")
            out.flush()

    clock = SuspendAwareClock()
    running: list[tuple[TimedRuntime, Listener, threading.Thread]] = []
    for entry in spec["clients"]:
        client_id = entry["id"]
        config = parse_client_config(
            client_yaml(client_id, spec["host"], spec["port"], spec["bridges"])
        )
        runtime = TimedRuntime(
            config, clock=clock, actions=Actions(config.shutdown, dry_run=True), client_id=client_id
        )
        runtime.report = report
        listener = Listener(
            config.mqtt,
            host=spec["host"],
            port=spec["port"],
            mqtt_client_id=f"powerbridge-client-{client_id}",
            username=client_user(client_id),
            password=entry["password"],
            status_topic=runtime.topics.status,
            subscriptions=runtime.subscriptions,
            on_event=runtime.submit,
            clock=clock,
        )
        runtime.publisher = listener
        thread = threading.Thread(target=runtime.run, name=f"client-{client_id}", daemon=True)
        thread.start()
        listener.start()
        running.append((runtime, listener, thread))
    sys.stdin.read()  # until the benchmark closes our stdin
    for runtime, _listener, _thread in running:
        runtime.submit(Stop())
    for _runtime, listener, thread in running:
        thread.join(5)
        listener.stop(timeout=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
