"""The demo's moving parts: a private broker, a bridge and a shutdown client.

Everything lives in one temporary directory (broker files, generated
configurations, password files, the bridge's database, logs) that
:meth:`DemoStack.close` removes.  The bridge and the client are the real
programs, started as ``python -m bridge run`` and ``python -m bridge client run``
with generated configurations; each runs in its own session so that a Ctrl-C on
the terminal reaches only the demo, which then stops them in order: client,
bridge, broker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bridge.broker.runner import BrokerSetup, Credentials, Mosquitto, find_mosquitto, prepare
from bridge.config import parse_bridge_config, parse_client_config
from bridge.demo.scenario import Timings
from bridge.errors import ConfigError, PowerbridgeError

log = logging.getLogger(__name__)

BRIDGE_ID = "demo-bridge"
CLIENT_ID = "demo-pc"
BASE = "powerbridge"
WORKDIR_PREFIX = "powerbridge-demo-"
KEPT_MARKER = ".kept"
"""A directory kept on purpose (``--keep``) carries this file and is never removed."""
STALE_AFTER_S = 120.0
"""A demo directory older than this that no process uses was left by a killed demo."""


class DemoError(PowerbridgeError):
    """A part of the demo did not start or stopped by itself."""


@dataclass(frozen=True, slots=True)
class StackOptions:
    timings: Timings
    listen: str = "127.0.0.1"
    """Address the broker listens on (loopback unless Home Assistant is elsewhere)."""
    port: int | None = None
    keep: bool = False
    """Keep the temporary directory (logs, configurations) after the demo."""
    meter_protocol: str = "pzem004t"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if the demo itself dies (even by SIGKILL)."""
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class Child:
    """A ``python -m bridge ...`` process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            # Never touch real GPIO, even when the demo runs on a Raspberry Pi.
            "GPIOZERO_PIN_FACTORY": "mock",
        }
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509 - started before any thread exists; only calls prctl
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def exit_code(self) -> int | None:
        """``None`` while running (or never started)."""
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 8.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; always reaps the process."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Anything it started in its session goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _processes_using(paths: list[Path]) -> set[Path]:
    """Which of ``paths`` appear in a live process's command line (Linux ``/proc``)."""
    used: set[Path] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        used |= {p for p in paths if str(p) in cmdline}
    return used


