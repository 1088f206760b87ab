"""The facade against real NUT clients (Debian's nut-client) and a real Mosquitto.

``upsc`` lists the variables; ``upsmon`` as a **secondary** with a harmless
SHUTDOWNCMD (it stamps ``time.monotonic()`` into a file) shuts down exactly once, at
powerbridge's deadline plus at most one poll, never on announced blips shorter than the
delay, and never when the bridge goes offline while on mains; ``upslog`` logs from it;
NUT's own Python client (PyNUTClient) reads it.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.broker.runner import BrokerSetup, Mosquitto
from tests.nut._harness import (
    PASSWORD,
    USER,
    Facade,
    FakeBridge,
    Upsmon,
    wait_until,
    which,
)

pytestmark = [pytest.mark.integration, pytest.mark.realtime]

DEVICE = "rack-a"
DELAY = 4.0
POLLFREQ = 1


@pytest.fixture
def broker_setup() -> BrokerSetup:
    return BrokerSetup(bridges=(DEVICE,), clients=(), nut=("nut",))


@pytest.fixture
def nut_broker(broker: Mosquitto) -> Mosquitto:
    """The broker with the facade's own role (`powerbridge broker add-nut nut`), as shipped."""
    return broker


@pytest.fixture
def bridge(nut_broker: Mosquitto) -> Iterator[FakeBridge]:
    broker = nut_broker
    fake = FakeBridge(broker, DEVICE)
    fake.reading(voltage_v=229.4, frequency_hz=50.0, current_a=0.25, power_w=48.0)
    fake.announce("on")
    yield fake
    fake.close()


@pytest.fixture
def facade(broker: Mosquitto, bridge: FakeBridge, tmp_path: Path) -> Iterator[Facade]:
    del bridge
    served = Facade(broker, tmp_path / "facade", delay=DELAY, ups="ups")
    served.start()
    yield served
    served.stop()


def upsc(facade: Facade, variable: str | None = None) -> str:
    argv = [which("upsc"), f"ups@127.0.0.1:{facade.port}"] + ([variable] if variable else [])
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout


