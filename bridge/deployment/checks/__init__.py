"""Health checks: does this bridge work, here, now?  Run before leaving a site.

Each check returns a :class:`CheckResult` — ``pass``, ``fail`` (with what is
wrong and how to fix it) or ``skip`` (only for a reason the operator can see:
nothing to check in this configuration, or ``--skip NAME``).  A check that
cannot tell fails: "unknown" is never reported as healthy, and an unexpected
exception inside a check is a failure of that check, not a crash.

The checks, in order: ``config``, ``meter``, ``mains``, ``broker``, ``data_dir``,
``clock``, ``service``.  When the bridge's service is already running, the meter
and the mains pin belong to it: they are then judged from what the service
publishes (the age of its newest reading, its announced mains state) instead of
being opened a second time.

One module per subject: :mod:`.host` (``config``, ``data_dir``, ``clock``),
:mod:`.hardware` (``meter``, ``mains``), :mod:`.broker` and :mod:`.service`;
:mod:`._base` holds the verdict, the context and :func:`~._base.read_published`,
the one reader of the running service's retained topics.  This package runs them
in order and sums them up in a :class:`Report`; every public name is importable
from ``bridge.deployment.checks``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from bridge.deployment.checks._base import (
    CHECK_NAMES,
    CHECK_TITLES,
    CheckContext,
    CheckFunction,
    CheckResult,
    Outcome,
    fail,
    skipped,
)
from bridge.deployment.checks.broker import check_broker
from bridge.deployment.checks.hardware import check_mains, check_meter, describe_reading
from bridge.deployment.checks.host import check_clock, check_config, check_data_dir
from bridge.deployment.checks.service import check_service

__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "CHECK_TITLES",
    "CheckContext",
    "CheckFunction",
    "CheckResult",
    "Outcome",
    "Report",
    "check_broker",
    "check_clock",
    "check_config",
    "check_data_dir",
    "check_mains",
    "check_meter",
    "check_service",
    "describe_reading",
    "run_checks",
    "validate_names",
]

log = logging.getLogger(__name__)

CHECKS: Final[dict[str, CheckFunction]] = {
    "config": check_config,
    "meter": check_meter,
    "mains": check_mains,
    "broker": check_broker,
    "data_dir": check_data_dir,
    "clock": check_clock,
    "service": check_service,
}


@dataclass(frozen=True, slots=True)
class Report:
    results: tuple[CheckResult, ...]

    @property
    def failed(self) -> list[CheckResult]:
        """Checks that ran and failed."""
        return [r for r in self.results if r.outcome is Outcome.FAIL and not r.data.get("not_run")]

    @property
    def not_run(self) -> list[CheckResult]:
        """Checks that could not run (the configuration is invalid): failures too."""
        return [r for r in self.results if r.data.get("not_run")]

    @property
    def skipped(self) -> list[CheckResult]:
        return [r for r in self.results if r.outcome is Outcome.SKIP]

    @property
    def ok(self) -> bool:
        """True only when nothing failed, everything ran, and at least one check passed."""
        return (
            not self.failed
            and not self.not_run
            and any(r.outcome is Outcome.PASS for r in self.results)
        )

    def summary(self) -> str:
        """``Health checks passed`` only when :attr:`ok`; otherwise ``N checks failed``."""
        notes = []
        if self.not_run:
            notes.append(f"{len(self.not_run)} not run")
        if self.skipped:
            notes.append(f"{len(self.skipped)} skipped")
        extra = f" ({', '.join(notes)})" if notes else ""
        if self.ok:
            return f"Health checks passed{extra}"
        failed = len(self.failed)
        if failed == 0:
            return f"No health check could pass{extra}"
        noun = "check" if failed == 1 else "checks"
        return f"{failed} {noun} failed{extra}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": 1,
            "ok": self.ok,
            "summary": self.summary(),
            "failed": len(self.failed),
            "not_run": len(self.not_run),
            "skipped": len(self.skipped),
            "checks": [r.to_dict() for r in self.results],
        }


def run_checks(
    ctx: CheckContext,
    names: Sequence[str] = CHECK_NAMES,
    *,
    on_result: Callable[[CheckResult], None] | None = None,
) -> Report:
    """Run ``names`` in order; later checks fail as "not run" when the configuration is bad."""
    results: list[CheckResult] = []

    def emit(result: CheckResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    if ctx.config is None and "config" not in names:
        names = ("config", *names)
    for name in names:
        if name in ctx.skip and name != "config":
            emit(skipped(name, f"skipped on request (--skip {name})", requested=True))
            continue
        if name != "config" and ctx.config is None:
            emit(
                fail(
                    name,
                    "not run: the configuration is not valid",
                    "fix the configuration first",
                    not_run=True,
                )
            )
            continue
        emit(_run_one(name, ctx))
    return Report(tuple(results))


def _run_one(name: str, ctx: CheckContext) -> CheckResult:
    try:
        return CHECKS[name](ctx)
    except Exception as exc:  # a crashing check is a failed check, never a crash
        log.debug("check %s raised", name, exc_info=True)
        return fail(
            name,
            f"the check itself failed: {type(exc).__name__}: {exc}",
            "run with -vv for details and report it",
        )


def validate_names(names: Iterable[str]) -> list[str]:
    """Unknown check names, for the command line."""
    return [n for n in names if n not in CHECK_TITLES]
