"""Tried as a new user would: `broker init`, Debian's mosquitto.conf including ours, reload.

Debian's own /etc/mosquitto/mosquitto.conf (pid_file, persistence_location, include_dir) is
reproduced in a temporary directory; the generated powerbridge.conf goes into its conf.d with
only the two listener ports changed.  Run as root, Mosquitto drops to the `mosquitto` user
before it reads the password file and the TLS key, exactly as the packaged service does.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.broker.directory import BrokerDirectory
from bridge.broker.runner import Credentials, Mosquitto, free_port
from bridge.cli import main
from tests.broker.test_listeners import NOT_AUTHORIZED, attempt
from tests.helpers.mqtt import TestClient

pytestmark = pytest.mark.integration

DEBIAN_MOSQUITTO_CONF = """\
# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file {run}/mosquitto.pid

persistence true
persistence_location {lib}/

log_dest stdout

include_dir {confd}
"""


def _broker_uid() -> int | None:
    """The uid Mosquitto switches to when started as root (``None``: stays who it is)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    try:
        return pwd.getpwnam("mosquitto").pw_uid
    except KeyError:
        return None


@pytest.fixture
def install_root() -> Iterator[Path]:
    # Not under pytest's tmp_path: its parents are 0700, and the broker must reach this.
    root = Path(tempfile.mkdtemp(prefix="powerbridge-install-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def debian_layout(root: Path, directory: Path) -> Mosquitto:
    port, tls_port = free_port(), free_port()
    confd, lib, run = root / "conf.d", root / "lib", root / "run"
    for path in (confd, lib, run):
        path.mkdir()
    main_conf = DEBIAN_MOSQUITTO_CONF.format(run=run, lib=lib, confd=confd)
    uid = _broker_uid()
    if uid is not None:
        for path in (lib, run):
            os.chown(path, uid, -1)
    elif hasattr(os, "geteuid") and os.geteuid() == 0:
        main_conf += "user root\n"  # root without a mosquitto user: nobody to switch to
    (root / "mosquitto.conf").write_text(main_conf)
    ours = (directory / "powerbridge.conf").read_text()
    assert "listener 1883 127.0.0.1\n" in ours
    assert "listener 8883\n" in ours
    ours = ours.replace("listener 1883 127.0.0.1\n", f"listener {port} 127.0.0.1\n")
    ours = ours.replace("listener 8883\n", f"listener {tls_port} 127.0.0.1\n")
    (confd / "powerbridge.conf").write_text(ours)
    return Mosquitto(directory=root, port=port, tls_port=tls_port, tls_dir=directory)


def creds(store: BrokerDirectory, user: str) -> Credentials:
    password = store.password(user)
    assert password is not None
    return Credentials(user, password)


def tls_client(broker: Mosquitto, who: Credentials | None, ca: Path) -> TestClient:
    client = TestClient(broker, who, port=broker.tls_port)
    client.paho.tls_set_context(ssl.create_default_context(cafile=str(ca)))
    return client


def test_init_then_debian_mosquitto_then_add_a_pc_and_reload(
    install_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = install_root / "powerbridge"
    argv = ["broker", "init", str(directory), "--host", "localhost", "--host", "127.0.0.1"]
    assert main([*argv, "--bridge", "rack-a", "--client", "office"]) == 0
    capsys.readouterr()
    store = BrokerDirectory(directory)
    broker = debian_layout(install_root, directory)
    broker.start()
    clients: list[TestClient] = []
    try:
        uid = _broker_uid()
        if uid is not None:
            status = Path(f"/proc/{broker.pid}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            assert uid_line.split()[1] == str(uid), "mosquitto did not drop root privileges"

        # Anonymous: refused on both listeners.
        assert attempt(TestClient(broker, None), broker.host, broker.port) in NOT_AUTHORIZED
        anonymous_tls = tls_client(broker, None, store.ca_crt)
        assert attempt(anonymous_tls, broker.host, broker.tls_port) in NOT_AUTHORIZED

        # The bridge on loopback, the PC over TLS with the generated CA.
        bridge = TestClient(broker, creds(store, "bridge-rack-a")).connect()
        office = tls_client(broker, creds(store, "client-office"), store.ca_crt).connect()
        clients += [bridge, office]
        office.subscribe("powerbridge/+/mains")
        bridge.publish("powerbridge/rack-a/mains", b"first", retain=True)
        assert office.expect("powerbridge/rack-a/mains").payload == b"first"

        # A new PC: refused until the broker reloads, then accepted; nobody is disconnected.
        assert main(["broker", "add-client", "lab", "--dir", str(directory)]) == 0
        capsys.readouterr()
        lab_creds = creds(store, "client-lab")
        lab = tls_client(broker, lab_creds, store.ca_crt)
        assert attempt(lab, broker.host, broker.tls_port) in NOT_AUTHORIZED
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while True:
            lab = tls_client(broker, lab_creds, store.ca_crt)
            if attempt(lab, broker.host, broker.tls_port) == 0:
                break
            assert time.monotonic() < deadline, f"reload did not take:\n{broker.log_tail()}"
            time.sleep(0.1)
        lab = tls_client(broker, lab_creds, store.ca_crt).connect()
        clients.append(lab)
        lab.subscribe("powerbridge/+/mains")
        assert lab.expect("powerbridge/rack-a/mains").payload == b"first"  # retained
        bridge.publish("powerbridge/rack-a/mains", b"second", retain=True)
        assert office.expect("powerbridge/rack-a/mains").payload == b"second"
        assert lab.expect("powerbridge/rack-a/mains").payload == b"second"
    finally:
        for client in clients:
            client.disconnect()
        broker.kill()
