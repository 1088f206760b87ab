"""No sample lost end to end: a real bridge at 10 samples/s, a real broker, a real archive.

Each scenario breaks one link while the bridge publishes, then checks with a query of
the archive's database that every sequence number from the bridge's first to its last
is stored: 0 missing.  The bridge is ``powerbridge run`` with a simulated meter read
every 100 ms; the archive is ``powerbridge archive run`` (SQLite), both child processes,
both with the same signing key, so that ``cmd/resend`` is signed and checked.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.archive.store import open_store
from bridge.broker.runner import Mosquitto
from tests.archive.harness import ROOT, ArchiveProcess, wait_for, write_config
from tests.archive.postgres import Postgres
from tests.archive.test_service import fetch

pytestmark = [pytest.mark.integration, pytest.mark.realtime]

DEVICE = "test-bridge"


class BridgeProcess:
    """``powerbridge run`` with a simulated PZEM-004T read every 100 ms (10 samples/s)."""

    def __init__(self, work: Path, broker: Mosquitto, key: Path) -> None:
        self.work = work
        self.data = work / "bridge-data"
        password = work / "bridge.password"
        password.write_text(broker.bridge(DEVICE).password + "\n")
        self.config = work / "bridge.yaml"
        self.config.write_text(
            f"""\
device: {{id: {DEVICE}, data_dir: {self.data}}}
mqtt:
  host: 127.0.0.1
  port: {broker.port}
  password_file: {password}
  keepalive: 5s
  reconnect_min: 200ms
  reconnect_max: 1s
