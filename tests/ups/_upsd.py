"""A private upsd with the dummy-ups driver whose definition file a test rewrites (a script).

Runs from a temporary directory on loopback (``NUT_CONFPATH``/``NUT_STATEPATH``); the real
binaries in ``/lib/nut`` (Debian's ``/usr/sbin/upsd`` wrapper refuses without
``/etc/nut/nut.conf``).  The driver re-reads its file every ``pollinterval`` (1 s here).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
import time
from pathlib import Path

from bridge.broker.runner import free_port
from tests.benchmarks.nut import stop_daemons
from tests.nut._harness import nut_program

USER, PASSWORD = "upsreader", "readpass"
POLLINTERVAL = 1


class DummyUpsd:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.etc, self.state = directory / "etc", directory / "state"
        self.etc.mkdir(parents=True)
        self.state.mkdir(mode=0o700)
        self.port = free_port()
        self.dev = self.etc / "dummy.dev"
        self.processes: list[subprocess.Popen[bytes]] = []
        self._mtime = 0.0

    def write(self, **values: str | float) -> float:
        """Rewrite the UPS (``ups_status="OB DISCHRG"`` → ``ups.status``); returns the time."""
        text = "".join(f"{k.replace('_', '.')}: {v}\n" for k, v in values.items())
        tmp = self.dev.with_suffix(".tmp")
        tmp.write_text(text)
        # dummy-ups re-reads its file when the mtime (whole seconds) differs from the last
        # one it read: two rewrites within one second would look like one.
        self._mtime = max(float(int(time.time())), self._mtime + 1.0)
        os.utime(tmp, (self._mtime, self._mtime))
        stamp = time.monotonic()
        os.replace(tmp, self.dev)
        return stamp

    def start(self, **initial: str | float) -> None:
        user = pwd.getpwuid(os.geteuid()).pw_name
        (self.etc / "nut.conf").write_text("MODE=standalone\n")
        (self.etc / "ups.conf").write_text(
            f'[dummy]\n  driver = dummy-ups\n  port = dummy.dev\n  desc = "test"\n'
            f"  pollinterval = {POLLINTERVAL}\n"
        )
        self.write(**initial)
        (self.etc / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {self.port}\n")
        (self.etc / "upsd.users").write_text(f"[{USER}]\n  password = {PASSWORD}\n")
        for conf in self.etc.iterdir():
            conf.chmod(0o640)
        env = {
            **os.environ,
            "NUT_CONFPATH": str(self.etc),
            "NUT_STATEPATH": str(self.state),
            "NUT_ALTPIDPATH": str(self.state),
        }
        with (self.directory / "daemons.log").open("ab") as log:
            for argv in (
                [nut_program("dummy-ups"), "-a", "dummy", "-u", user, "-F"],
                [nut_program("upsd"), "-u", user, "-F"],
            ):
                self.processes.append(
                    subprocess.Popen(
                        argv,
                        env=env,
                        stdout=log,
                        stderr=log,
                        cwd=self.directory,
                        start_new_session=True,
                    )
                )
                time.sleep(0.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise AssertionError((self.directory / "daemons.log").read_text())

    def stop(self) -> None:
        stop_daemons(self.processes)
