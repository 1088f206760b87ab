"""The install guide runs as written: the marked shell blocks of docs/install-raspberry-pi.md,
docs/broker.md, docs/deployment.md and the Linux part of docs/shutdown-client.md, in order and
verbatim, in booted Debian 12 containers where nothing of powerbridge is installed.

The markers (``<!-- system-tier: run -->``, ``run on NAME``, ``skip: REASON``) are read by
``tests/docs/_markdown.py``; every shell block of these pages carries one (checked by
``tests/docs/test_guides.py``), and each skipped block's reason is printed here.  Two
containers share a private network namespace: ``pi``, the bridge with its broker, where the
guide's steps run, and ``office-pc``, where shutdown-client.md's run.  On each, the blocks are
typed by an ordinary user who may use ``sudo`` without a password (``pi``, ``alice``), in a login
shell, as Raspberry Pi OS's imager sets up its first user.

What a container lacks is replaced, and each replacement is printed when it is made (the
``STAND_INS`` below, and ``--skip clock`` when the host's clock is not synchronised)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.docs._markdown import DOCS, GuideBlock, guide_blocks
from tests.system._bridge import CONFIG, clock_skip, start_meter
from tests.system._container import Container
from tests.system.conftest import Boot

GUIDES = (
    ("install-raspberry-pi.md", "pi"),
    ("broker.md", "pi"),
    ("deployment.md", "pi"),
    ("shutdown-client.md", "office-pc"),
)
"""Each page and the machine its blocks run on unless a marker names another."""

USERS = {"pi": "pi", "office-pc": "alice"}
"""Who types the guide's commands on each machine: an ordinary user in group ``sudo`` who may
use it without a password, as Raspberry Pi OS's imager sets up its first user."""


@dataclass(frozen=True)
class StandIn:
    """A step a user does by hand or that hardware does, made by the test around a block."""

    page: str
    block_contains: str
    when: str  # "before" or "after"
    says: str
    act: Callable[[dict[str, Container]], None]


def simulated_mains(boxes: dict[str, Container]) -> None:
    boxes["pi"].run(f"printf 'simulation:\\n  enabled: true\\n' >> {CONFIG}")


def copy_client_files(boxes: dict[str, Container]) -> None:
    pi, pc = boxes["pi"], boxes["office-pc"]
    pc.write(
        "/etc/powerbridge/client.password",
        pi.read("/etc/mosquitto/powerbridge/credentials/client-office-pc.password"),
        0o600,
    )
    pc.write("/etc/powerbridge/ca.crt", pi.read("/etc/mosquitto/powerbridge/ca.crt"))
    pc.run("echo '127.0.0.1 pi.local' >> /etc/hosts")


STAND_INS = (
    StandIn(
        "install-raspberry-pi.md",
        '/opt/powerbridge/bin/pip install "$HOME/powerbridge"',
        "after",
        "the meter: a PZEM-004T simulator on a pseudo-terminal linked as /dev/powermeter "
        "(what the udev rule does for a USB adapter)",
        lambda boxes: start_meter(boxes["pi"]),
    ),
    StandIn(
        "install-raspberry-pi.md",
        "tee /etc/powerbridge/bridge.yaml",
        "after",
        "the mains pin: a container has no GPIO, so `simulation: {enabled: true}` is appended "
        "to bridge.yaml (the simulated pin)",
        simulated_mains,
    ),
    StandIn(
        "shutdown-client.md",
        "tee /etc/powerbridge/client.yaml",
        "before",
        "the copy the guide asks for: client-office-pc.password and ca.crt from the broker's "
        "host to the PC's /etc/powerbridge; pi.local resolves to the bridge's container "
        "(what mDNS does on a LAN)",
        copy_client_files,
    ),
)


def with_clock_skip(script: str) -> str:
    """``--skip clock`` on the ``check`` and ``deployment start`` lines (see ``clock_skip``)."""
    return re.sub(
        r"(powerbridge (?:check|deployment start) -c \S+)",
        r"\1 --skip clock",
        script,
    )


def add_user(box: Container) -> str:
    user = USERS[box.name]
    box.run(
        f"useradd --create-home --shell /bin/bash --groups sudo {user}"
        f" && echo '{user} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/010_{user}-nopasswd"
        f" && chmod 440 /etc/sudoers.d/010_{user}-nopasswd"
    )
    return user


