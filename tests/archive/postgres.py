"""A real PostgreSQL for the tests: Debian's server, started in a temporary directory.

``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/<version>/bin`` run as a
dedicated unprivileged user (:data:`PG_USER`, created when missing) when the tests
run as root — PostgreSQL refuses to run as root — and as the current user otherwise.
The server listens on a free loopback port with its socket in the same temporary
directory; nothing of the machine's own PostgreSQL is used or touched.

Missing binaries skip the test with an install instruction, or fail it under
``CI=true``: CI installs ``postgresql`` (``.ci/run``), so there it must run.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.broker.runner import free_port

PG_USER = "pbarchive"
INSTALL = "PostgreSQL is needed: sudo apt-get install -y postgresql"


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> float:
    try:
        return float(Path(path).parents[1].name)
    except ValueError:
        return 0.0


def unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: these tests must run in CI)", pytrace=False)
    pytest.skip(message)


def _owner() -> tuple[int, int] | None:
    """``(uid, gid)`` to run the server as, or ``None`` for the current user."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
        )
        entry = pwd.getpwnam(PG_USER)
    return entry.pw_uid, entry.pw_gid


@dataclass
class Postgres:
    """A private PostgreSQL server; :meth:`database` makes a fresh database per test."""

    bin: Path
    directory: Path
    port: int
    owner: tuple[int, int] | None
    _count: int = 0

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        user, group = self.owner or (None, None)
        return subprocess.run(
            list(argv), check=check, capture_output=True, text=True, user=user, group=group,
            cwd=self.directory,
        )  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.directory}'\n"
                "shared_buffers = 128MB\nmax_wal_size = 1GB\nfsync = on\n"
            )

    def start(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
                  check=False)  # fmt: skip

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash: it recovers from its WAL at the next start)."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)

    def database(self) -> str:
        import psycopg

        self._count += 1
        name = f"archive_{self._count}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")  # type: ignore[arg-type]
            conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
        return self.url(name)


def start_postgres() -> Postgres:
    binary = pg_bin()
    if binary is None:
        unavailable(INSTALL)
        raise AssertionError("unreachable")
    owner = _owner()
    directory = Path(tempfile.mkdtemp(prefix="pb-postgres-"))
    if owner is not None:
        os.chown(directory, *owner)
    server = Postgres(binary, directory, free_port(), owner)
    server.init()
    server.start()
    return server


def remove(server: Postgres) -> None:
    server.stop("immediate")
    shutil.rmtree(server.directory, ignore_errors=True)
