"""`powerbridge client run` loads only what a PC needs (its memory target: ≤ 30 MB RSS,
tests/benchmarks/bench_client_cost.py).  The command line registers every command group, so
a heavy import at the top of any of them lands in every PC's client; this keeps them out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

NOT_ON_A_PC = (
    "asyncio",  # the NUT facade
    "bridge.config.bridge",  # the bridge's schema
    "bridge.mqtt.mdns",  # only with mqtt.host: auto
    "zeroconf",
    "gpiozero",
    "serial",
    "psycopg",
    "starlette",
    "uvicorn",
    "sqlite3",
    "difflib",  # only for a mistyped key
    "logging.handlers",  # only with --log-file
)


def test_the_client_command_path_leaves_out_the_bridge_and_the_services() -> None:
    program = (
        "import json, sys\n"
        "from bridge.cli import build_parser\n"
        "args = build_parser().parse_args(['client', 'run', '-c', 'client.yaml'])\n"
        "import bridge.config.client, bridge.shutdown.app\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    loaded = set(json.loads(done.stdout))
    assert "bridge.shutdown.runtime" in loaded  # the program did load the client
    assert sorted(loaded & set(NOT_ON_A_PC)) == []