meter: {{type: simulated, interval: 100ms}}
leds: {{enabled: false}}
health: {{interval: 5s}}
spool: {{flush_interval: 1s}}
signing: {{key_file: {key}}}
simulation: {{enabled: true, meter_protocol: pzem004t}}
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "GPIOZERO_PIN_FACTORY": "mock"}
        with (self.work / "bridge.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "-v", "run", "-c", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signum)
            if signum in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait(15)
                self.proc = None

    def last_seq(self) -> int:
        conn = sqlite3.connect(self.data / "bridge.db")
        try:
            return int(conn.execute("SELECT MAX(seq) FROM spool_items").fetchone()[0] or 0)
        finally:
            conn.close()


@dataclass
class Rig:
    broker: Mosquitto
    bridge: BridgeProcess
    archive: ArchiveProcess
    database: str
    """The archive's ``archive.database`` URL (SQLite or PostgreSQL)."""

    def stored(self) -> tuple[int, int, int]:
        """``(count, lowest seq, highest seq)`` of the device's samples and events."""
        store = open_store(self.database)
        try:
            return store.sequence_span(DEVICE)
        except Exception:  # noqa: BLE001 - not created yet, or the database is restarting
            return 0, 0, 0
        finally:
            store.close()

    def wait_stored(self, count: int, timeout: float = 20) -> None:
        wait_for(lambda: self.stored()[0] >= count, timeout, f"{count} items archived")

    def finish(self) -> dict[str, int]:
        """Stop the bridge; wait until everything it numbered is archived; the query's figures."""
        self.bridge.signal(signal.SIGTERM)
        last = self.bridge.last_seq()
        wait_for(lambda: self.stored()[2] >= last and self.stored()[0] == last, 90,
                 f"seq 1..{last} archived (stored: {self.stored()})")  # fmt: skip
        store = open_store(self.database)
        try:
            missing = store.missing()
            gaps = store.gaps(DEVICE)
        finally:
            store.close()
        count, low, high = self.stored()
        return {"count": count, "low": low, "high": high, "last": last,
                "missing": missing.get(DEVICE, -1),
                "requests": sum(g.requests for g in gaps)}  # fmt: skip


def signed_archive(tmp_path: Path, broker: Mosquitto) -> tuple[Path, Path, str]:
    """A signing key shared with the bridge, and an SQLite archive on ``broker`` that asks
    for gaps after 2 s, every 3 s: ``(key, config, database url)``."""
    key = tmp_path / "signing.key"
    key.write_text(secrets.token_hex(32) + "\n")
    database = f"sqlite:///{tmp_path / 'archive.db'}"
    config = write_config(
        tmp_path, broker, database,
        extra=f"gaps: {{resend_after: 2s, resend_every: 3s, signing_key_file: {key}}}\n",
    )  # fmt: skip
    text = config.read_text().replace("gaps:\n  resend_after: 2s\n  resend_every: 2s\n", "")
    config.write_text(text)
    return key, config, database


@pytest.fixture
def rig(broker: Mosquitto, tmp_path: Path) -> Iterator[Rig]:
    # Persistence off: a killed broker forgets everything, queues and sessions alike.
    conf = broker.config_file
    conf.write_text(conf.read_text().replace("persistence true", "persistence false"))
    broker.restart()
    key, config, database = signed_archive(tmp_path, broker)
    archive = ArchiveProcess(config, tmp_path / "archive.log")
    archive.start()
    archive.url()
    bridge = BridgeProcess(tmp_path, broker, key)
    bridge.start()
    try:
        yield Rig(broker, bridge, archive, database)
    finally:
        bridge.signal(signal.SIGKILL)
        archive.stop()


def test_broker_killed_with_persistence_off_loses_nothing(rig: Rig) -> None:
    """What the broker acknowledged to the bridge and had not yet delivered dies with it;
    the archive sees the gap and the bridge sends the range again (cmd/resend)."""
    rig.wait_stored(30)
    rig.archive.kill()  # away: the broker queues the bridge's samples for its session...
    time.sleep(3)
    rig.broker.kill()  # ...and loses queue and session: it kept nothing on disk
    time.sleep(1)
    rig.broker.start()
    rig.archive.start()
    url = rig.archive.url()
    # The bridge goes on; its retained `state` names its newest seq, the archive asks for
    # what lies between, the bridge sends it from what it keeps.
    before = rig.stored()[2]
    wait_for(lambda: rig.stored()[2] > before + 30 and rig.stored()[0] == rig.stored()[2],
             60, "the gap filled while the bridge goes on")  # fmt: skip
    figures = rig.finish()
    assert figures["missing"] == 0, figures
    assert (figures["low"], figures["high"]) == (1, figures["last"]), figures
    metrics = fetch(url + "metrics")
    requests = float(re.search(r"^powerbridge_archive_resend_requests_total (\S+)$",
                               metrics, re.MULTILINE).group(1))  # type: ignore[union-attr]  # fmt: skip
    assert requests >= 1, metrics  # the gap was real, and was asked for


def test_bridge_killed_loses_nothing(rig: Rig) -> None:
    rig.wait_stored(30)
    rig.bridge.signal(signal.SIGKILL)
    time.sleep(1)
    rig.bridge.start()
    rig.wait_stored(rig.stored()[0] + 30)
    figures = rig.finish()
    assert figures["missing"] == 0, figures
    assert (figures["low"], figures["high"]) == (1, figures["last"]), figures


def test_archive_killed_loses_nothing(rig: Rig) -> None:
    rig.wait_stored(30)
    rig.archive.kill()
    time.sleep(3)
    rig.archive.start()
    figures = rig.finish()
    assert figures["missing"] == 0, figures
    assert (figures["low"], figures["high"]) == (1, figures["last"]), figures


def test_wan_link_between_site_and_centre_cut_for_60_s_loses_nothing(
    mosquitto_binary: str, tmp_path: Path
) -> None:
    """Two real brokers as in docs/fleets.md: the bridge on its site's Mosquitto, which
    forwards to the centre over a Mosquitto bridge connection (``cleansession false``,
    QoS 1); the archive on the centre.  The link between the two is cut for 60 s."""
    del mosquitto_binary
    from bridge.broker.directory import BrokerDirectory, Report
    from bridge.broker.runner import BrokerSetup, prepare
    from tests.archive.proxy import Link

    centre = prepare(tmp_path / "centre", BrokerSetup(bridges=(), clients=()))
    store = BrokerDirectory(centre.directory)
    store.ensure_user(
        "site-berlin",
        f"user site-berlin\ntopic readwrite powerbridge/{DEVICE}/#\n",
        Report(),
    )
    site_password = store.password("site-berlin")
    centre.start()
    link = Link(centre.port)
    site = prepare(tmp_path / "site", BrokerSetup(bridges=(DEVICE,), clients=()))
    with site.config_file.open("a") as conf:
        conf.write(
            f"""
connection centre
address 127.0.0.1:{link.port}
bridge_protocol_version mqttv311
remote_clientid site-berlin
remote_username site-berlin
remote_password {site_password}
try_private true
cleansession false
keepalive_interval 5
restart_timeout 1 2
topic powerbridge/# both 1
"""
        )
    site.start()
    key, config, database = signed_archive(tmp_path, centre)
    archive = ArchiveProcess(config, tmp_path / "archive.log")
    bridge = BridgeProcess(tmp_path, site, key)
    rig = Rig(centre, bridge, archive, database)
    try:
        archive.start()
        archive.url()
        bridge.start()
        rig.wait_stored(30)
        link.cut()
        cut_at = rig.stored()[2]
        time.sleep(60)
        assert rig.stored()[2] <= cut_at + 10  # nothing came through the cut link
        link.restore()
        wait_for(lambda: rig.stored()[2] > cut_at + 600, 60, "the site's queue delivered")
        figures = rig.finish()
        assert figures["missing"] == 0, figures
        assert (figures["low"], figures["high"]) == (1, figures["last"]), figures
        assert figures["last"] > 600  # a minute at 10 samples/s went through the queue
    finally:
        bridge.signal(signal.SIGKILL)
        archive.stop()
        link.close()
        site.kill()
        centre.kill()


def test_postgresql_restarted_loses_nothing(
    broker: Mosquitto, postgres: Postgres, pg_url: str, tmp_path: Path
) -> None:
    """The archive on PostgreSQL, which restarts while the bridge publishes: writes are
    retried, nothing is acknowledged meanwhile, the broker keeps the queue."""
    key = tmp_path / "signing.key"
    key.write_text(secrets.token_hex(32) + "\n")
    config = write_config(
        tmp_path, broker, pg_url,
        extra=f"gaps: {{resend_after: 2s, resend_every: 3s, signing_key_file: {key}}}\n",
    )  # fmt: skip
    config.write_text(
        config.read_text().replace("gaps:\n  resend_after: 2s\n  resend_every: 2s\n", "")
    )
    archive = ArchiveProcess(config, tmp_path / "archive.log")
    bridge = BridgeProcess(tmp_path, broker, key)
    rig = Rig(broker, bridge, archive, pg_url)
    try:
        archive.start()
        archive.url()
        bridge.start()
        rig.wait_stored(30)
        postgres.stop()
        time.sleep(5)  # 50 samples arrive while the database is down
        postgres.start()
        figures = rig.finish()
        assert figures["missing"] == 0, figures
        assert (figures["low"], figures["high"]) == (1, figures["last"]), figures
        assert "cannot write to PostgreSQL" in (tmp_path / "archive.log").read_text()
    finally:
        bridge.signal(signal.SIGKILL)
        archive.stop()
