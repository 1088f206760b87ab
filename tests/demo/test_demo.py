"""`powerbridge demo` end to end: the real broker, bridge and shutdown client as processes.

The scenario is shortened with options; everything else is what `./dev demo` runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def demo(tmp: Path, *options: str) -> subprocess.Popen[str]:
    tmp.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", "demo", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"},
    )


def workdir_of(output: str) -> str:
    match = re.search(r"working directory: (\S+)", output)
    assert match, output
    return match.group(1)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (our children name the workdir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline}")
    return found


def assert_nothing_left(tmp: Path, workdir: str) -> None:
    deadline = time.monotonic() + 5
    while processes_mentioning(workdir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(workdir) == []
    assert not Path(workdir).exists()
    assert list(tmp.iterdir()) == []


def finish(proc: subprocess.Popen[str], timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        pytest.fail(f"the demo did not finish within {timeout} s:\n{out}")
    return out


Run = tuple[subprocess.Popen[str], Path]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """The two full scenarios, started together: they mostly wait, so they share the time."""
    base = tmp_path_factory.mktemp("demo")
    started: dict[str, Run] = {}
    for name, options in (
        ("expected", ("--delay", "3", "--normal", "2")),
        ("long-blip", ("--delay", "4", "--normal", "1", "--blips", "1", "--blip", "1.8")),
    ):
        tmp = base / name
        started[name] = (demo(tmp, *options), tmp)
    yield started
    for proc, _ in started.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_the_shortened_scenario_ends_with_the_expected_summary(runs: dict[str, Run]) -> None:
    proc, tmp = runs["expected"]
    out = finish(proc, 120)
    assert proc.returncode == 0, out
    summary = out[out.index("demo summary") :]
    assert re.search(r"normal load: +\d+ readings? received, 0 outages announced", summary)
    assert re.search(
        r"3 blips: +0 outages announced \(expected 0\), 0 shutdowns \(expected 0\)  ok", summary
    )
    assert re.search(
        r"long outage: +1 outage announced \(expected 1\), 1 dry-run shutdown after "
        r"[34]\.\d s \(expected 1 after 3 s\)  ok",
        summary,
    ), summary
    assert re.search(r"power restored: +restore seen: yes \(expected yes\)", summary)
    assert "result: everything happened as expected" in summary
    # The archive ran beside them on SQLite and kept every sample (a query, not a log).
    assert re.search(r"archive on SQLite: management view at http://127\.0\.0\.1:\d+/", out)
    assert re.search(r"archive: [1-9]\d* samples stored, 0 sequence numbers missing", summary)
    # The live part, in plain lines (stdout is a pipe): the countdown and the dry-run shutdown.
    assert "client demo-pc: counting" in out
    assert "it would shut down now" in out
    assert "\x1b[" not in out
    assert_nothing_left(tmp, workdir_of(out))


def test_a_blip_longer_than_the_window_is_seen_and_reported(runs: dict[str, Run]) -> None:
    """The summary is observed, not assumed: a "blip" the bridge must announce fails the demo."""
    proc, tmp = runs["long-blip"]
    out = finish(proc, 120)
    assert proc.returncode == 1, out
    assert re.search(
        r"1 blip: +1 outages announced \(expected 0\), 0 shutdowns \(expected 0\)  "
        r"NOT AS EXPECTED",
        out,
    ), out
    assert "result: something did not happen as expected" in out
    assert_nothing_left(tmp, workdir_of(out))


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_everything_and_removes_the_files(
    tmp_path: Path, signum: int, code: int
) -> None:
    tmp = tmp_path / "tmp"
    proc = demo(tmp, "--delay", "3")
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if "── normal load for" in line or not line:
            break
    output = "".join(seen)
    assert "── normal load for" in output, output
    workdir = workdir_of(output)
    pids = [int(p) for p in re.findall(r"pid (\d+)", output)]
    assert len(pids) == 3, output  # mosquitto, bridge, client
    assert processes_mentioning(workdir)
    proc.send_signal(signum)
    rest = finish(proc, 30)
    assert proc.returncode == code, rest
    assert f"stopped everything and removed {workdir}" in rest
    assert_nothing_left(tmp, workdir)
    assert [pid for pid in pids if alive(pid)] == []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_killed_demo_takes_its_processes_along_and_the_next_one_tidies_up(
    tmp_path: Path,
) -> None:
    """SIGKILL leaves the demo no time to clean up: its children die with it (Linux), and
    the directory it leaves is removed by a later demo once no process uses it."""
    from bridge.demo.stack import remove_stale_workdirs

    tmp = tmp_path / "tmp"
    proc = demo(tmp, "--delay", "3")
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if "── normal load for" in line or not line:
            break
    workdir = workdir_of("".join(seen))
    proc.kill()
    proc.communicate(timeout=10)
    deadline = time.monotonic() + 10
    while processes_mentioning(workdir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(workdir) == []
    assert Path(workdir).exists()  # nobody could remove it
    assert remove_stale_workdirs(tmp, min_age=0) == [Path(workdir)]
    assert list(tmp.iterdir()) == []


def test_a_directory_in_use_is_never_taken_for_a_stale_one(tmp_path: Path) -> None:
    from bridge.demo.stack import KEPT_MARKER, WORKDIR_PREFIX, remove_stale_workdirs

    used = tmp_path / f"{WORKDIR_PREFIX}inuse"
    used.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", str(used / "bridge.yaml")]
    )
    try:
        deadline = time.monotonic() + 10  # until the child has exec'd with its arguments
        while str(used) not in " ".join(processes_mentioning(str(used))):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert remove_stale_workdirs(tmp_path, min_age=0) == []
        assert remove_stale_workdirs(tmp_path) == []  # and young anyway
        assert used.exists()
    finally:
        holder.kill()
        holder.wait()
    kept = tmp_path / f"{WORKDIR_PREFIX}kept"
    kept.mkdir()
    (kept / KEPT_MARKER).touch()  # what --keep leaves
    assert remove_stale_workdirs(tmp_path, min_age=0) == [used]
    assert kept.exists()
