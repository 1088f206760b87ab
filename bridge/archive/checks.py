"""``powerbridge archive check``: does this archive work, here and now?

The same verdicts as ``powerbridge check`` (:class:`~bridge.deployment.checks.CheckResult`,
``pass``/``fail``/``skip``, a fix line with every failure, one :class:`Report`):

* ``config``   the archive's configuration file is valid;
* ``database`` the database answers and its tables exist (made if missing);
* ``broker``   the broker accepts the ``archiver`` credentials (a separate, clean
  session: the service's persistent one is left alone);
* ``http``     the management view's address is free, or the running service answers there;
* ``fleet``    every known device's newest archived sample is younger than
  ``http.stale_after``, and no gap has been given up as lost.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bridge.archive.config import ArchiveConfig, load
from bridge.archive.records import epoch_ms
from bridge.archive.store import open_store
from bridge.clock import Clock, SystemClock
from bridge.deployment.checks import CheckResult, Outcome, Report
from bridge.errors import ConfigError
from bridge.mqtt.session import BrokerProblemError, MqttSession

TITLES: Final = {
    "config": "configuration",
    "database": "database",
    "broker": "broker",
    "http": "management view",
    "fleet": "fleet",
}


def _result(key: str, outcome: Outcome, detail: str, fix: str | None = None) -> CheckResult:
    return CheckResult(key, TITLES[key], outcome, detail, fix)


def _pass(key: str, detail: str) -> CheckResult:
    return _result(key, Outcome.PASS, detail)


def _fail(key: str, detail: str, fix: str) -> CheckResult:
    return _result(key, Outcome.FAIL, detail, fix)


@dataclass
class ArchiveCheckContext:
    config_path: Path
    clock: Clock
    broker_timeout: float = 5.0
    config: ArchiveConfig | None = None


def check_config(ctx: ArchiveCheckContext) -> CheckResult:
    try:
        ctx.config = load(ctx.config_path)
    except ConfigError as exc:
        first = str(exc.problems[0]) if exc.problems else str(exc)
        return _fail("config", first, f"correct {ctx.config_path} (every problem: `-v`)")
    return _pass("config", f"{ctx.config_path} is valid")


def check_database(ctx: ArchiveCheckContext) -> CheckResult:
    assert ctx.config is not None  # noqa: S101 - run_archive_checks stops after a bad config
    store = open_store(ctx.config.archive.database)
    try:
        store.create_schema()
        devices = len(store.devices())
        samples = store.sample_count()
    except Exception as exc:  # noqa: BLE001 - any database failure is this check's verdict
        return _fail(
            "database",
            f"{store.describe()}: {exc.__class__.__name__}: {str(exc).strip()[:200]}",
            "start the database, or correct archive.database (user, password, host, path)",
        )
    finally:
        store.close()
    return _pass("database", f"{store.describe()}: {samples} samples of {devices} devices")


def check_broker(ctx: ArchiveCheckContext) -> CheckResult:
    assert ctx.config is not None  # noqa: S101
    config = ctx.config
    session = MqttSession(config.mqtt, username=config.username, purpose="archive-check")
    try:
        with session.connect(ctx.broker_timeout):
            pass
    except BrokerProblemError as exc:
        return _fail("broker", str(exc), exc.fix)
    return _pass("broker", f"{session.where} accepts {config.username}")


def check_http(ctx: ArchiveCheckContext) -> CheckResult:
    assert ctx.config is not None  # noqa: S101
    http = ctx.config.http
    if not http.enabled:
        return _result("http", Outcome.SKIP, "http.enabled is false")
    url = f"http://{http.host}:{http.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            if reply.status == 200:
                return _pass(
                    "http", f"the running archive answers at http://{http.host}:{http.port}/"
                )
    except OSError:
        pass
    family = socket.AF_INET6 if ":" in http.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((http.host, http.port))
        except OSError as exc:
            return _fail(
                "http",
                f"{http.host}:{http.port} is taken by another program ({exc.strerror})",
                "choose another http.port",
            )
    return _pass("http", f"{http.host}:{http.port} is free (the archive is not running)")


def check_fleet(ctx: ArchiveCheckContext) -> CheckResult:
    assert ctx.config is not None  # noqa: S101
    store = open_store(ctx.config.archive.database)
    now = epoch_ms(ctx.clock.utcnow())
    try:
        rows = store.fleet(now)
    except Exception as exc:  # noqa: BLE001 - reported by the database check already
        return _fail("fleet", f"cannot read the fleet: {exc.__class__.__name__}", "see database")
    finally:
        store.close()
    if not rows:
        return _result("fleet", Outcome.SKIP, "no device has sent anything yet")
    limit = ctx.config.http.stale_after
    stale = [
        r.device
        for r in rows
        if r.newest_sample_ms is None or (now - r.newest_sample_ms) / 1000 > limit
    ]
    lost = sum(r.lost for r in rows)
    missing = sum(r.missing for r in rows)
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        return _fail(
            "fleet",
            f"{len(stale)} of {len(rows)} devices have no sample newer than {limit / 60:g} min: "
            f"{shown}",
            "see those bridges' `powerbridge check` and the view's fleet table",
        )
    if lost:
        return _fail(
            "fleet",
            f"{lost} gaps were given up as lost (older than the bridges keep samples)",
            "see the devices' gap tables; lost gaps stay recorded",
        )
    return _pass(
        "fleet",
        f"{len(rows)} devices, newest samples younger than {limit / 60:g} min; "
        f"{missing} sequence numbers still on their way",
    )


CHECKS: Final[dict[str, Callable[[ArchiveCheckContext], CheckResult]]] = {
    "config": check_config,
    "database": check_database,
    "broker": check_broker,
    "http": check_http,
    "fleet": check_fleet,
}


def run_archive_checks(
    config_path: Path,
    *,
    clock: Clock | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> Report:
    ctx = ArchiveCheckContext(config_path, clock or SystemClock())
    results: list[CheckResult] = []
    for key, check in CHECKS.items():
        if key != "config" and ctx.config is None:
            result = CheckResult(
                key, TITLES[key], Outcome.FAIL, "not run: the configuration is invalid",
                "correct the configuration first", {"not_run": True},
            )  # fmt: skip
        else:
            result = check(ctx)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return Report(tuple(results))
