"""Booted Debian 12 containers for the system tier: systemd-nspawn on overlays of a cached root.

Layers, bottom up (all cached outside the checkout except the last two):

1. ``tools/debian-root system-bookworm-<hash of PACKAGES>``: debootstrap of Debian 12 with
   systemd, Mosquitto and the packages the install guide installs (a root per package list,
   so that checkouts with different lists do not rebuild each other's);
2. ``…-venv``: ``/opt/powerbridge``, a venv holding the wheel's dependencies
   from PyPI (rebuilt when ``pyproject.toml``'s dependencies change);
3. per test session: the project's wheel, built from this checkout, installed into that venv
   with ``--no-deps`` and linked as ``/usr/local/bin/powerbridge``;
4. per container: an empty upper directory in the test's temporary directory.

The install guide's test (``test_install_guide.py``) boots from another stack, where nothing of
powerbridge is installed: layer 1, then ``…-wheelhouse`` (the wheels of the build backend and of
the dependencies, from PyPI, cached), then a session layer that stands in for the network the
containers do not have: ``/etc/pip.conf`` makes pip read that wheelhouse, and ``/etc/gitconfig``
makes ``git clone https://github.com/powerbridge/powerbridge.git`` read the checkout under test
(as it is: uncommitted and untracked files included).

A container boots with ``systemd-nspawn --boot --register=no --keep-unit`` in a network
namespace of its own (or one shared with a second container: they talk over that
namespace's loopback and nothing else).  Commands run inside with ``nsenter`` into the
container's PID 1, so they see exactly what a shell on the machine sees.

``python -m tests.system._container shell`` boots one and prints how to enter it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
PACKAGES = (
    "systemd,systemd-sysv,dbus,python3,python3-venv,ca-certificates,"
    "mosquitto,iproute2,procps,sudo,udev,"
    # What docs/install-raspberry-pi.md installs with apt (the containers have no network:
    # its `apt install` lines then find them installed, as on a machine that ran them before).
    "python3-pip,python3-gpiozero,mosquitto-clients,git,pipx"
)
BASE_NAME = f"system-bookworm-{hashlib.sha256(PACKAGES.encode()).hexdigest()[:8]}"
VENV = "/opt/powerbridge"
WHEELHOUSE = "/var/cache/powerbridge/wheelhouse"
GUIDE_REPOSITORY = "https://github.com/powerbridge/powerbridge.git"
PATH_INSIDE = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class UnavailableError(Exception):
    """Containers cannot be booted here; the message says exactly why."""


def cache_dir() -> Path:
    return Path(os.environ.get("POWERBRIDGE_CACHE", str(Path.home() / ".cache/powerbridge")))


def _run(argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)


def preflight() -> None:
    """Raise :class:`UnavailableError` unless this machine can boot a container."""
    if sys.platform != "linux":
        raise UnavailableError(f"systemd-nspawn needs Linux (this is {sys.platform})")
    if os.geteuid() != 0:
        raise UnavailableError(
            "booting containers needs root (systemd-nspawn, overlay mounts); run the tier as root"
        )
    for tool, package in (
        ("systemd-nspawn", "systemd-container"),
        ("nsenter", "util-linux"),
        ("ip", "iproute2"),
    ):
        if shutil.which(tool) is None:
            raise UnavailableError(f"{tool} is missing: apt-get install -y {package}")


# ---------------------------------------------------------------------------- layers


def base_root() -> Path:
    """Layer 1: the cached debootstrap root (built once, a few minutes)."""
    result = _run([str(ROOT / "tools/debian-root"), BASE_NAME, SUITE, PACKAGES])
    if result.returncode != 0:
        raise UnavailableError(f"tools/debian-root failed: {result.stderr.strip()[-2000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return list(project["dependencies"])


@contextlib.contextmanager
def overlay(lower: Sequence[Path], upper: Path, work: Path, merged: Path) -> Iterator[Path]:
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    lowerdir = ":".join(str(p) for p in lower)
    result = _run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={lowerdir},upperdir={upper},workdir={work}",
            str(merged),
        ]
    )
    if result.returncode != 0:
        raise UnavailableError(f"cannot mount an overlay: {result.stderr.strip()}")
    try:
        yield merged
    finally:
        for _ in range(20):
            if _run(["umount", str(merged)]).returncode == 0:
                break
            time.sleep(0.2)
        else:
            _run(["umount", "-l", str(merged)])


def _in_chroot(merged: Path, script: str, *, binds: Sequence[str] = ()) -> None:
    """Run ``script`` in a non-booted container on the host's network (to reach PyPI)."""
    argv = ["systemd-nspawn", "-q", "--register=no", "--keep-unit", "--pipe", "-D", str(merged)]
    argv += [f"--bind-ro={b}" for b in binds]
    argv += ["/bin/sh", "-euc", script]
    result = _run(argv, timeout=900)
    if result.returncode != 0:
        raise UnavailableError(
            f"preparing the container root failed ({script[:80]}…):\n"
            f"{(result.stdout + result.stderr)[-3000:]}"
        )