def remove_stale_workdirs(root: Path, *, min_age: float = STALE_AFTER_S) -> list[Path]:
    """Remove directories left by demos that were killed (SIGKILL leaves no time to clean).

    Their processes died with them (see :func:`_die_with_parent`); a directory counts as
    left over when it is older than ``min_age`` and no live process names it.  Only on
    Linux, where ``/proc`` says which processes exist.
    """
    if not Path("/proc/self/cmdline").exists():
        return []
    now = time.time()
    candidates = []
    for path in root.glob(f"{WORKDIR_PREFIX}*"):
        try:
            info = path.lstat()
        except OSError:
            continue
        usable = path.is_dir() and not path.is_symlink() and info.st_uid == os.getuid()
        old = now - info.st_mtime > min_age
        if usable and old and not (path / KEPT_MARKER).exists():
            candidates.append(path)
    if not candidates:
        return []
    stale = [p for p in candidates if p not in _processes_using(candidates)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def write_secret(path: Path, secret: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret + "\n")
    return path


def _mqtt_yaml(host: str, port: int, creds: Credentials, password_file: Path) -> str:
    """The ``mqtt:`` section both demo configurations share: the demo's own broker."""
    return f"""\
mqtt:
  host: {json.dumps(host)}
  port: {port}
  username: {creds.username}
  password_file: {json.dumps(str(password_file))}
  keepalive: 10s
  base_topic: {BASE}"""


def bridge_yaml(
    *, host: str, port: int, creds: Credentials, password_file: Path, data_dir: Path,
    timings: Timings, meter_protocol: str,
) -> str:  # fmt: skip
    """The demo bridge: simulated meter behind a pty, mock mains pin, short windows."""
    return f"""\
# Generated by `powerbridge demo`: a bridge with simulated hardware.
device:
  id: {BRIDGE_ID}
  name: powerbridge demo
  data_dir: {json.dumps(str(data_dir))}
{_mqtt_yaml(host, port, creds, password_file)}
meter:
  type: simulated        # a wire-level simulator behind a pseudo-terminal
  interval: 1s
mains:
  source: gpio           # the mock pin, driven by `simulate` commands
  confirm_off: {timings.confirm_off}s
  confirm_on: {timings.confirm_on}s
health:
  interval: 5s
leds:
  enabled: false
spool:
  flush_interval: 1s
simulation:
  enabled: true
  meter_protocol: {meter_protocol}
  load_w: 120
  voltage_v: 230
"""


def client_yaml(
    *, host: str, port: int, creds: Credentials, password_file: Path, timings: Timings
) -> str:
    """The demo shutdown client: dry run, short delay, a harmless command regardless."""
    harmless = [sys.executable, "-c", "pass"]
    return f"""\
# Generated by `powerbridge demo`: a shutdown client that only pretends.
client:
  id: {CLIENT_ID}
  name: demo PC
  memory_file: {json.dumps(str(password_file.with_name("client-memory.json")))}
{_mqtt_yaml(host, port, creds, password_file)}
bridges:
  - {BRIDGE_ID}
shutdown:
  delay: {timings.delay}s
  dry_run: true           # logs "would shut down" instead
  command: {json.dumps(harmless)}   # and even then, a command that does nothing
  warnings: []
  notify: none
"""


def archive_yaml(*, host: str, port: int, password_file: Path, database: Path) -> str:
    """The demo's archive: every sample in one SQLite file, its view on a free loopback port."""
    return f"""\
# Generated by `powerbridge demo`: the archive on SQLite, its view on loopback.
archive:
  database: {json.dumps(f"sqlite:///{database}")}
http:
  host: 127.0.0.1
  port: 0
mqtt:
  host: {json.dumps(host)}
  port: {port}
  username: archiver
  password_file: {json.dumps(str(password_file))}
  keepalive: 10s
  base_topic: {BASE}
  client_id: powerbridge-demo-archive
"""


class DemoStack:
    """Broker, bridge, client and archive in one temporary directory."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.removed_stale = remove_stale_workdirs(Path(tempfile.gettempdir()))
        self.workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        self.broker: Mosquitto | None = None
        self.mosquitto: Child | None = None
        self.bridge: Child | None = None
        self.client: Child | None = None
        self.archive: Child | None = None
        self.connect_host = (
            "127.0.0.1" if options.listen in ("0.0.0.0", "::", "") else options.listen  # noqa: S104 - comparing, not binding
        )

    @property
    def children(self) -> list[Child]:
        """Every process of the demo, in the order they are stopped."""
        return [
            c for c in (self.archive, self.client, self.bridge, self.mosquitto) if c is not None
        ]

    def start_broker(self, timeout: float = 10.0) -> Mosquitto:
        """Render the shipped configuration and start Mosquitto as one of our children."""
        broker = prepare(
            self.workdir / "broker",
            BrokerSetup(bridges=(BRIDGE_ID,), clients=(CLIENT_ID,), observer=False),
            port=self.options.port,
        )
        if self.options.listen != "127.0.0.1":
            conf = broker.config_file.read_text(encoding="utf-8")
            conf, n = re.subn(
                rf"^listener {broker.port} \S+$",
                f"listener {broker.port} {self.options.listen}",
                conf,
                flags=re.MULTILINE,
            )
            if n != 1:
                raise DemoError("could not find the broker's listener line to change its address")
            broker.config_file.write_text(conf, encoding="utf-8")
            broker.host = self.connect_host
        self.broker = broker
        # Started here rather than with broker.start(), so that it dies with the demo too.
        self.mosquitto = Child(
            "broker", [find_mosquitto(), "-c", str(broker.config_file)], broker.log_file
        )
        self.mosquitto.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.mosquitto.exit_code() is not None:
                raise DemoError(f"mosquitto exited at once; its log:\n{self.mosquitto.log_tail()}")
            try:
                with socket.create_connection((self.connect_host, broker.port), timeout=0.2):
                    return broker
            except OSError:
                time.sleep(0.02)
        raise DemoError(f"mosquitto did not listen on port {broker.port} within {timeout:.0f} s")

    def write_configs(self) -> tuple[Path, Path]:
        broker = self._broker()
        timings = self.options.timings
        bridge_creds, client_creds = broker.bridge(BRIDGE_ID), broker.client(CLIENT_ID)
        write_secret(self.workdir / "ha.password", broker.homeassistant.password)
        bridge_text = bridge_yaml(
            host=self.connect_host,
            port=broker.port,
            creds=bridge_creds,
            password_file=write_secret(self.workdir / "bridge.password", bridge_creds.password),
            data_dir=self.workdir / "bridge-data",
            timings=timings,
            meter_protocol=self.options.meter_protocol,
        )
        client_text = client_yaml(
            host=self.connect_host,
            port=broker.port,
            creds=client_creds,
            password_file=write_secret(self.workdir / "client.password", client_creds.password),
            timings=timings,
        )
        try:
            parse_bridge_config(bridge_text, "demo bridge.yaml")
            parse_client_config(client_text, "demo client.yaml")
        except ConfigError as exc:
            raise DemoError(
                f"the demo's generated configuration does not validate:\n{exc}"
            ) from None
        bridge_path = self.workdir / "bridge.yaml"
        client_path = self.workdir / "client.yaml"
        bridge_path.write_text(bridge_text, encoding="utf-8")
        client_path.write_text(client_text, encoding="utf-8")
        (self.workdir / "bridge-data").mkdir(exist_ok=True)
        return bridge_path, client_path

    def start_programs(self, bridge_path: Path, client_path: Path) -> None:
        python = [sys.executable, "-m", "bridge", "-v"]
        self.bridge = Child(
            "bridge", [*python, "run", "-c", str(bridge_path)], self.workdir / "bridge.log"
        )
        self.client = Child(
            "shutdown client",
            [*python, "client", "run", "-c", str(client_path), "--dry-run"],
            self.workdir / "client.log",
        )
        self.bridge.start()
        self.client.start()

    def start_archive(self) -> None:
        """``powerbridge archive run`` on SQLite in the working directory (needs the archive
        extra; without it the demo runs without an archive)."""
        broker = self._broker()
        password = write_secret(self.workdir / "archiver.password", broker.archiver.password)
        config = self.workdir / "archive.yaml"
        config.write_text(
            archive_yaml(
                host=self.connect_host, port=broker.port, password_file=password,
                database=self.workdir / "archive.db",
            ),
            encoding="utf-8",
        )  # fmt: skip
        self.archive = Child(
            "archive",
            [sys.executable, "-m", "bridge", "-v", "archive", "run", "-c", str(config)],
            self.workdir / "archive.log",
        )
        self.archive.start()

    def archive_url(self, timeout: float = 15.0) -> str | None:
        """The management view's URL, once the archive has printed it."""
        if self.archive is None:
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                for line in self.archive.log_path.read_text(errors="replace").splitlines():
                    if line.startswith("management view: "):
                        return line.removeprefix("management view: ").strip()
            if self.archive.exit_code() is not None:
                return None
            time.sleep(0.05)
        return None

    def check_children(self) -> None:
        """Raise :class:`DemoError` (with the log) if the bridge or the client has exited."""
        for child in self.children:
            code = child.exit_code()
            if code is not None:
                raise DemoError(
                    f"the {child.name} exited by itself with code {code}; "
                    f"its log ({child.log_path.name}) ends with:\n{child.log_tail()}"
                )

    def _broker(self) -> Mosquitto:
        if self.broker is None:
            raise DemoError("the broker is not running")
        return self.broker

    def close(self) -> None:
        """Stop the archive, the client, the bridge and the broker, then remove the directory."""
        for child in self.children:
            child.stop()
        if self.options.keep:
            (self.workdir / KEPT_MARKER).touch()
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