def logged_in(facade: Facade) -> bool:
    """upsmon has logged in to the UPS (``LIST CLIENT``, as ``upsc -c`` shows it)."""
    argv = [which("upsc"), "-c", f"ups@127.0.0.1:{facade.port}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    return "127.0.0.1" in done.stdout


def status(facade: Facade) -> str:
    return upsc(facade, "ups.status").strip()


def test_upsc_lists_the_variables(facade: Facade) -> None:
    assert wait_until(lambda: status(facade) == "OL", 10)
    listing = dict(line.split(": ", 1) for line in upsc(facade).splitlines() if ": " in line)
    assert listing["ups.status"] == "OL"
    assert listing["ups.mfr"] == "powerbridge"
    assert listing["ups.model"]
    assert listing["ups.serial"] == DEVICE
    assert listing["device.type"] == "ups"
    assert listing["input.voltage"] == "229.4"
    assert listing["input.frequency"] == "50.00"
    assert listing["ups.realpower"] == "48.0"
    out = subprocess.run(
        [which("upsc"), "-l", f"127.0.0.1:{facade.port}"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout
    assert out.split() == ["ups"]


def test_upsmon_secondary_shuts_down_once_at_the_deadline_never_on_blips(
    facade: Facade, bridge: FakeBridge, tmp_path: Path
) -> None:
    upsmon = Upsmon(tmp_path / "upsmon", f"ups@127.0.0.1:{facade.port}", pollfreq=POLLFREQ)
    upsmon.start()
    try:
        assert wait_until(lambda: status(facade) == "OL", 10)
        assert wait_until(lambda: logged_in(facade), 15), upsmon.log.read_text()
        # 20 announced outages, each shorter than the delay: OB then OL, never LB.  Random
        # lengths (seeded), so that they cannot phase-lock with upsmon's 1 s poll and hide.
        rng = random.Random(18)
        for _ in range(20):
            bridge.announce("off")
            time.sleep(rng.uniform(0.4, 1.6))
            bridge.announce("on")
            time.sleep(rng.uniform(0.3, 0.9))
        time.sleep(DELAY + 2 * POLLFREQ)
        assert upsmon.shutdown_times() == [], upsmon.log.read_text()
        # upsmon did see outages (on battery, discharging) and did not shut down for them.
        assert upsmon.notifications().count("ONBATT") >= 5, upsmon.notifications()
        # One sustained outage: exactly one SHUTDOWNCMD, at the deadline + ≤ one poll.
        edge = bridge.announce("off")
        deadline = edge + DELAY
        assert wait_until(upsmon.shutdown_times, DELAY + 10), upsmon.log.read_text()
        time.sleep(2 * POLLFREQ)
        times = upsmon.shutdown_times()
        assert len(times) == 1
        late = times[0] - deadline
        print(
            f"SHUTDOWNCMD {late * 1000:.0f} ms after powerbridge's deadline (POLLFREQ {POLLFREQ} s)"
        )
        assert 0 <= late <= POLLFREQ + 1.0
    finally:
        upsmon.stop()


def test_bridge_offline_on_mains_is_stale_and_upsmon_does_not_shut_down(
    facade: Facade, bridge: FakeBridge, tmp_path: Path
) -> None:
    upsmon = Upsmon(tmp_path / "upsmon", f"ups@127.0.0.1:{facade.port}", pollfreq=POLLFREQ)
    upsmon.start()
    try:
        assert wait_until(lambda: status(facade) == "OL", 10)
        assert wait_until(lambda: logged_in(facade), 15), upsmon.log.read_text()
        bridge.offline()
        assert wait_until(
            lambda: (
                "Data stale"
                in subprocess.run(
                    [which("upsc"), f"ups@127.0.0.1:{facade.port}", "ups.status"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                ).stderr
            ),
            5,
        )
        time.sleep(3 * 3 + 2)  # three DEADTIMEs
        assert upsmon.shutdown_times() == [], upsmon.log.read_text()
    finally:
        upsmon.stop()


def test_upslog_records_from_the_facade(facade: Facade, tmp_path: Path) -> None:
    log = tmp_path / "upslog.txt"
    process = subprocess.Popen(
        [
            which("upslog"),
            "-s",
            f"ups@127.0.0.1:{facade.port}",
            "-l",
            str(log),
            "-i",
            "1",
            "-F",
            "-p",
            str(tmp_path / "upslog"),  # its PID file here, not in the shared /run/nut
            "-f",
            "%VAR input.voltage% [%VAR ups.status%] %VAR ups.mfr%",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert wait_until(lambda: log.exists() and "[OL]" in log.read_text(), 10)
        assert "229.4 [OL] powerbridge" in log.read_text()
    finally:
        process.terminate()
        process.wait(5)


def test_pynutclient_reads_the_facade(facade: Facade) -> None:
    from PyNUTClient.PyNUT import PyNUTClient

    assert wait_until(lambda: status(facade) == "OL", 10)
    client = PyNUTClient(host="127.0.0.1", port=facade.port, login=USER, password=PASSWORD)
    assert client.GetUPSList() == {b"ups": b"powerbridge rack-a"}
    values = client.GetUPSVars("ups")
    assert values[b"ups.status"] == b"OL"
    assert values[b"input.voltage"] == b"229.4"
    # No instant commands (PyNUTClient turns an empty list into one nameless entry, as it
    # does against upsd) and no writable variables.
    assert set(client.GetUPSCommands("ups")) <= {b""}
    assert client.GetRWVars("ups") == {}


def test_a_ups_behind_the_bridge_reaches_nut_clients_with_its_low_battery(
    facade: Facade, bridge: FakeBridge
) -> None:
    bridge.ups("OL CHRG", charge=98, runtime=2400)
    assert wait_until(lambda: upsc(facade, "battery.charge").strip() == "98", 10)
    assert upsc(facade, "battery.runtime").strip() == "2400"
    bridge.announce("off")
    bridge.ups("OB DISCHRG", charge=60, runtime=900)
    assert wait_until(lambda: status(facade) == "OB DISCHRG", 10)
    # The UPS says low battery during the outage: LB (and FSD) long before the delay.
    bridge.ups("OB LB", charge=8, runtime=50)
    assert wait_until(lambda: status(facade) == "FSD OB LB", 5)
    assert upsc(facade, "battery.runtime").strip() == "50"


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    from bridge.broker import tls

    ca = tls.make_ca()
    cert = tls.make_server_cert(ca, ["127.0.0.1", "localhost"])
    paths = (tmp_path / "ca.crt", tmp_path / "nut.crt", tmp_path / "nut.key")
    paths[0].write_bytes(ca.cert_pem)
    paths[1].write_bytes(cert.cert_pem)
    paths[2].write_bytes(cert.key_pem)
    return paths


def test_starttls_with_a_certificate_for_pynutclient(
    nut_broker: Mosquitto, bridge: FakeBridge, tls_files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from PyNUTClient.PyNUT import PyNUTClient

    del bridge
    ca, crt, key = tls_files
    served = Facade(nut_broker, tmp_path / "tls-facade", delay=DELAY, ups="ups", tls=(crt, key))
    served.start()
    try:
        assert wait_until(lambda: status(served) == "OL", 10)  # upsc: plain, still served
        client = PyNUTClient(
            host="127.0.0.1",
            port=served.port,
            login=USER,
            password=PASSWORD,
            force_ssl=True,
            ca_file=str(ca),
        )
        assert client.GetUPSVars("ups")[b"ups.status"] == b"OL"
    finally:
        served.stop()
