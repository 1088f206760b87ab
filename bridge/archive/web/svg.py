"""Charts as inline SVG, drawn on the server from already downsampled series.

Pure functions from numbers to markup: no script, no external file, so a page works
offline and prints.  A series is drawn as its min–max envelope (a light band: the
extremes the downsampling averaged away stay visible) under the line of its means;
outages are translucent bands across the whole height, drawn on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Final

from bridge.archive.store import OutageRow, Point

WIDTH: Final = 900
HEIGHT: Final = 220
PAD_LEFT: Final = 56
PAD_RIGHT: Final = 12
PAD_TOP: Final = 12
PAD_BOTTOM: Final = 28


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / count
    return [low + i * step for i in range(count + 1)]


def _time_label(ms: int, span_ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%H:%M" if span_ms <= 2 * 86_400_000 else "%d %b")


def chart(
    points: Sequence[Point],
    quantity: str,
    *,
    title: str,
    unit: str,
    start_ms: int,
    end_ms: int,
    outages: Sequence[OutageRow] = (),
) -> str:
    """One quantity between two times as an ``<svg>`` element."""
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    span = max(1, end_ms - start_ms)
    values = [(p.ts_ms, v) for p in points if (v := p.values.get(quantity)) is not None]
    low = min((v[1] for _, v in values), default=0.0)
    high = max((v[2] for _, v in values), default=1.0)
    if high - low < 1e-9:
        low, high = low - 1.0, high + 1.0
    margin = (high - low) * 0.05
    low, high = low - margin, high + margin

    def x(ms: int) -> float:
        return PAD_LEFT + (min(max(ms, start_ms), end_ms) - start_ms) / span * plot_w

    def y(value: float) -> float:
        return PAD_TOP + (high - value) / (high - low) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)} ({escape(unit)})" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>',
    ]
    parts.extend(
        f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" '
        f'y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
        f'<text class="axis" x="{PAD_LEFT - 6}" y="{y(tick) + 4:.1f}" '
        f'text-anchor="end">{tick:.4g}</text>'
        for tick in _ticks(low + margin, high - margin)
    )
    for i in range(5):
        ms = start_ms + span * i // 4
        parts.append(
            f'<text class="axis" x="{x(ms):.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{_time_label(ms, span)}</text>"
        )
    if values:
        upper = " ".join(f"{x(ms):.1f},{y(v[2]):.1f}" for ms, v in values)
        lower = " ".join(f"{x(ms):.1f},{y(v[1]):.1f}" for ms, v in reversed(values))
        mean = " ".join(f"{x(ms):.1f},{y(v[0]):.1f}" for ms, v in values)
        parts.append(f'<polygon class="envelope" points="{upper} {lower}"/>')
        parts.append(f'<polyline class="line" points="{mean}"/>')
    else:
        parts.append(
            f'<text class="empty" x="{PAD_LEFT + plot_w / 2}" y="{PAD_TOP + plot_h / 2}" '
            'text-anchor="middle">no samples in this period</text>'
        )
    for outage in outages:
        left = x(outage.started_ms)
        right = x(outage.ended_ms if outage.ended_ms is not None else end_ms)
        parts.append(
            f'<rect class="outage" x="{left:.1f}" y="{PAD_TOP}" '
            f'width="{max(1.0, right - left):.1f}" height="{plot_h}"><title>outage</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)
