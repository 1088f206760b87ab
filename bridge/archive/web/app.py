"""The management view as a Starlette application (served by uvicorn, :mod:`.server`).

Routes: ``/`` (fleet table), ``/device/{id}`` (charts, outages, deployments, gaps,
health; ``?range=day|week``, ``&end=`` an ISO time), ``/device/{id}/export.csv``
(``?from=&to=``), ``/api/fleet`` and ``/api/device/{id}`` (JSON), ``/metrics``
(Prometheus) and ``/healthz``.  Endpoints are plain functions: Starlette runs them
in its thread pool, each thread with its own database connection.

With ``http.username`` set, every route but ``/healthz`` asks for HTTP Basic
credentials (compared in constant time).
"""

from __future__ import annotations

import base64
import binascii
import csv
import hmac
import io
from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from bridge.archive.ingest import Figures
from bridge.archive.metrics import registry
from bridge.archive.records import QUANTITIES
from bridge.archive.store import SqlStore
from bridge.archive.web.pages import (
    RANGES,
    DeviceData,
    device_page,
    fleet_page,
    fleet_views,
    when_iso,
)
from bridge.clock import parse_utc
from bridge.mqtt.contract import DEVICE_ID_RE

CHART_BUCKETS: Final = 600
"""Points per chart: a day of 1 Hz samples becomes 600 buckets of 144 s."""


class BasicAuth(BaseHTTPMiddleware):
    def __init__(self, app: Any, username: str, password: str) -> None:
        super().__init__(app)
        self._expected = f"{username}:{password}".encode()

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path == "/healthz":
            return await call_next(request)
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        try:
            given = base64.b64decode(value, validate=True) if scheme.lower() == "basic" else b""
        except (binascii.Error, ValueError):
            given = b""
        if not hmac.compare_digest(given, self._expected):
            return PlainTextResponse(
                "authentication required",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="powerbridge archive"'},
            )
        return await call_next(request)


def _ms(text: str | None, default: int) -> int:
    if not text:
        return default
    try:
        return int(parse_utc(text).timestamp() * 1000)
    except ValueError:
        return default


def create_app(
    store: SqlStore,
    figures: Figures,
    now_ms: Callable[[], int],
    *,
    stale_after_s: float = 360.0,
    username: str | None = None,
    password: str | None = None,
    backlog: Callable[[], int] = lambda: 0,
) -> Starlette:
    """The application; ``now_ms`` is the archive's clock (tests freeze it)."""
    metrics = registry(store, figures, now_ms, backlog)

    def views() -> tuple[int, Any]:
        now = now_ms()
        return now, fleet_views(store.fleet(now), now, stale_after_s)

    def fleet(_request: Request) -> Response:
        now, rows = views()
        return HTMLResponse(fleet_page(rows, now, stale_after_s))

    def api_fleet(_request: Request) -> Response:
        now, rows = views()
        return JSONResponse(
            {"now": when_iso(now), "stale_after_s": stale_after_s,
             "devices": [v.to_dict() for v in rows]}
        )  # fmt: skip

    def device_data(request: Request) -> DeviceData | None:
        device = request.path_params["device"]
        if not DEVICE_ID_RE.fullmatch(device):
            return None
        now, rows = views()
        match = next((v for v in rows if v.row.device == device), None)
        if match is None:
            return None
        range_name = request.query_params.get("range", "day")
        span = RANGES.get(range_name)
        if span is None:
            range_name, span = "day", RANGES["day"]
        end = _ms(request.query_params.get("end"), now)
        start = end - span
        return DeviceData(
            device=device, range_name=range_name, start_ms=start, end_ms=end,
            points=store.series(device, start, end, CHART_BUCKETS),
            outages=store.outages(device, start, end),
            recent_outages=store.all_outages(device),
            deployments=store.deployments(device), gaps=store.gaps(device), fleet=match,
        )  # fmt: skip

    def device(request: Request) -> Response:
        data = device_data(request)
        if data is None:
            return PlainTextResponse("no such device", status_code=404)
        return HTMLResponse(device_page(data))

    def api_device(request: Request) -> Response:
        data = device_data(request)
        if data is None:
            return JSONResponse({"error": "no such device"}, status_code=404)
        return JSONResponse(
            {
                "device": data.device,
                "range": data.range_name,
                "start": when_iso(data.start_ms),
                "end": when_iso(data.end_ms),
                "fleet": data.fleet.to_dict() if data.fleet else None,
                "series": [
                    {"ts": when_iso(p.ts_ms), **{
                        q: None if v is None else {"mean": v[0], "min": v[1], "max": v[2]}
                        for q, v in p.values.items()
                    }}
                    for p in data.points
                ],
                "outages": [
                    {"started": when_iso(o.started_ms), "ended": when_iso(o.ended_ms),
                     "duration_s": o.duration_s}
                    for o in data.outages
                ],
                "deployments": [
                    {"name": x.name, "latitude": x.latitude, "longitude": x.longitude,
                     "started": when_iso(x.started_ms), "ended": when_iso(x.ended_ms)}
                    for x in data.deployments
                ],
                "gaps": [
                    {"first": g.first, "last": g.last, "status": g.status,
                     "opened": when_iso(g.opened_ms), "requests": g.requests}
                    for g in data.gaps
                ],
            }
        )  # fmt: skip

    def export(request: Request) -> Response:
        device = request.path_params["device"]
        if not DEVICE_ID_RE.fullmatch(device):
            return PlainTextResponse("no such device", status_code=404)
        now = now_ms()
        end = _ms(request.query_params.get("to"), now)
        start = _ms(request.query_params.get("from"), end - RANGES["day"])
        return StreamingResponse(
            csv_lines(store, device, start, end),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{device}.csv"',
            },
        )

    def prometheus(_request: Request) -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    middleware = []
    if username and password:
        middleware.append(Middleware(BasicAuth, username=username, password=password))
    return Starlette(
        routes=[
            Route("/", fleet),
            Route("/api/fleet", api_fleet),
            Route("/device/{device}", device),
            Route("/device/{device}/export.csv", export),
            Route("/api/device/{device}", api_device),
            Route("/metrics", prometheus),
            Route("/healthz", healthz),
        ],
        middleware=middleware,
    )


CSV_HEADER: Final = ("seq", "time", "channel", *QUANTITIES)


def csv_lines(store: SqlStore, device: str, start_ms: int, end_ms: int) -> Iterator[str]:
    """A device's samples in ``[start, end)`` as CSV (header first), one chunk at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for count, row in enumerate(store.export(device, start_ms, end_ms), start=1):
        writer.writerow(
            (row[0], when_iso(row[1]), row[2], *("" if v is None else v for v in row[3:]))
        )
        if count % 2000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
