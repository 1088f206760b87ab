"""A private Network UPS Tools instance for side-by-side latency measurements.

``upsd`` with the ``dummy-ups`` driver and ``upsmon`` with their **default** timing
(driver ``pollinterval`` 2 s, upsmon ``POLLFREQ``/``POLLFREQALERT`` 5 s), a
``NOTIFYCMD`` that timestamps ONBATT/ONLINE, and the dummy UPS's ``ups.status``
flipped between ``OL`` and ``OB`` by rewriting its definition file.  Everything
runs from a temporary directory on loopback; nothing under ``/etc/nut`` is used.
Debian's ``/usr/sbin/upsd`` and ``upsmon`` are wrapper scripts that refuse to run
unless ``/etc/nut/nut.conf`` is edited, so the real binaries in ``/lib/nut`` are used.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

NUT_LIBEXEC = ("/lib/nut", "/usr/lib/nut", "/usr/libexec/nut")


class NutUnavailableError(RuntimeError):
    """NUT cannot run here; the message says exactly why."""


def _find(name: str) -> str:
    for directory in NUT_LIBEXEC:
        path = Path(directory) / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise NutUnavailableError(
        f"{name} not found in {', '.join(NUT_LIBEXEC)}: install Debian's nut-server and "
        "nut-client (`apt-get install -y nut-server nut-client`)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class NutInstance:
    directory: Path
    port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.directory / "notify.log"

    def set_status(self, status: str) -> float:
        """Write ``ups.status`` to the dummy definition; returns the monotonic time of the edge."""
        path = self.directory / "etc" / "dummy.dev"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"ups.status: {status}\n")
        stamp = time.time()
        os.replace(tmp, path)
        return stamp

    def notifications(self) -> list[tuple[float, str]]:
        try:
            lines = self.log.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            stamp, kind = line.split()[:2]
            out.append((float(stamp), kind))
        return out

    def wait_for(self, kind: str, count: int, timeout: float) -> float:
        """Wall time of the ``count``-th notification of ``kind`` (raises on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = [t for t, k in self.notifications() if k == kind]
            if len(seen) >= count:
                return seen[count - 1]
            time.sleep(0.01)
        raise TimeoutError(f"NUT sent no {kind} #{count} within {timeout} s")

    def stop(self) -> None:
        stop_daemons(self.processes)
        shutil.rmtree(self.directory, ignore_errors=True)


def stop_daemons(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop NUT daemons, newest first, and forget them.  Each leads its own process group
    (upsmon forks a child): the group gets SIGTERM, and SIGKILL after 5 s."""
    for proc in reversed(processes):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in processes:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    processes.clear()


def start() -> NutInstance:
    """Start dummy-ups, upsd and upsmon with default timing in a temporary directory."""
    driver, upsd, upsmon = _find("dummy-ups"), _find("upsd"), _find("upsmon")
    # NUT's daemons switch to the user given with -u; started by an ordinary user they
    # simply stay that user, so the benchmark runs as whoever starts it.
    user = pwd.getpwuid(os.geteuid()).pw_name
    base = Path(tempfile.mkdtemp(prefix="pb-nut-"))
    etc, state = base / "etc", base / "state"
    etc.mkdir()
    state.mkdir(mode=0o700)
    port = _free_port()
    (etc / "nut.conf").write_text("MODE=standalone\n")
    (etc / "ups.conf").write_text(
        '[dummy]\n  driver = dummy-ups\n  port = dummy.dev\n  desc = "bench"\n'
    )
    (etc / "dummy.dev").write_text("ups.status: OL\n")
    (etc / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {port}\n")
    (etc / "upsd.users").write_text("[monuser]\n  password = pass\n  upsmon primary\n")
    notify = etc / "notify.sh"
    notify.write_text(f'#!/bin/sh\necho "$(date +%s.%N) $NOTIFYTYPE" >> {base / "notify.log"}\n')
    notify.chmod(0o755)
    (etc / "upsmon.conf").write_text(
        f"RUN_AS_USER {user}\n"
        f"MONITOR dummy@127.0.0.1:{port} 1 monuser pass primary\n"
        "MINSUPPLIES 1\n"
        'SHUTDOWNCMD "/bin/true"\n'
        f"NOTIFYCMD {notify}\n"
        "NOTIFYFLAG ONBATT SYSLOG+EXEC\n"
        "NOTIFYFLAG ONLINE SYSLOG+EXEC\n"
    )
    for conf in etc.iterdir():
        if conf.suffix != ".sh":
            conf.chmod(0o640)
    env = {
        **os.environ,
        "NUT_CONFPATH": str(etc),
        "NUT_STATEPATH": str(state),
        "NUT_ALTPIDPATH": str(state),
    }
    instance = NutInstance(base, port)
    logs = (base / "daemons.log").open("ab")
    try:
        # -F: stay in the foreground so that we own the processes and can stop them.
        for argv in ([driver, "-a", "dummy", "-u", user, "-F"], [upsd, "-u", user, "-F"]):
            instance.processes.append(
                subprocess.Popen(
                    argv, env=env, stdout=logs, stderr=logs, cwd=base, start_new_session=True
                )
            )
            time.sleep(1.0)
        instance.processes.append(
            subprocess.Popen(
                [upsmon, "-u", user, "-F"],
                env=env,
                stdout=logs,
                stderr=logs,
                cwd=base,
                start_new_session=True,
            )
        )
        time.sleep(2.0)
        _check_alive(instance)
    except BaseException:
        instance.stop()
        raise
    finally:
        logs.close()
    return instance


def _check_alive(instance: NutInstance) -> None:
    dead = [p.args for p in instance.processes if p.poll() is not None]
    if dead:
        log = (instance.directory / "daemons.log").read_text(errors="replace")[-2000:]
        raise NutUnavailableError(f"NUT daemon exited at start: {dead}; log:\n{log}")


def measure(flips: int, *, hold: float = 1.0, seed: int = 7) -> dict[str, list[float]]:
    """Flip OL→OB→OL ``flips`` times; latency (s) from each edge to NUT's notification."""
    rng = random.Random(seed)
    nut = start()
    onbatt: list[float] = []
    online: list[float] = []
    try:
        for i in range(1, flips + 1):
            # A random phase, so edges are not locked to the driver's and upsmon's poll loops.
            time.sleep(rng.uniform(0, 5.0))
            edge = nut.set_status("OB")
            onbatt.append(nut.wait_for("ONBATT", i, timeout=30) - edge)
            time.sleep(hold + rng.uniform(0, 5.0))
            edge = nut.set_status("OL")
            online.append(nut.wait_for("ONLINE", i, timeout=30) - edge)
            time.sleep(hold)
    finally:
        nut.stop()
    return {"onbatt_s": onbatt, "online_s": online}
