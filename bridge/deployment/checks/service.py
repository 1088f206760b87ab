"""The service check: is ``powerbridge.service`` installed, enabled and running?"""

from __future__ import annotations

from bridge.deployment import systemd
from bridge.deployment.checks._base import CheckContext, CheckResult, fail, passed


def check_service(ctx: CheckContext) -> CheckResult:
    if ctx.offline:
        return _check_service_offline(ctx)
    return _check_service_online(ctx)


def _check_service_offline(ctx: CheckContext) -> CheckResult:
    """``--root``: the unit file and the ``multi-user.target.wants`` link under the prefix."""
    unit = systemd.UNIT_NAME
    found = systemd.installed_unit(ctx.root)
    if found is None:
        return fail(
            "service",
            f"{unit} is not installed under {ctx.root}",
            f"`powerbridge deployment start --root {ctx.root}` installs it",
        )
    if not systemd.enabled_offline(ctx.root):
        return fail(
            "service",
            f"{unit} is installed under {ctx.root} but not enabled",
            f"`powerbridge deployment start --root {ctx.root}` enables it",
        )
    return passed(
        "service",
        f"{unit} installed and enabled under {ctx.root} (--root: whether it runs is not known)",
        unit_file=str(found),
    )


def _check_service_online(ctx: CheckContext) -> CheckResult:
    unit = systemd.UNIT_NAME
    if not ctx.host.systemd_running:
        return fail(
            "service",
            "systemd is not running on this machine: nothing starts the bridge at boot",
            "run the bridge on a systemd host, or pass --skip service when something else "
            "(a container, a supervisor) starts `powerbridge run`",
        )
    enabled = ctx.host.enabled_state()
    if enabled == "not-found":
        return fail(
            "service",
            f"{unit} is not installed",
            "`sudo powerbridge deployment start` installs, enables and starts it",
        )
    active = ctx.service_state()
    if enabled != "enabled":
        return fail(
            "service",
            f"{unit} is installed but {enabled} (and {active}): it will not start at boot",
            f"`sudo systemctl enable --now {unit}`",
            enabled=enabled,
            active=active,
        )
    if active != "active":
        return fail(
            "service",
            f"{unit} is enabled but {active}",
            f"see why: `journalctl -u {unit} -n 50`; then `sudo systemctl restart {unit}`",
            enabled=enabled,
            active=active,
        )
    return passed("service", f"{unit} is enabled and running", enabled=enabled, active=active)
