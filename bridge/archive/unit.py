"""The archive's systemd unit, rendered from the template shipped beside this module."""

from __future__ import annotations

import shlex
import sys
from importlib import resources
from pathlib import Path

TEMPLATE = "powerbridge-archive.service.tmpl"
UNIT_NAME = "powerbridge-archive.service"


def render_unit(
    *, user: str = "powerbridge", config: Path = Path("/etc/powerbridge/archive.yaml"),
    python: str | None = None,
) -> str:  # fmt: skip
    """The unit: ``python -m bridge archive run -c CONFIG`` as ``user``."""
    text = resources.files("bridge.archive").joinpath(TEMPLATE).read_text(encoding="utf-8")
    argv = [python or sys.executable, "-m", "bridge", "archive", "run", "-c", str(config)]
    return text.replace("@EXEC_START@", shlex.join(argv)).replace("@USER@", user)