def venv_layer(base: Path) -> Path:
    """Layer 2: ``/opt/powerbridge`` with the wheel's dependencies from PyPI (cached)."""
    deps = dependencies()
    key = hashlib.sha256("\n".join([str(base), *deps]).encode()).hexdigest()
    layer = cache_dir() / "roots" / f"{BASE_NAME}-venv"
    stamp = layer / "key"
    if stamp.is_file() and stamp.read_text().strip() == key:
        return layer / "upper"
    tmp = layer.with_name(f"{layer.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with overlay([base], tmp / "upper", tmp / "work", tmp / "merged") as merged:
            quoted = " ".join(shlex.quote(d) for d in deps)
            _in_chroot(
                merged,
                f"python3 -m venv --system-site-packages {VENV}; "
                f"{VENV}/bin/pip install -q --disable-pip-version-check {quoted}",
            )
        shutil.rmtree(tmp / "work", ignore_errors=True)
        shutil.rmtree(tmp / "merged", ignore_errors=True)
        (tmp / "key").write_text(key + "\n")
        shutil.rmtree(layer, ignore_errors=True)
        tmp.rename(layer)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return layer / "upper"


def build_wheel(out: Path) -> Path:
    """The project's wheel, built from this checkout."""
    out.mkdir(parents=True, exist_ok=True)
    result = _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)]
    )
    wheels = sorted(out.glob("powerbridge-*.whl"))
    if result.returncode != 0 or not wheels:
        raise UnavailableError(f"cannot build the wheel: {result.stderr.strip()[-2000:]}")
    return wheels[-1]


@dataclass
class Image:
    """The layers every container of a test session is booted from."""

    lower: list[Path]
    wheel: Path | None = None


def build_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(project["build-system"]["requires"])


