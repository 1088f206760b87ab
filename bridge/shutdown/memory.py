"""The client's order memory on disk: the last accepted ``mains`` message of each bridge.

Kept so that a restart of this client (or of the PC) does not reopen the door to
old messages: after a restart, a replayed or re-delivered message is judged against
what was accepted before, exactly as it would have been without the restart.  The
file is small JSON, replaced atomically (write, fsync, rename) after each change.
A file that cannot be read is reported and ignored (the memory starts empty, as
on a first start); one that cannot be written is reported once per failure streak.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from bridge.log import RepeatedFailure
from bridge.shutdown.intake import Mark

log = logging.getLogger("bridge.shutdown")

FILE_VERSION = 1


def default_memory_path(client_id: str) -> Path:
    """Where the memory is kept by default: a system directory for a service, else per user.

    ``POWERBRIDGE_STATE_DIR`` overrides the directory (tests, unusual installs).
    """
    name = f"client-{client_id}-memory.json"
    override = os.environ.get("POWERBRIDGE_STATE_DIR")
    if override:
        return Path(override) / name
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "powerbridge" / name
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/powerbridge") / name
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "powerbridge" / name


class ReplayMemory:
    """Load and save the intake's marks (:class:`~bridge.shutdown.intake.Mark`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failure = RepeatedFailure(log, f"cannot keep the replay memory in {path}")
        self._saved: dict[str, Mark] | None = None

    def load(self) -> dict[str, Mark]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read the replay memory %s: %s; starting empty", self.path, exc)
            return {}
        try:
            marks = _parse(raw)
        except (ValueError, TypeError) as exc:
            log.warning("the replay memory %s is unreadable (%s); starting empty", self.path, exc)
            return {}
        self._saved = dict(marks)
        return marks

    def save(self, marks: dict[str, Mark]) -> bool:
        """Write ``marks`` if they changed; ``False`` when the file cannot be written."""
        if marks == self._saved:
            return True
        body = json.dumps(
            {"v": FILE_VERSION, "bridges": {k: m.to_json() for k, m in sorted(marks.items())}},
            sort_keys=True,
        )
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            self._failure.failed(exc)
            return False
        self._failure.recovered()
        self._saved = dict(marks)
        return True

    def forget(self) -> bool:
        """Delete the file (``powerbridge client forget``); whether there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        self._saved = None
        return True


def _parse(raw: str) -> dict[str, Mark]:
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("v") != FILE_VERSION:
        raise ValueError("unknown format")
    bridges = data.get("bridges")
    if not isinstance(bridges, dict):
        raise TypeError("no bridges")
    return {str(k): Mark.from_json(v) for k, v in bridges.items()}
