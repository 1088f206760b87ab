"""Start a private Mosquitto from the shipped configuration (tests, demo, benchmarks).

The shipped ``mosquitto/powerbridge.conf`` and ``mosquitto/acl`` are rendered
into a temporary directory: listener ports, file paths and the persistence
location are rewritten; every other directive is used exactly as shipped.
Credentials are generated per role.  The broker can be stopped, SIGKILLed and
restarted on the same port with the same persistence directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from bridge.broker import passwd
from bridge.broker.acl import IDENTITY_MARKER, bridge_block, bridge_user, client_block, client_user
from bridge.errors import PowerbridgeError

SEARCH_PATH = (
    "/usr/sbin",
    "/usr/local/sbin",
    "/opt/homebrew/sbin",
    "/usr/local/opt/mosquitto/sbin",
)
INSTALL_HINT = (
    "mosquitto not found on PATH or in /usr/sbin. Install it: "
    "`sudo apt-get install -y mosquitto` (Debian/Ubuntu/Raspberry Pi OS), "
    "`brew install mosquitto` (macOS)."
)


class MosquittoNotFoundError(PowerbridgeError):
    """No mosquitto binary on this machine."""


def find_mosquitto() -> str:
    """Path of the ``mosquitto`` binary, or raise with an install instruction."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for directory in SEARCH_PATH:
        candidate = Path(directory) / "mosquitto"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise MosquittoNotFoundError(INSTALL_HINT)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def shipped_file(name: str) -> str:
    """Text of a file from the repository's ``mosquitto/`` directory (or the installed copy)."""
    repo = Path(__file__).resolve().parents[2] / "mosquitto" / name
    if repo.is_file():
        return repo.read_text(encoding="utf-8")
    return resources.files("bridge.broker").joinpath("shipped", name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str


@dataclass
class BrokerSetup:
    """Who may connect: bridges and clients by id, plus the fixed roles."""

    bridges: tuple[str, ...] = ("test-bridge",)
    clients: tuple[str, ...] = ("test-client",)
    observer: bool = True
    """Add an ``observer`` user that may read everything (tests' privileged subscriber)."""
    tls: bool = False
    """Keep the TLS listener (needs ``tls_dir`` with ca.crt, server.crt, server.key)."""
    tls_dir: Path | None = None


@dataclass
class Mosquitto:
    """A running (or stopped) private broker."""

    directory: Path
    port: int
    tls_port: int | None
    credentials: dict[str, Credentials] = field(default_factory=dict)
    host: str = "127.0.0.1"
    _process: subprocess.Popen[bytes] | None = None

    # -- role accessors -------------------------------------------------------------
    def bridge(self, device_id: str = "test-bridge") -> Credentials:
        return self.credentials[bridge_user(device_id)]

    def client(self, client_id: str = "test-client") -> Credentials:
        return self.credentials[client_user(client_id)]

    @property
    def homeassistant(self) -> Credentials:
        return self.credentials["homeassistant"]

    @property
    def archiver(self) -> Credentials:
        return self.credentials["archiver"]

    @property
    def observer(self) -> Credentials:
        return self.credentials["observer"]

    @property
    def config_file(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def log_file(self) -> Path:
        return self.directory / "mosquitto.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    # -- lifecycle --------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        log = self.log_file.open("ab")
        self._process = subprocess.Popen(
            [find_mosquitto(), "-c", str(self.config_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PowerbridgeError(
                    f"mosquitto exited with {self._process.returncode}; log:\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise PowerbridgeError(f"mosquitto did not listen on {self.port}; log:\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Orderly stop (SIGTERM): mosquitto saves its persistence file."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL: the broker dies without saving anything (a crash)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def render_conf(
    text: str, directory: Path, port: int, tls_port: int | None, tls_dir: Path | None
) -> str:
    """Rewrite the shipped configuration's ports and paths for a private instance."""
    out: list[str] = []
    in_tls_listener = False
    for raw in text.splitlines():
        line = raw.strip()
        words = line.split()
        if not words or line.startswith("#"):
            out.append(raw)
            continue
        key = words[0]
        if key == "listener":
            in_tls_listener = len(words) == 2 or words[1] == "8883"
            if in_tls_listener and tls_port is None:
                out.append(f"# (TLS listener left out) {raw}")
                continue
            out.append(
                f"listener {tls_port} 127.0.0.1"
                if in_tls_listener
                else f"listener {port} 127.0.0.1"
            )
            continue
        if in_tls_listener and tls_port is None:
            out.append(f"# (TLS listener left out) {raw}")
            continue
        if key in ("cafile", "certfile", "keyfile"):
            if tls_dir is None:
                raise ValueError("TLS listener requested without tls_dir")
            out.append(f"{key} {tls_dir / Path(words[1]).name}")
        elif key == "password_file":
            out.append(f"password_file {directory / 'passwd'}")
        elif key == "acl_file":
            out.append(f"acl_file {directory / 'acl'}")
        elif key == "persistence_location":
            out.append(f"persistence_location {directory}/")
        else:
            out.append(raw)
    out.append(f"pid_file {directory / 'mosquitto.pid'}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Started as root, mosquitto would switch to the `mosquitto` user, which cannot
        # write in a private temporary directory: stay the user that started it.
        out.append("user root")
    out.append("log_dest stdout")
    out.append("log_type error")
    out.append("log_type warning")
    out.append("log_type notice")
    out.append("log_timestamp_format %Y-%m-%dT%H:%M:%S")
    return "\n".join(out) + "\n"


def prepare(
    directory: Path, setup: BrokerSetup | None = None, port: int | None = None
) -> Mosquitto:
    """Render configuration, ACL and passwords into ``directory``; return the (stopped) broker."""
    setup = setup or BrokerSetup()
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    tls_port = free_port() if setup.tls else None
    conf = render_conf(shipped_file("powerbridge.conf"), directory, port, tls_port, setup.tls_dir)
    (directory / "mosquitto.conf").write_text(conf, encoding="utf-8")

    acl = shipped_file("acl")
    if IDENTITY_MARKER not in acl:
        raise PowerbridgeError("mosquitto/acl lacks the identity marker line")
    blocks = [bridge_block(d) for d in setup.bridges] + [client_block(c) for c in setup.clients]
    if setup.observer:
        blocks.append("user observer\ntopic read #\n")
    (directory / "acl").write_text(acl.rstrip("\n") + "\n\n" + "\n".join(blocks), encoding="utf-8")

    users = [bridge_user(d) for d in setup.bridges] + [client_user(c) for c in setup.clients]
    users += ["homeassistant", "archiver"] + (["observer"] if setup.observer else [])
    creds = {user: Credentials(user, passwd.new_password()) for user in users}
    lines = [passwd.hash_entry(c.username, c.password) for c in creds.values()]
    password_file = directory / "passwd"
    password_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    return Mosquitto(directory=directory, port=port, tls_port=tls_port, credentials=creds)