def wheelhouse_layer(base: Path) -> Path:
    """``WHEELHOUSE``: the wheels pip needs to install the checkout offline (cached)."""
    wanted = build_requirements() + dependencies()
    key = hashlib.sha256("\n".join([str(base), *wanted]).encode()).hexdigest()
    layer = cache_dir() / "roots" / f"{BASE_NAME}-wheelhouse"
    stamp = layer / "key"
    if stamp.is_file() and stamp.read_text().strip() == key:
        return layer / "upper"
    tmp = layer.with_name(f"{layer.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with overlay([base], tmp / "upper", tmp / "work", tmp / "merged") as merged:
            quoted = " ".join(shlex.quote(d) for d in wanted)
            _in_chroot(
                merged,
                "python3 -m venv /tmp/wheelhouse-venv; "
                f"/tmp/wheelhouse-venv/bin/pip download -q --disable-pip-version-check "
                f"-d {WHEELHOUSE} pip {quoted}; rm -rf /tmp/wheelhouse-venv",
            )
        shutil.rmtree(tmp / "work", ignore_errors=True)
        shutil.rmtree(tmp / "merged", ignore_errors=True)
        (tmp / "key").write_text(key + "\n")
        shutil.rmtree(layer, ignore_errors=True)
        tmp.rename(layer)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return layer / "upper"


def _git(*args: str, env: dict[str, str] | None = None) -> str:
    result = _run(["git", *args], env=env)
    if result.returncode != 0:
        raise UnavailableError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def prepare_guide_image(scratch: Path) -> Image:
    """Layer 1, the wheelhouse, and the stand-ins for the network (see the module's text)."""
    preflight()
    if shutil.which("git") is None:
        raise UnavailableError("git is missing: apt-get install -y git")
    base = base_root()
    wheels = wheelhouse_layer(base)
    upper = scratch / "guide"
    (upper / "etc").mkdir(parents=True, exist_ok=True)
    (upper / "etc/pip.conf").write_text(f"[global]\nno-index = true\nfind-links = {WHEELHOUSE}\n")
    repo = upper / "srv/powerbridge.git"
    # The checkout as it is, uncommitted and untracked (not ignored) files included, as one
    # commit on top of HEAD made through a private index: the checkout's own is not touched.
    env = {
        **os.environ,
        "GIT_INDEX_FILE": str(scratch / "index"),
        "GIT_AUTHOR_NAME": "system tier",
        "GIT_AUTHOR_EMAIL": "system-tier@localhost",
        "GIT_COMMITTER_NAME": "system tier",
        "GIT_COMMITTER_EMAIL": "system-tier@localhost",
    }
    _git("-C", str(ROOT), "read-tree", "HEAD", env=env)
    _git("-C", str(ROOT), "add", "-A", env=env)
    tree = _git("-C", str(ROOT), "write-tree", env=env)
    commit = _git("-C", str(ROOT), "commit-tree", tree, "-p", "HEAD", "-m", "checkout", env=env)
    _git("init", "-q", "--bare", str(repo))
    _git("-C", str(ROOT), "push", "-q", str(repo), f"{commit}:refs/heads/main")
    _git("-C", str(repo), "symbolic-ref", "HEAD", "refs/heads/main")
    (upper / "etc/gitconfig").write_text(
        f'[url "file:///srv/powerbridge.git"]\n\tinsteadOf = {GUIDE_REPOSITORY}\n'
        # Owned by root, read by the guide's user (who clones GitHub's copy, owned by nobody).
        "[safe]\n\tdirectory = /srv/powerbridge.git\n"
    )
    (upper / "etc/hosts").write_text(
        "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
    )
    return Image(lower=[upper, wheels, base])


def prepare_image(scratch: Path) -> Image:
    """Layers 1–3; ``scratch`` holds the session layer (removed by the caller)."""
    preflight()
    base = base_root()
    venv = venv_layer(base)
    wheel = build_wheel(scratch / "dist")
    session = scratch / "session"
    with overlay([venv, base], session / "upper", session / "work", session / "merged") as merged:
        _in_chroot(
            merged,
            f"{VENV}/bin/pip install -q --disable-pip-version-check --no-deps --no-index "
            f"/wheel/{wheel.name}; ln -sf {VENV}/bin/powerbridge /usr/local/bin/powerbridge; "
            # What an installed Debian has and debootstrap leaves out: name resolution of
            # localhost (the bridge's default broker host).
            "printf '127.0.0.1 localhost\\n::1 localhost ip6-localhost ip6-loopback\\n'"
            " > /etc/hosts",
            binds=[f"{wheel.parent}:/wheel"],
        )
    return Image(lower=[session / "upper", venv, base], wheel=wheel)


# ---------------------------------------------------------------------------- network


@dataclass
class Netns:
    """A network namespace with only loopback: the containers in it see nothing else."""

    name: str = field(default_factory=lambda: f"pb-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        result = _run(["ip", "netns", "add", self.name])
        if result.returncode != 0:
            raise UnavailableError(f"cannot create a network namespace: {result.stderr.strip()}")
        _run(["ip", "-n", self.name, "link", "set", "lo", "up"])

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def delete(self) -> None:
        _run(["ip", "netns", "delete", self.name])


# ---------------------------------------------------------------------------- containers


class Container:
    """One booted container; ``run()`` executes a shell command inside it."""

    def __init__(
        self,
        image: Image,
        workdir: Path,
        *,
        name: str,
        netns: Netns,
        binds: Sequence[str] = (),
        masked: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.image = image
        self.workdir = workdir
        self.netns = netns
        self.binds = list(binds)
        self.log_path = workdir / f"{name}.console.log"
        self._stack = contextlib.ExitStack()
        self.root = self._stack.enter_context(
            overlay(image.lower, workdir / "upper", workdir / "work", workdir / "merged")
        )
        (self.root / "etc/hostname").write_text(f"{name}\n")
        with (self.root / "etc/hosts").open("a") as hosts:  # as Debian's installer does
            hosts.write(f"127.0.1.1 {name}\n")
        for unit in masked:  # e.g. a PC runs no broker of its own
            (self.root / "etc/systemd/system" / unit).symlink_to("/dev/null")
        self.process: subprocess.Popen[bytes] | None = None
        self.pid1 = 0

    # -- lifecycle -----------------------------------------------------------------------
    def boot(self, timeout: float = 60.0) -> None:
        argv = [
            "systemd-nspawn",
            "-D",
            str(self.root),
            "--boot",
            "--register=no",
            "--keep-unit",
            f"--machine={self.name}",
            f"--hostname={self.name}",
            f"--network-namespace-path={self.netns.path}",
            "--console=passive",
            *(f"--bind={b}" for b in self.binds),
        ]
        self.pid1 = 0  # booting again after kill() keeps the container's files
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UnavailableError(
                    f"systemd-nspawn exited {self.process.returncode} while booting: "
                    f"{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            if not self.pid1:
                self.pid1 = self._find_pid1()
            if self.pid1:
                state = self.run("systemctl is-system-running", check=False, timeout=10)
                if state.stdout.strip() in ("running", "degraded"):
                    if state.stdout.strip() == "degraded":
                        failed = self.run("systemctl --failed --no-legend", check=False)
                        raise AssertionError(f"{self.name} booted degraded:\n{failed.stdout}")
                    return
            time.sleep(0.3)
        raise UnavailableError(f"{self.name} did not finish booting within {timeout:g} s")

    def _find_pid1(self) -> int:
        assert self.process is not None
        with contextlib.suppress(OSError, ValueError):
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                children = (task / "children").read_text().split()
                if children:
                    return int(children[0])
        return 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout: float) -> float | None:
        """Wait until the container has ended; the monotonic time it was seen gone."""
        assert self.process is not None
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic()

    def kill(self) -> None:
        """Pull the plug: SIGKILL the container's PID 1 (the whole container ends)."""
        if self.running and self.pid1:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, signal.SIGKILL)
            self.wait_exit(15)

    def close(self) -> None:
        if self.running:
            self.run("systemctl poweroff", check=False, timeout=10)
            if self.wait_exit(30) is None and self.process is not None:
                self.kill()
                if self.running:
                    self.process.kill()
                    self.process.wait(10)
        self._stack.close()

    # -- inside --------------------------------------------------------------------------
    def run(
        self,
        command: str,
        *,
        check: bool = True,
        timeout: float = 120.0,
        user: str | None = None,
        input: str | None = None,  # noqa: A002 - as subprocess.run
    ) -> subprocess.CompletedProcess[str]:
        """``command`` through ``/bin/sh -c`` inside the container, as root (or ``user``)."""
        assert self.pid1, "boot() first"
        inner = ["/bin/sh", "-c", command]
        if user:
            inner = ["setpriv", "--reuid", user, "--regid", user, "--init-groups", "--", *inner]
        argv = ["nsenter", "-t", str(self.pid1), "-a", "--"]
        argv += ["env", "-i", f"PATH={PATH_INSIDE}", "LANG=C.UTF-8", "TERM=dumb"]
        argv += [f"HOME={'/root' if not user else '/'}", f"USER={user or 'root'}", *inner]
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, input=input, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"in {self.name}: `{command}` exited {result.returncode}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        self.run(
            f"mkdir -p {shlex.quote(str(Path(path).parent))} && cat > {shlex.quote(path)}"
            f" && chmod {mode:o} {shlex.quote(path)}",
            input=text,
        )

    def read(self, path: str) -> str:
        return self.run(f"cat {shlex.quote(path)}").stdout

    def show(self, unit: str, prop: str) -> str:
        return self.run(f"systemctl show -P {prop} {unit}").stdout.strip()

    def journal(self, unit: str | None = None, identifier: str | None = None) -> str:
        what = f"-u {unit}" if unit else f"-t {identifier}"
        return self.run(f"journalctl --no-pager -o short-monotonic {what}", check=False).stdout

    def wait_for(self, command: str, timeout: float = 30.0, interval: float = 0.3) -> str:
        """Run ``command`` until it exits 0; its output."""
        deadline = time.monotonic() + timeout
        last: subprocess.CompletedProcess[str] | None = None
        while time.monotonic() < deadline:
            last = self.run(command, check=False)
            if last.returncode == 0:
                return last.stdout
            time.sleep(interval)
        detail = "" if last is None else f"{last.stdout}{last.stderr}"
        raise AssertionError(
            f"in {self.name}: `{command}` did not succeed in {timeout:g} s\n{detail}"
        )


def main() -> int:
    """``python -m tests.system._container shell``: boot one container for a manual look."""
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="pb-system-"))
    image = prepare_image(scratch)
    netns = Netns()
    box = Container(image, scratch / "box", name="pb-shell", netns=netns)
    box.boot()
    print(f"booted; enter it with: nsenter -t {box.pid1} -a /bin/bash   (Ctrl-C here ends it)")
    try:
        while box.running:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        box.close()
        netns.delete()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