def run_block(box: Container, block: GuideBlock, *, skip_clock: bool) -> float:
    """The block as its user types it: a login shell (their HOME and PATH), stopping at the
    first command that fails."""
    script = with_clock_skip(block.script) if skip_clock else block.script
    box.write("/run/guide-step.sh", script)
    started = time.monotonic()
    result = box.run(
        f"runuser -l {USERS[box.name]} -c 'bash -e -o pipefail /run/guide-step.sh' < /dev/null",
        check=False,
        timeout=600,
    )
    took = time.monotonic() - started
    assert result.returncode == 0, (
        f"{block.where()} (on {box.name}, as {USERS[box.name]}) exited {result.returncode}:\n"
        f"{block.script}"
        f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    return took


@pytest.mark.timeout(900)  # two installs from the wheelhouse, two deployments
def test_the_install_guide_runs_verbatim(boot_bare: Boot) -> None:
    boxes = {
        "pi": boot_bare("pi"),
        # A PC runs no broker of its own (the bridge's is on the same loopback here).
        "office-pc": boot_bare("office-pc", masked=["mosquitto.service"]),
    }
    for box in boxes.values():
        print(
            f"stand-in on {box.name}: user {add_user(box)}, in group sudo without a password"
            " (what Raspberry Pi OS's imager makes), types the guide's commands"
        )
    used: set[StandIn] = set()
    skip_clock: bool | None = None
    ran = skipped = 0
    started = time.monotonic()
    for page, default_host in GUIDES:
        for block in guide_blocks(DOCS / page):
            if not block.run:
                skipped += 1
                print(f"skipped {block.where()}: {block.reason}")
                continue
            around = [s for s in STAND_INS if s.page == page and s.block_contains in block.script]
            for stand_in in (s for s in around if s.when == "before"):
                print(f"stand-in before {block.where()}: {stand_in.says}")
                stand_in.act(boxes)
                used.add(stand_in)
            if skip_clock is None and "powerbridge check" in block.script:
                skip_clock = bool(clock_skip(boxes["pi"]))
            box = boxes[block.host or default_host]
            took = run_block(box, block, skip_clock=bool(skip_clock))
            ran += 1
            print(f"ran {block.where()} on {box.name} ({took:.1f} s)")
            for stand_in in (s for s in around if s.when == "after"):
                print(f"stand-in after {block.where()}: {stand_in.says}")
                stand_in.act(boxes)
                used.add(stand_in)
    print(
        f"measured: {ran} blocks run, {skipped} skipped with their reason, in"
        f" {time.monotonic() - started:.0f} s"
    )
    # A stand-in whose block was renamed away would silently stop applying.
    assert used == set(STAND_INS), [s.says for s in STAND_INS if s not in used]

    pi, pc = boxes["pi"], boxes["office-pc"]
    assert pi.run("systemctl is-active powerbridge").stdout.strip() == "active"
    assert pi.run(f"powerbridge deployment status -c {CONFIG}", check=False).returncode == 0
    assert pc.run("systemctl is-active powerbridge-client").stdout.strip() == "active"
    pc.wait_for("journalctl -t powerbridge-client | grep -q 'connected to the broker'", 30)
    status = pc.run("powerbridge client status").stdout
    assert "service: running" in status, status
    assert "client: online on the broker" in status, status

    # `client uninstall` (shutdown-client.md) removes the PC from the broker too: what a new
    # subscriber (Home Assistant's user) finds retained about it, before and after.
    def retained_about_the_pc() -> list[str]:
        out = pi.run(
            "mosquitto_sub -h localhost -p 1883 -u homeassistant"
            ' -P "$(cat /etc/mosquitto/powerbridge/credentials/homeassistant.password)"'
            " -t 'powerbridge/clients/office-pc/#' -t 'homeassistant/+/client-office-pc/#'"
            " --retained-only -W 2 -F %t",
            check=False,
        ).stdout
        return sorted(out.split())

    deadline = time.monotonic() + 20
    while len(retained_about_the_pc()) < 4 and time.monotonic() < deadline:
        time.sleep(0.5)
    before = retained_about_the_pc()
    assert "powerbridge/clients/office-pc/state" in before, before
    assert "powerbridge/clients/office-pc/status" in before, before
    assert len([t for t in before if t.startswith("homeassistant/")]) == 2, before
    out = pc.run("powerbridge client uninstall").stdout
    assert "cleared on the broker" in out, out
    assert retained_about_the_pc() == []
    units = pc.run("systemctl list-unit-files --no-legend").stdout
    assert "powerbridge" not in units, units
    print(f"measured: retained about the PC before uninstall {before}; after: none")
