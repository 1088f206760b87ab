"""The bridge service under a real systemd: READY, journal, status, watchdog, restarts, hardening.

One container, deployed as install-raspberry-pi.md says (hardware replaced by stand-ins,
see ``_bridge.py``).  Measured figures are printed (``-s`` or the captured output)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from tests.system._bridge import CONFIG, Subscriber, deploy, main_pid
from tests.system.conftest import Boot

LED_NAMES = ("PWR", "ACT")


def fake_leds(directory: Path) -> Path:
    """A /sys/class/leds with PWR and ACT as a Raspberry Pi kernel presents them."""
    for name in LED_NAMES:
        led = directory / name
        led.mkdir(parents=True)
        (led / "trigger").write_text("none [mmc0] default-on\n")
        (led / "brightness").write_text("1\n")
        (led / "max_brightness").write_text("255\n")
    return directory


def wait_restart(box, before_pid: int, before_restarts: int, timeout: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds until the service runs again under a new PID with NRestarts up."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        restarts = int(box.show("powerbridge", "NRestarts"))
        state = box.show("powerbridge", "ActiveState")
        pid = main_pid(box)
        if restarts > before_restarts and state == "active" and pid not in (0, before_pid):
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(
        f"not restarted within {timeout:g} s:\n{box.journal('powerbridge')[-3000:]}"
    )


def test_service_lifecycle_watchdog_restarts_and_hardening(boot: Boot, tmp_path: Path) -> None:
    # /sys is read-only in a container, /sys/class/leds may not exist on this kernel: the
    # fake class directory replaces /sys/class (the service needs nothing else from it).
    leds = fake_leds(tmp_path / "sysclass/leds")
    box = boot("bridge", binds=[f"{leds.parent}:/sys/class"])
    skip = deploy(box)

    # --- 1. lifecycle: READY through sd_notify, journal, status, check -----------------------
    assert box.run("systemctl is-active powerbridge").stdout.strip() == "active"
    assert box.show("powerbridge", "Type") == "notify"
    assert box.show("powerbridge", "NotifyAccess") == "main"
    # Type=notify: "active" only after the daemon sent READY=1; the status line is its own.
    assert box.show("powerbridge", "StatusText") != ""
    journal = box.journal("powerbridge")
    assert re.search(r"powerbridge\[\d+\]: .*bridge rack-a running", journal), journal
    assert "Started powerbridge.service" in journal
    status = json.loads(
        box.run(f"powerbridge deployment status -c {CONFIG} --json", check=False).stdout
    )
    assert status["service"]["state"] == "active"
    assert status["service"]["enabled"] == "enabled"
    assert status["broker"]["bridge_status"] == "online"
    box.wait_for(f"powerbridge deployment status -c {CONFIG}", timeout=40)

    # `powerbridge check` inside the service's sandbox: its mount namespace, its user.
    pid = main_pid(box)
    inside = f"nsenter -t {pid} -m setpriv --reuid powerbridge --regid powerbridge --init-groups --"
    # (the first mains announcement comes after mains.confirm_on: wait for it)
    checked = box.wait_for(f"{inside} powerbridge check -c {CONFIG}{skip}", timeout=20)
    assert "Health checks passed" in checked
    assert "mains on (announced by the running service" in checked

    # --- 3. hardening ----------------------------------------------------------------------
    security = box.run("systemd-analyze security powerbridge.service --no-pager").stdout
    exposure = float(
        re.search(r"Overall exposure level for powerbridge.service: ([\d.]+)", security).group(1)  # type: ignore[union-attr]
    )
    print(f"measured: systemd-analyze security exposure {exposure}")
    assert exposure <= 2.5, security
    # The meter (the simulator's pty at /dev/powermeter) answers under DevicePolicy=closed.
    assert (
        status["meter"]["link"] is True
        or json.loads(
            box.run(f"powerbridge deployment status -c {CONFIG} --json", check=False).stdout
        )["meter"]["link"]
        is True
    )
    # It writes its data directory and nothing else.
    box.run(f"{inside} touch /var/lib/powerbridge/probe")
    for elsewhere in ("/etc/powerbridge/probe", "/opt/powerbridge/probe", "/usr/local/probe",
                      "/root/probe", "/home/probe"):  # fmt: skip
        denied = box.run(f"{inside} touch {elsewhere}", check=False)
        assert denied.returncode != 0, elsewhere
    assert "Read-only file system" in box.run(f"{inside} touch /etc/x", check=False).stderr
    # LEDs: the udev rule hands the files to the group; a meter fault blinks ACT.
    box.run(
        "chgrp powerbridge /sys/class/leds/*/trigger /sys/class/leds/*/brightness"
        " && chmod g+w /sys/class/leds/*/trigger /sys/class/leds/*/brightness"
    )
    box.run("kill -STOP $(systemctl show -P MainPID meter-sim)")  # the meter falls silent
    deadline = time.monotonic() + 30
    while (leds / "ACT/trigger").read_text().strip() != "none" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (leds / "ACT/trigger").read_text().strip() == "none", box.journal("powerbridge")
    assert "cannot drive LED" not in box.journal("powerbridge")
    box.run("kill -CONT $(systemctl show -P MainPID meter-sim)")

    # --- 2. watchdog and restarts, watched by an independent subscriber --------------------
    sub = Subscriber(box, tmp_path / "seqs.txt")
    try:
        deadline = time.monotonic() + 30
        while len(sub.seqs()) < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert sub.seqs(), "the subscriber received no samples"
        watchdog = int(box.show("powerbridge", "WatchdogUSec").removesuffix("s"))
        restarts = int(box.show("powerbridge", "NRestarts"))
        pid = main_pid(box)
        box.run(f"kill -STOP {pid}")
        took = wait_restart(box, pid, restarts, timeout=watchdog + 20)
        print(
            f"measured: SIGSTOP → restarted by the watchdog in {took:.1f} s"
            f" (WatchdogSec={watchdog}s)"
        )
        assert took <= watchdog + 5
        assert "Watchdog timeout" in box.journal("powerbridge")

        restarts = int(box.show("powerbridge", "NRestarts"))
        pid = main_pid(box)
        box.run(f"kill -KILL {pid}")
        took = wait_restart(box, pid, restarts, timeout=30)
        print(f"measured: SIGKILL → restarted by Restart= in {took:.1f} s (RestartSec=2s)")

        last = max(sub.seqs())
        sub.wait_beyond(last + 5, timeout=60)
        missing = sub.missing()
        print(f"measured: {len(set(sub.seqs()))} sample seqs received, {len(missing)} missing")
        assert missing == []
    finally:
        sub.stop()

    # A user who may not read the configuration (as the docs show the command, without sudo).
    box.run("useradd --create-home alice")
    reduced = box.run(f"powerbridge deployment status -c {CONFIG}", user="alice", check=False)
    assert reduced.returncode == 1, reduced.stdout + reduced.stderr
    assert "reduced view" in reduced.stdout
    assert "service      active (enabled)" in reduced.stdout
    assert "powerbridge group" in reduced.stdout
    checked = box.run(f"powerbridge check -c {CONFIG}", user="alice", check=False)
    assert "sudo usermod -aG powerbridge" in checked.stdout, checked.stdout

    # --- 5. stopped: disabled, its unit gone, and status no longer vouches for the meter ----
    box.run(f"powerbridge deployment stop -c {CONFIG}")
    assert "powerbridge" not in box.run("systemctl list-unit-files --no-legend").stdout
    after = json.loads(
        box.run(f"powerbridge deployment status -c {CONFIG} --json", check=False).stdout
    )
    assert after["service"]["state"] == "not-installed"
    assert after["meter"]["link"] is None
    assert "not read: the service is" in after["meter"]["detail"]
    assert after["deployment"]["active"] is False
