"""`powerbridge meter list | probe | simulate`, tried as a new user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from bridge.meters.ports import by_id_links, fits_for
from bridge.meters.simulator import SimulatedMeter
from tests.helpers.process import another_thread, signal_thread

pytestmark = pytest.mark.realtime  # pseudo-terminals and serial timeouts: see pyproject.toml

KEYS = {"ts", "channel", "voltage_v", "current_a", "power_w", "frequency_hz", "power_factor"}


def test_probe_prints_json_lines(
    simulator: Callable[..., SimulatedMeter], capsys: pytest.CaptureFixture[str]
) -> None:
    sim = simulator("mcp39f511n", channel_loads=[300.0, 40.0])
    args = ["--port", sim.port, "--channel", "2", "--count", "3", "--interval", "0.01"]
    code = main(["meter", "probe", "--type", "mcp39f511n", *args])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(out) == 3
    lines = [json.loads(line) for line in out]
    assert all(KEYS | {"energy_wh"} <= set(line) for line in lines)
    assert {line["channel"] for line in lines} == {2}
    assert lines[0]["power_w"] == pytest.approx(40, rel=0.15)
    assert lines[0]["ts"].endswith("Z")


def test_probe_without_an_answer_names_the_port_and_causes(
    pty_pair: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["meter", "probe", "--type", "pzem004t", "--port", pty_pair.port, "--timeout", "0.1"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert pty_pair.port in err
    assert "no answer" in err
    assert "Likely causes" in err
    assert "powered from the mains it measures" in err or "mains it measures" in err


def test_probe_of_a_missing_port(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    port = str(tmp_path / "ttyUSB7")
    assert main(["meter", "probe", "--type", "sdm120", "--port", port]) == 1
    err = capsys.readouterr().err
    assert port in err
    assert "not found" in err


def test_probe_of_the_wrong_meter_type(
    simulator: Callable[..., SimulatedMeter], capsys: pytest.CaptureFixture[str]
) -> None:
    sim = simulator("pzem004t")
    code = main(["meter", "probe", "--type", "sdm630", "--port", sim.port, "--timeout", "0.2"])
    assert code == 1
    assert "answered, but its reply is not a valid Eastron SDM630 reply" in capsys.readouterr().err


def test_probe_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meter", "probe", "--type", "pzem004t", "--port", "/x", "--channel", "2"]) == 2
    assert "channel" in capsys.readouterr().err
    assert main(["meter", "probe", "--type", "pzem004t", "--port", "/x", "--count", "0"]) == 2
    assert main(["meter"]) == 2


def test_list_runs_and_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meter", "list", "--json"]) == 0
    ports = json.loads(capsys.readouterr().out)
    assert isinstance(ports, list)
    for port in ports:
        assert {"device", "vid_pid", "fits", "recommended_port"} <= set(port)


def test_which_driver_fits_which_adapter() -> None:
    assert fits_for(0x04D8, 0x00DD, "/dev/ttyACM0")[1] == ("mcp39f511n",)
    assert "pzem004t" in fits_for(0x1A86, 0x7523, "/dev/ttyUSB0")[1]
    assert fits_for(0x1234, 0x5678, "/dev/ttyUSB3")[1] == ()


def test_by_id_links_resolve_to_devices(tmp_path: Path) -> None:
    device = tmp_path / "ttyACM0"
    device.touch()
    link = tmp_path / "by-id" / "usb-Microchip_Technology_Inc._MCP2221_USB_Device-if00"
    link.parent.mkdir()
    link.symlink_to(device)
    assert by_id_links(link.parent) == {str(device): str(link)}
    assert by_id_links(tmp_path / "missing") == {}


SIMULATE = [sys.executable, "-m", "bridge", "meter", "simulate", "--type", "pzem004t"]


def simulator(*args: str) -> subprocess.Popen[str]:
    """``meter simulate`` with its standard streams as pipes."""
    return subprocess.Popen(
        [*SIMULATE, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_simulate_then_probe_like_a_new_user(tmp_path: Path) -> None:
    process = simulator("--link-dir", str(tmp_path), "--load", "250")
    try:
        assert process.stdout is not None
        assert process.stdin is not None
        port = process.stdout.readline().strip()
        assert port == str(tmp_path / "pzem004t")
        probe = [sys.executable, "-m", "bridge", "meter", "probe", "--type", "pzem004t"]
        done = subprocess.run([*probe, "--port", port], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["power_w"] == pytest.approx(250, rel=0.15)
        process.stdin.write("mains off\n")
        process.stdin.flush()
        time.sleep(0.2)
        silent = subprocess.run(
            [*probe, "--port", port, "--timeout", "0.2"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert silent.returncode == 1
        assert "Likely causes" in silent.stderr
        process.stdin.write("quit\n")
        process.stdin.flush()
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not os.path.lexists(port)


@pytest.mark.parametrize("to_thread", [False, True], ids=["process", "another-thread"])
def test_simulate_stops_on_sigterm_with_its_input_still_open(
    tmp_path: Path, to_thread: bool
) -> None:
    """Under a service manager stdin stays open: SIGTERM alone ends the simulator, even
    when the kernel hands the signal to the simulator's own thread."""
    process = simulator("--link-dir", str(tmp_path))
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert os.path.lexists(port)
        if to_thread:
            signal_thread(process.pid, another_thread(process.pid), signal.SIGTERM)
        else:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert not os.path.lexists(port)
