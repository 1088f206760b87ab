"""A real shutdown: the shutdown client as a systemd service in a second container, powering it
off at the deadline.  Not a dry run; the default command (``systemctl poweroff``).

The bridge container and the PC container share a network namespace of their own: the
client reaches the broker over TLS on localhost:8883, as a PC reaches a Pi.  The mains is
the bridge's simulated pin, cut and restored with ``powerbridge simulate``."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

from tests.system._bridge import CLIENT, CONFIG, DEVICE, deploy
from tests.system._container import Container
from tests.system.conftest import Boot

DELAY_S = 20.0
CLIENT_CONFIG = "/etc/powerbridge/client.yaml"
HOOK = "pre-shutdown hook of the system tier: saving state"


def client_keys() -> str:
    return (
        f"client:\n  id: {CLIENT}\n  name: Office PC\n"
        "mqtt:\n  host: localhost\n"
        f"  username: client-{CLIENT}\n  password_file: /etc/powerbridge/client.password\n"
        "  tls:\n    enabled: true\n    ca_file: /etc/powerbridge/ca.crt\n"
        f"bridges: [{DEVICE}]\n"
        f"shutdown:\n  delay: {DELAY_S:g}s\n  warnings: [10s]\n"
        f"  hooks: [{{command: [/bin/sh, -c, 'echo {HOOK}'], timeout: 10s}}]\n"
    )


def install_client(bridge: Container, pc: Container) -> None:
    """The Linux steps of shutdown-client.md: files from the broker's host, config, install."""
    pc.write(
        "/etc/powerbridge/client.password",
        bridge.read(f"/etc/mosquitto/powerbridge/credentials/client-{CLIENT}.password"),
        0o600,
    )
    pc.write("/etc/powerbridge/ca.crt", bridge.read("/etc/mosquitto/powerbridge/ca.crt"))
    pc.run(f"powerbridge config init --client {CLIENT_CONFIG}")
    pc.run(
        f"/opt/powerbridge/bin/python - {CLIENT_CONFIG}",
        input=(
            "import sys, yaml\npath = sys.argv[1]\ndoc = yaml.safe_load(open(path))\n"
            f"doc.update(yaml.safe_load('''{client_keys()}'''))\n"
            "open(path, 'w').write(yaml.safe_dump(doc))\n"
        ),
    )
    pc.run(f"powerbridge config check {CLIENT_CONFIG}")
    # A persistent journal, to read the last boot's lines after the power-off.
    pc.run("mkdir -p /var/log/journal && journalctl --flush")
    pc.run("powerbridge client install")
    assert pc.run("systemctl is-active powerbridge-client").stdout.strip() == "active"
    pc.wait_for("journalctl -t powerbridge-client | grep -q 'connected to the broker'", 20)


def mains(bridge: Container, state: str) -> None:
    bridge.run(f"powerbridge simulate mains {state} -c {CONFIG}")


def mains_off_since(bridge: Container) -> float:
    """UTC time (epoch s) of the first edge of the newest announced outage (bridge journal)."""
    lines = re.findall(
        r"mains off \(seq \d+, source \w+, since ([^)]+)\)", bridge.journal("powerbridge")
    )
    assert lines, bridge.journal("powerbridge")
    return datetime.fromisoformat(lines[-1]).timestamp()


def connections(pc: Container) -> int:
    return pc.journal(identifier="powerbridge-client").count("connected to the broker")


def stays_up(pc: Container, seconds: float) -> None:
    assert pc.wait_exit(seconds) is None, f"{pc.name} powered off:\n{pc.log_path.read_text()}"
    assert pc.run("systemctl is-system-running").stdout.strip() == "running"


