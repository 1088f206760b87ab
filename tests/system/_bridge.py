"""A bridge set up inside a container the way install-raspberry-pi.md says, with stand-ins for
the hardware a container lacks: a meter simulator behind a pty exposed as ``/dev/powermeter``
(what the shipped udev rule does for a USB adapter), the simulated mains pin
(``simulation.enabled``; driven with ``powerbridge simulate``) and, where asked, a fake
``/sys/class/leds`` (bind-mounted from the host)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from tests.system._container import VENV, Container

CONFIG = "/etc/powerbridge/bridge.yaml"
DEVICE = "rack-a"
CLIENT = "office-pc"

METER_SIMULATOR = """
import os, signal, time
from bridge.meters.simulator import SimulatedMeter
meter = SimulatedMeter("pzem004t", seed=1).start()
link = "/dev/powermeter"
if os.path.lexists(link):
    os.unlink(link)
os.symlink(meter.device, link)
os.chown(meter.device, 0, __import__("grp").getgrnam("dialout").gr_gid)
os.chmod(meter.device, 0o660)
signal.signal(signal.SIGTERM, lambda *_: (meter.stop(), os._exit(0)))
while True:
    time.sleep(3600)
"""


def start_meter(box: Container) -> None:
    """The meter simulator as a transient unit (``meter-sim``), its pty at /dev/powermeter."""
    box.write("/root/meter_sim.py", METER_SIMULATOR)
    box.run(f"systemd-run --unit=meter-sim {VENV}/bin/python /root/meter_sim.py")
    box.wait_for("test -c /dev/powermeter", timeout=20)


def broker_init(box: Container) -> None:
    """Step 5a of the install guide."""
    box.run(f"powerbridge broker init --bridge {DEVICE} --client {CLIENT}")
    box.run(
        "ln -sf /etc/mosquitto/powerbridge/powerbridge.conf "
        "/etc/mosquitto/conf.d/powerbridge.conf && systemctl restart mosquitto"
    )


def configure(box: Container, *, meter: bool = True, extra: str = "") -> None:
    """Step 6 with the keys of the guide (meter/mains replaced by their stand-ins)."""
    box.run(
        f"install -D -m 600 /etc/mosquitto/powerbridge/credentials/bridge-{DEVICE}.password "
        "/etc/powerbridge/mqtt.password"
    )
    box.run(f"powerbridge config init {CONFIG}")
    meter_keys = "meter:\n  type: pzem004t\n  port: /dev/powermeter\n" if meter else ""
    box.run(
        f"{VENV}/bin/python - {CONFIG}",
        input=(
            "import sys, yaml\n"
            "path = sys.argv[1]\n"
            "doc = yaml.safe_load(open(path))\n"
            f"doc.update(yaml.safe_load('''{keys(meter_keys + extra)}'''))\n"
            "open(path, 'w').write(yaml.safe_dump(doc))\n"
        ),
    )
    box.run(f"powerbridge config check {CONFIG}")


def keys(extra: str) -> str:
    base = (
        f"device:\n  id: {DEVICE}\n  name: Rack A\n  data_dir: /var/lib/powerbridge\n"
        "mqtt:\n  host: localhost\n  username: bridge-rack-a\n"
        "  password_file: /etc/powerbridge/mqtt.password\n"
        "simulation:\n  enabled: true\n"
    )
    return base + extra


def clock_skip(box: Container) -> str:
    """``--skip clock`` when the kernel clock (the host's) is not synchronised.

    A container shares the host's clock and cannot synchronise it; a CI machine without
    NTP has an unsynchronised one.  Said in the test output, never hidden."""
    result = box.run(f"powerbridge check -c {CONFIG} --skip service", check=False)
    if re.search(r"✗ clock", result.stdout):
        print("note: the host's clock is not synchronised: checks run with --skip clock")
        return " --skip clock"
    return ""


def deploy(box: Container, *, meter: bool = True, extra: str = "") -> str:
    """Steps 5a–9; the ``--skip`` option the checks needed (see :func:`clock_skip`)."""
    broker_init(box)
    if meter:
        start_meter(box)
    configure(box, meter=meter, extra=extra)
    skip = clock_skip(box)
    out = box.run(
        f'powerbridge deployment start -c {CONFIG} --name "Rack A" --lat 52.37 --lon 4.90{skip}'
    ).stdout
    assert 'Deployment "Rack A" started.' in out, out
    return skip


def main_pid(box: Container) -> int:
    return int(box.show("powerbridge", "MainPID"))


class Subscriber:
    """An independent MQTT subscriber on the host, in the containers' network namespace:
    records every ``samples`` sequence number it receives (user ``archiver``)."""

    def __init__(self, box: Container, out: Path) -> None:
        password = box.read("/etc/mosquitto/powerbridge/credentials/archiver.password").strip()
        self.out = out
        script = (
            "import sys, json, paho.mqtt.client as mqtt\n"
            "out = open(sys.argv[1], 'a', buffering=1)\n"
            "c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id='system-tier-sub',"
            " clean_session=False)\n"
            "c.username_pw_set('archiver', sys.argv[2])\n"
            "def on_connect(c, u, f, rc, p):\n"
            f"    c.subscribe('powerbridge/{DEVICE}/samples', qos=1)\n"
            "def on_message(c, u, m):\n"
            "    for s in json.loads(m.payload)['samples']:\n"
            "        out.write(f\"{s['seq']}\\n\")\n"
            "c.on_connect = on_connect\n"
            "c.on_message = on_message\n"
            "c.connect('127.0.0.1', 1883, 10)\n"
            "c.loop_forever(retry_first_connection=True)\n"
        )
        self.process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                box.netns.name,
                sys.executable,
                "-c",
                script,
                str(out),
                password,
            ],
            stdout=subprocess.DEVNULL,
            stderr=(out.with_suffix(".err")).open("w"),
        )

    def seqs(self) -> list[int]:
        if not self.out.exists():
            return []
        return [int(line) for line in self.out.read_text().split()]

    def wait_beyond(self, seq: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(s > seq for s in self.seqs()):
                return
            time.sleep(0.5)
        raise AssertionError(f"no sample after seq {seq} within {timeout:g} s: {self.seqs()[-5:]}")

    def missing(self) -> list[int]:
        seen = set(self.seqs())
        return [s for s in range(min(seen), max(seen) + 1) if s not in seen] if seen else []

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
