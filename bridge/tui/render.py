"""Turning a :class:`~bridge.tui.fleet.Fleet` into text, and putting text on a terminal.

Rendering is pure (``render_fleet`` returns lines); :class:`Screen` owns the
output stream.  On a terminal it redraws the frame in place with two ANSI
sequences (cursor up, erase line) and keeps the last frame on screen when it
closes; on anything else (a pipe, a log file, CI) it prints one plain line per
change and never an escape sequence.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TextIO

from bridge.tui.fleet import BridgeView, ClientView, Fleet, mains_label

CURSOR_UP = "\x1b[{n}F"
ERASE_LINE = "\x1b[2K"
BOLD, RED, GREEN, YELLOW, DIM, RESET = (
    "\x1b[1m",
    "\x1b[31m",
    "\x1b[32m",
    "\x1b[33m",
    "\x1b[2m",
    "\x1b[0m",
)


STALE_READING_S = 10.0
"""A reading older than this is flagged (the meter stopped, or the bridge did)."""
SPOOL_BACKLOG = 100
"""Undelivered samples above which the spool counts as a backlog worth showing."""

HIGHLIGHTS = (
    ("mains OFF", RED + BOLD),
    ("mains on ", GREEN),
    (" offline ", RED),
    ("counting", YELLOW + BOLD),
    ("shutting_down", RED + BOLD),
    ("NOT ARMED", RED),
)
"""Words coloured in the live view (never in plain mode; ``NO_COLOR`` switches it off)."""


def unicode_ok(stream: TextIO) -> bool:
    encoding = (getattr(stream, "encoding", None) or "ascii").lower().replace("-", "")
    return encoding in ("utf8", "utf16", "utf32")


def progress_bar(fraction: float, width: int = 20, *, ascii_only: bool = False) -> str:
    """``█████░░░░░`` (or ``#####-----``) for ``fraction`` in [0, 1]."""
    fraction = min(1.0, max(0.0, fraction))
    full = round(fraction * width)
    filled, empty = ("#", "-") if ascii_only else ("█", "░")
    return filled * full + empty * (width - full)


def duration(seconds: float | None) -> str:
    """``8.2 s``, ``42 s``, ``2 min 05 s``, ``3 h 02 min``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _num(value: float | None, unit: str, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}"


def _health_summary(view: BridgeView) -> str:
    health = view.health
    if not health:
        return "health ?"
    problems = []
    if health.get("meter_link") is False:
        problems.append("meter link down")
    if health.get("under_voltage") is True:
        problems.append("under-voltage")
    dropped = health.get("spool_dropped")
    if isinstance(dropped, int) and dropped > 0:
        problems.append(f"{dropped} samples dropped")
    depth = health.get("spool_depth")
    if isinstance(depth, int) and depth > SPOOL_BACKLOG:
        problems.append(f"{depth} samples waiting")
    if health.get("broker_connected") is False:
        problems.append("broker lost")
    temp = health.get("cpu_temperature_c")
    text = ", ".join(problems) if problems else "health ok"
    if isinstance(temp, int | float) and not isinstance(temp, bool):
        text += f", {temp:.0f} °C"
    return text


def bridge_line(view: BridgeView, now: float) -> str:
    status = view.status or "?"
    mains = mains_label(view)
    since = duration(view.mains_elapsed(now))
    parts = [
        f"{view.device_id:<16}",
        f"{status:<7}",
        f"mains {mains:<3} for {since:<10}",
        f"{_num(view.reading('power_w'), 'W'):>9}",
        f"{_num(view.reading('voltage_v'), 'V'):>8}",
        f"{_num(view.reading('current_a'), 'A', 2):>7}",
        f"{_num(view.reading('frequency_hz'), 'Hz'):>8}",
        _health_summary(view),
    ]
    if view.state_at is not None and now - view.state_at > STALE_READING_S:
        parts.append(f"last reading {duration(now - view.state_at)} ago")
    return "  ".join(parts)


def client_line(view: ClientView, now: float, *, ascii_only: bool = False) -> str:
    status = view.status or "?"
    phase = view.phase or "?"
    parts = [f"{view.client_id:<16}", f"{status:<7}", f"{phase:<13}"]
    left = view.seconds_left(now)
    delay = view.delay
    if phase == "counting" and left is not None:
        if delay:
            parts.append(progress_bar(1 - left / delay, ascii_only=ascii_only))
            parts.append(f"{duration(left)} left of {duration(delay)}")
        else:
            parts.append(f"{duration(left)} left")
    elif phase not in ("idle", "?", "counting"):
        parts.append(progress_bar(1.0, ascii_only=ascii_only))
    if view.dry_run:
        parts.append("(dry run)")
    elif view.state.get("armed") is False:
        parts.append("NOT ARMED")
    watched = view.watched
    if watched:
        parts.append("watching " + ", ".join(watched))
    return "  ".join(parts)


def render_fleet(fleet: Fleet, now: float, *, ascii_only: bool = False) -> list[str]:
    """The whole fleet as lines of text (no escape sequences)."""
    lines = [f"bridges ({len(fleet.bridges)})"]
    if not fleet.bridges:
        lines.append("  (none seen yet)")
    lines += [f"  {bridge_line(fleet.bridges[k], now)}" for k in sorted(fleet.bridges)]
    lines.append(f"shutdown clients ({len(fleet.clients)})")
    if not fleet.clients:
        lines.append("  (none seen yet)")
    lines += [
        f"  {client_line(fleet.clients[k], now, ascii_only=ascii_only)}"
        for k in sorted(fleet.clients)
    ]
    if fleet.bad_payloads:
        lines.append(f"({fleet.bad_payloads} malformed payloads ignored)")
    return lines


class Screen:
    """Where frames and lines go: redrawn in place on a terminal, appended otherwise."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        if live is None:
            live = self.stream.isatty() and os.environ.get("TERM", "") not in ("", "dumb")
        self.live = live
        self.color = live and "NO_COLOR" not in os.environ
        self.ascii_only = not unicode_ok(self.stream)
        self._drawn = 0

    def frame(self, lines: Sequence[str]) -> None:
        """Replace the previous frame (terminal only; ignored in plain mode)."""
        if not self.live:
            return
        out = []
        if self._drawn:
            out.append(CURSOR_UP.format(n=self._drawn))
        out.extend(f"{ERASE_LINE}{self._paint(line)}\n" for line in lines)
        if len(lines) < self._drawn:
            # Erase what is left of a longer previous frame, then come back up.
            extra = self._drawn - len(lines)
            out.extend(f"{ERASE_LINE}\n" for _ in range(extra))
            out.append(CURSOR_UP.format(n=extra))
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn = len(lines)

    def _paint(self, line: str) -> str:
        if not self.color:
            return line
        for word, style in HIGHLIGHTS:
            line = line.replace(word, f"{style}{word}{RESET}")
        return line

    def line(self, text: str) -> None:
        """A line that stays: printed above the live frame, or simply printed."""
        if self.live and self._drawn:
            self.stream.write(CURSOR_UP.format(n=self._drawn) + ERASE_LINE)
            self.stream.write("\x1b[J")  # erase the old frame below
            self._drawn = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Leave the last frame where it is and move on below it."""
        self._drawn = 0
        self.stream.flush()
