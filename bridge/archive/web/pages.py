"""The management view's pages: HTML built on the server from the store's rows.

Pure functions (rows and ``now`` in, markup out).  No script, no CDN: the style
sheet is inline, charts are inline SVG (:mod:`.svg`), so the view works offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any, Final
from urllib.parse import quote

from bridge.archive.store import DeploymentRow, FleetRow, GapRow, OutageRow, Point
from bridge.archive.web.svg import chart
from bridge.timefmt import AGE, scaled

STYLE: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2329;background:#fafbfc}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff} th,td{padding:.3em .6em;text-align:left;
border-bottom:1px solid #e1e4e8;white-space:nowrap} th{background:#f0f2f4;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.stale{background:#fde2e1;color:#8a1c14;font-weight:600} .ok{color:#1a7f37}
.off{color:#8a1c14;font-weight:600} .muted{color:#6a737d} a{color:#0b5cad}
.chart{width:100%;max-width:900px;height:auto;background:#fff;border:1px solid #e1e4e8}
.chart .plot{fill:#fff} .chart .grid{stroke:#eef0f2} .chart .axis{font-size:11px;fill:#6a737d}
.chart .envelope{fill:#b6d4f5;stroke:none} .chart .line{fill:none;stroke:#0b5cad;stroke-width:1.2}
.chart .outage{fill:#d73a2f;opacity:.28} .chart .empty{fill:#6a737d}
nav a{margin-right:1em} form{margin:.6em 0}
"""


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def when(ms: int | None) -> str:
    if ms is None:
        return "–"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def age(seconds: float | None) -> str:
    return "–" if seconds is None else scaled(seconds, AGE)


@dataclass(frozen=True, slots=True)
class FleetView:
    """One fleet row with what the page derives from it at ``now``."""

    row: FleetRow
    age_s: float | None
    stale: bool

    def to_dict(self) -> dict[str, Any]:
        r = self.row
        h = r.health
        return {
            "device": r.device,
            "deployment": r.deployment,
            "latitude": r.latitude,
            "longitude": r.longitude,
            "mains": r.mains,
            "online": r.online,
            "last_seen": when_iso(r.last_seen_ms),
            "newest_sample": when_iso(r.newest_sample_ms),
            "newest_sample_age_s": None if self.age_s is None else round(self.age_s, 3),
            "stale": self.stale,
            "samples_today": r.samples_today,
            "open_gaps": r.open_gaps,
            "missing": r.missing,
            "lost_gaps": r.lost,
            "outages": r.outages,
            "last_outage": when_iso(r.last_outage_ms),
            "health": {
                "cpu_temperature_c": h.get("cpu_temperature_c"),
                "throttled": h.get("throttled"),
                "disk_free_mb": h.get("disk_free_mb"),
                "spool_depth": h.get("spool_depth"),
            },
        }


def when_iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def fleet_views(rows: Sequence[FleetRow], now_ms: int, stale_after_s: float) -> list[FleetView]:
    out = []
    for row in rows:
        age_s = None if row.newest_sample_ms is None else (now_ms - row.newest_sample_ms) / 1000
        out.append(FleetView(row, age_s, age_s is None or age_s > stale_after_s))
    return out


def _cell(text: str, cls: str = "") -> str:
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def _num(value: Any, fmt: str = "{:g}") -> str:
    return "–" if value is None else escape(fmt.format(value))


def fleet_page(views: Sequence[FleetView], now_ms: int, stale_after_s: float) -> str:
    head = (
        "<tr><th>device</th><th>deployment</th><th>coordinates</th><th>mains</th>"
        "<th>link</th><th>last seen</th><th>newest sample</th><th>samples today</th>"
        "<th>open gaps</th><th>outages</th><th>last outage</th><th>CPU °C</th>"
        "<th>throttled</th><th>disk free MB</th><th>spool</th></tr>"
    )
    lines = []
    stale_count = sum(1 for v in views if v.stale)
    for v in views:
        r = v.row
        h = r.health
        link = f'<a href="/device/{quote(r.device)}">{escape(r.device)}</a>'
        coords = "–" if r.latitude is None else f"{r.latitude:.4f}, {r.longitude or 0:.4f}"
        online = {True: ("online", "ok"), False: ("offline", "off"), None: ("–", "muted")}[r.online]
        mains_cls = "off" if r.mains == "off" else ("ok" if r.mains == "on" else "muted")
        gaps = f"{r.open_gaps} ({r.missing} seq)" if r.open_gaps else "0"
        if r.lost:
            gaps += f", {r.lost} lost"
        lines.append(
            '<tr data-device="' + escape(r.device) + '"'
            + (' class="stale-row"' if v.stale else "") + ">"
            + _cell(link)
            + _cell(escape(r.deployment or "–"))
            + _cell(coords)
            + _cell(escape(r.mains or "–"), mains_cls)
            + _cell(online[0], online[1])
            + _cell(when(r.last_seen_ms))
            + _cell(age(v.age_s) + (" ⚠" if v.stale else ""), "num stale" if v.stale else "num")
            + _cell(str(r.samples_today), "num")
            + _cell(gaps, "num")
            + _cell(str(r.outages), "num")
            + _cell(when(r.last_outage_ms))
            + _cell(_num(h.get("cpu_temperature_c"), "{:.1f}"), "num")
            + _cell("yes" if h.get("throttled") else ("no" if "throttled" in h else "–"))
            + _cell(_num(h.get("disk_free_mb"), "{:.0f}"), "num")
            + _cell(_num(h.get("spool_depth"), "{:.0f}"), "num")
            + "</tr>"
        )  # fmt: skip
    summary = (
        f"{len(views)} devices · {stale_count} with no sample newer than "
        f"{stale_after_s / 60:g} min · as of {when(now_ms)}"
    )
    body = (
        "<h1>powerbridge fleet</h1>"
        f'<p class="muted" id="summary">{escape(summary)}</p>'
        '<nav><a href="/api/fleet">JSON</a><a href="/metrics">metrics</a></nav>'
        f'<table id="fleet"><thead>{head}</thead><tbody>{"".join(lines)}</tbody></table>'
    )
    return page("powerbridge fleet", body)


