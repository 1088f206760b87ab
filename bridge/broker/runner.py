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

from bridge.broker.directory import BrokerDirectory, Report
from bridge.errors import PowerbridgeError
from bridge.mqtt.contract import (
    ARCHIVER_USER,
    HOMEASSISTANT_USER,
    bridge_user,
    client_user,
    nut_user,
)

SEARCH_PATH = (
    "/usr/sbin",
    "/usr/local/sbin",
    "/opt/homebrew/sbin",
    "/usr/local/opt/mosquitto/sbin",
)
TEST_HOSTS = ("localhost", "127.0.0.1")
"""Names in a private instance's server certificate (its listeners are on loopback)."""
OBSERVER_BLOCK = "user observer\ntopic read #\n"
"""Tests' privileged subscriber: reads every topic (``#`` does not match ``$SYS``)."""
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
    nut: tuple[str, ...] = ()
    """NUT server facades (``broker add-nut``), by ``nut.client_id``."""
    observer: bool = True
    """Add an ``observer`` user that may read everything (tests' privileged subscriber)."""
    tls: bool = False
    """Keep the TLS listener; its CA and server certificate are made unless ``tls_dir`` is set."""
    tls_dir: Path | None = None
    """Existing ca.crt, server.crt and server.key to use instead."""


@dataclass
class Mosquitto:
    """A running (or stopped) private broker."""

    directory: Path
    port: int
    tls_port: int | None
    credentials: dict[str, Credentials] = field(default_factory=dict)
    host: str = "127.0.0.1"
    _process: subprocess.Popen[bytes] | None = None
    tls_dir: Path | None = None
    """Directory with ``ca.crt`` (the CA a TLS client must trust), when TLS is on."""

    # -- role accessors -------------------------------------------------------------
    def bridge(self, device_id: str = "test-bridge") -> Credentials:
        return self.credentials[bridge_user(device_id)]

    def client(self, client_id: str = "test-client") -> Credentials:
        return self.credentials[client_user(client_id)]

    @property
    def homeassistant(self) -> Credentials:
        return self.credentials[HOMEASSISTANT_USER]

    @property
    def archiver(self) -> Credentials:
        return self.credentials[ARCHIVER_USER]

    @property
    def observer(self) -> Credentials:
        return self.credentials["observer"]

    @property
    def ca_file(self) -> Path:
        """The CA certificate of the TLS listener (``ValueError`` when TLS is off)."""
        if self.tls_dir is None or self.tls_port is None:
            raise ValueError("this broker has no TLS listener (BrokerSetup(tls=True))")
        return self.tls_dir / "ca.crt"

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


LISTENER_OPTIONS = frozenset(
    {
        "bind_interface", "cafile", "capath", "certfile", "ciphers", "ciphers_tls1.3",
        "crlfile", "dhparamfile", "http_dir", "keyfile", "max_connections", "mount_point",
        "protocol", "psk_hint", "require_certificate", "socket_domain", "tls_engine",
        "tls_keyform", "tls_version", "use_identity_as_username",
        "use_subject_as_username", "use_username_as_clientid", "websockets_log_level",
    }
)  # fmt: skip
"""Options that belong to the listener above them (mosquitto.conf(5)); others are global."""


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
        if words[0] == "listener":
            in_tls_listener = len(words) == 2 or words[1] == "8883"
        if (
            in_tls_listener
            and tls_port is None
            and (words[0] == "listener" or words[0] in LISTENER_OPTIONS)
        ):
            out.append(f"# (TLS listener left out) {raw}")
        elif words[0] == "listener":
            out.append(f"listener {tls_port if in_tls_listener else port} 127.0.0.1")
        else:
            out.append(_private_path(words, raw, directory, tls_dir))
    if not any(line.split()[:1] == ["persistence_location"] for line in out):
        out.append(f"persistence_location {directory}/")
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


def _private_path(words: list[str], raw: str, directory: Path, tls_dir: Path | None) -> str:
    key = words[0]
    if key in ("cafile", "certfile", "keyfile"):
        if tls_dir is None:
            raise ValueError("TLS listener requested without tls_dir")
        return f"{key} {tls_dir / Path(words[1]).name}"
    if key == "password_file":
        return f"password_file {directory / 'passwd'}"
    if key == "acl_file":
        return f"acl_file {directory / 'acl'}"
    if key == "persistence_location":
        return f"persistence_location {directory}/"
    return raw


def prepare(
    directory: Path, setup: BrokerSetup | None = None, port: int | None = None
) -> Mosquitto:
    """Render configuration, ACL and passwords into ``directory``; return the (stopped) broker.

    The password file, ACL and (with ``tls`` and no ``tls_dir``) the CA and server
    certificate are made by :class:`~bridge.broker.directory.BrokerDirectory`, the
    same code as ``powerbridge broker init``, from the shipped files.
    """
    setup = setup or BrokerSetup()
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    tls_port = free_port() if setup.tls else None
    store = BrokerDirectory(directory)
    store.init(
        conf_template=shipped_file("powerbridge.conf"),
        acl_template=shipped_file("acl"),
        bridges=setup.bridges,
        clients=setup.clients,
        with_tls=setup.tls and setup.tls_dir is None,
        hosts=list(TEST_HOSTS),
    )
    report = Report()
    for client_id in setup.nut:
        store.add("nut", client_id, report=report)
    if setup.observer:
        store.ensure_user("observer", OBSERVER_BLOCK, report)
    tls_dir = setup.tls_dir or (directory if setup.tls else None)
    conf = render_conf(shipped_file("powerbridge.conf"), directory, port, tls_port, tls_dir)
    (directory / "mosquitto.conf").write_text(conf, encoding="utf-8")

    users = [bridge_user(d) for d in setup.bridges] + [client_user(c) for c in setup.clients]
    users += [nut_user(c) for c in setup.nut]
    users += [HOMEASSISTANT_USER, ARCHIVER_USER] + (["observer"] if setup.observer else [])
    creds: dict[str, Credentials] = {}
    for user in users:
        password = store.password(user)
        if password is None:
            raise PowerbridgeError(f"no credentials file for {user} in {directory}")
        creds[user] = Credentials(user, password)
    return Mosquitto(
        directory=directory, port=port, tls_port=tls_port, credentials=creds, tls_dir=tls_dir
    )