def test_a_real_shutdown_at_the_deadline_and_none_without_a_sustained_outage(
    boot: Boot,
) -> None:
    bridge = boot("bridge")
    pc = boot("pc", masked=["mosquitto.service"])  # the broker runs on the bridge's side
    deploy(bridge, meter=False)
    bridge.wait_for(f"powerbridge simulate mains on -c {CONFIG} --wait 10", 15)
    install_client(bridge, pc)

    # 10 blips: each shorter than the bridge's confirmation window, or a short outage.
    for _ in range(10):
        mains(bridge, "off")
        mains(bridge, "on")
        time.sleep(0.3)
    stays_up(pc, 5)

    # Power restored 15 s into an outage of a 20 s delay: no power-off.
    bridge.run(f"powerbridge simulate mains off -c {CONFIG} --wait 10")
    since = mains_off_since(bridge)
    time.sleep(max(0.0, since + 15 - time.time()))
    bridge.run(f"powerbridge simulate mains on -c {CONFIG} --wait 10")
    stays_up(pc, max(0.0, since + DELAY_S + 5 - time.time()))
    assert "countdown cancelled" in pc.journal(identifier="powerbridge-client")

    # The bridge dies while on mains: the client must not power off.
    connects = connections(pc)
    bridge.kill()
    stays_up(pc, DELAY_S + 5)
    bridge.boot()
    bridge.wait_for(f"powerbridge deployment status -c {CONFIG}", 40)
    # The client is back on the broker before the next outage starts (a client that joins
    # during an outage is another case, not judged here).
    deadline = time.monotonic() + 60
    while connections(pc) <= connects and time.monotonic() < deadline:
        time.sleep(0.5)
    assert connections(pc) > connects, pc.journal(identifier="powerbridge-client")

    # A sustained outage: powered off at the deadline.
    bridge.run(f"powerbridge simulate mains off -c {CONFIG} --wait 10")
    since = mains_off_since(bridge)
    ended = pc.wait_exit(DELAY_S + 30)
    assert ended is not None, pc.journal(identifier="powerbridge-client")
    ended_utc = time.time() - (time.monotonic() - ended)
    pc.boot()  # to read the journal of the boot that powered off
    log = pc.run("journalctl -b -1 -o json --no-pager").stdout
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]

    def first(pattern: str) -> float:
        for e in entries:
            if re.search(pattern, str(e.get("MESSAGE", ""))):
                return int(e["__REALTIME_TIMESTAMP"]) / 1e6
        raise AssertionError(f"no journal line matches {pattern!r}")

    hook_started = first(r"running pre-shutdown hook")
    hook_output = first(re.escape(HOOK))
    poweroff = first(r"System is powering down|Powering off|Reached target.*Power-Off")
    deadline = since + DELAY_S
    print(
        f"measured: shutdown started {hook_started - deadline:+.2f} s from the deadline"
        f" (delay {DELAY_S:g} s from the first edge); systemd powering off"
        f" {poweroff - deadline:+.2f} s; container gone {ended_utc - deadline:+.2f} s"
    )
    timeline = "\n".join(
        f"{int(e['__REALTIME_TIMESTAMP']) / 1e6 - deadline:+7.2f} {e.get('SYSLOG_IDENTIFIER')}:"
        f" {e.get('MESSAGE')}"
        for e in entries
        if int(e["__REALTIME_TIMESTAMP"]) / 1e6 > deadline - DELAY_S - 1
    )
    assert hook_started <= hook_output <= poweroff, timeline
    assert abs(hook_started - deadline) <= 2.0, timeline
    assert abs(poweroff - deadline) <= 2.0, timeline

    # 5. Uninstalled and stopped: nothing of powerbridge is left in systemd on either machine.
    pc.run("powerbridge client uninstall")
    bridge.run(f"powerbridge deployment stop -c {CONFIG}")
    for box in (pc, bridge):
        units = box.run("systemctl list-unit-files --no-legend", check=True).stdout
        assert "powerbridge" not in units, units
        assert box.run(
            "systemctl is-active powerbridge powerbridge-client", check=False
        ).stdout.split() == ["inactive", "inactive"]
