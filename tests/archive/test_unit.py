"""The archive's systemd unit: rendered completely, and valid for systemd when it is here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.archive.unit import render_unit


def test_the_unit_runs_archive_run_with_this_configuration() -> None:
    text = render_unit(user="archive", config=Path("/srv/a.yaml"), python="/opt/pb/bin/python")
    assert "@EXEC_START@" not in text
    assert "@USER@" not in text
    assert "ExecStart=/opt/pb/bin/python -m bridge archive run -c /srv/a.yaml" in text
    assert "User=archive" in text
    assert "ProtectSystem=strict" in text


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "powerbridge-archive.service"
    unit.write_text(render_unit(user="root", python=shutil.which("true") or "/bin/true"))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