RANGES: Final = {"day": 86_400_000, "week": 7 * 86_400_000}


@dataclass(frozen=True, slots=True)
class DeviceData:
    device: str
    range_name: str
    start_ms: int
    end_ms: int
    points: list[Point]
    outages: list[OutageRow]
    recent_outages: list[OutageRow]
    deployments: list[DeploymentRow]
    gaps: list[GapRow]
    fleet: FleetView | None


def device_page(data: DeviceData) -> str:
    d = quote(data.device)
    other = "week" if data.range_name == "day" else "day"
    charts = "".join(
        f"<h2>{title} ({unit})</h2>"
        + chart(
            data.points, quantity, title=f"{data.device} {title}", unit=unit,
            start_ms=data.start_ms, end_ms=data.end_ms, outages=data.outages,
        )
        for quantity, title, unit in (("power_w", "power", "W"), ("voltage_v", "voltage", "V"))
    )  # fmt: skip
    deployments = "".join(
        f"<tr><td>{escape(x.name)}</td><td>{x.latitude:.4f}, {x.longitude:.4f}</td>"
        f"<td>{when(x.started_ms)}</td><td>{when(x.ended_ms) if x.ended_ms else 'active'}</td>"
        f"<td>{escape(x.software_version)}</td></tr>"
        for x in data.deployments
    )
    outages = "".join(
        f"<tr><td>{when(o.started_ms)}</td><td>{when(o.ended_ms)}</td>"
        f"<td class='num'>{_num(o.duration_s, '{:.1f}')}</td></tr>"
        for o in data.recent_outages
    )
    gaps = "".join(
        f"<tr><td class='num'>{g.first}–{g.last}</td><td class='num'>{g.last - g.first + 1}</td>"
        f"<td>{escape(g.status)}</td><td>{when(g.opened_ms)}</td>"
        f"<td class='num'>{g.requests}</td></tr>"
        for g in data.gaps
    )
    health = ""
    if data.fleet is not None:
        items = sorted(data.fleet.row.health.items())
        health = "".join(
            f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
            for k, v in items
            if not isinstance(v, dict)
        )
    start = when_iso(data.start_ms) or ""
    end = when_iso(data.end_ms) or ""
    body = (
        f"<nav><a href='/'>← fleet</a><a href='/device/{d}?range={other}'>{other}</a>"
        f"<a href='/api/device/{d}?range={data.range_name}'>JSON</a></nav>"
        f"<h1>{escape(data.device)}</h1>"
        f"<p class='muted'>{escape(data.range_name)}: {when(data.start_ms)} – "
        f"{when(data.end_ms)}; outages shaded</p>"
        f"{charts}"
        f"<h2>export</h2><form method='get' action='/device/{d}/export.csv'>"
        f"from <input name='from' value='{start}' size='26'> to "
        f"<input name='to' value='{end}' size='26'> <button>CSV</button></form>"
        f"<h2>deployments</h2><table id='deployments'><tr><th>name</th><th>coordinates</th>"
        f"<th>started</th><th>ended</th><th>version</th></tr>{deployments}</table>"
        f"<h2>outages</h2><table id='outages'><tr><th>started</th><th>ended</th>"
        f"<th>seconds</th></tr>{outages}</table>"
        f"<h2>gaps</h2><table id='gaps'><tr><th>seq</th><th>count</th><th>status</th>"
        f"<th>opened</th><th>requests</th></tr>{gaps}</table>"
        f"<h2>health</h2><table id='health'>{health}</table>"
    )
    return page(f"{data.device} · powerbridge", body)
