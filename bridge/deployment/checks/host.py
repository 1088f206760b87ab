"""The host's part: the configuration file, the data directory and the clock."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from bridge import identity
from bridge.config import load_bridge_config
from bridge.deployment.checks._base import CheckContext, CheckResult, fail, passed
from bridge.errors import ConfigError

MIN_WALL_CLOCK: Final = datetime(2025, 1, 1, tzinfo=UTC)
"""A wall clock before this was never set (a Pi without RTC boots in the past)."""

# --------------------------------------------------------------------------- config


def check_config(ctx: CheckContext) -> CheckResult:
    path = ctx.config_path
    try:
        config = load_bridge_config(path)
    except ConfigError as exc:
        first = exc.problems[0]
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        if path.is_file() and not os.access(path, os.R_OK):
            fix = (
                f"{path} belongs to root and the powerbridge group: run the check with sudo, "
                "or join the group (`sudo usermod -aG powerbridge $USER`, then log in again)"
            )
        elif path.exists():
            fix = f"edit {path}, then `powerbridge config check {path}` lists every problem"
        else:
            fix = f"write one: `powerbridge config init {path}`"
        return fail("config", f"{first}{more}", fix, problems=[str(p) for p in exc.problems])
    ctx.config = config
    ctx.device_id, source = identity.identify(config.device.id)
    return passed(
        "config",
        f"{path} is valid; device id {ctx.did} (from {identity.SOURCE_TITLES[source]})",
        path=str(path),
        device_id=ctx.device_id,
        device_id_source=source,
    )


# --------------------------------------------------------------------------- data directory


def _existing_ancestor(path: Path) -> Path:
    current = path
    while not current.exists() and current.parent != current:
        current = current.parent
    return current


def check_data_dir(ctx: CheckContext) -> CheckResult:
    path = ctx.data_dir
    need_mb = ctx.cfg.health.min_free_disk_mb
    exists = path.is_dir()
    if path.exists() and not exists:
        return fail("data_dir", f"{path} is not a directory", "set device.data_dir to a directory")
    probe_dir = path if exists else _existing_ancestor(path)
    try:
        usage = shutil.disk_usage(probe_dir)
    except OSError as exc:
        return fail(
            "data_dir", f"cannot measure free space at {probe_dir}: {exc}", "check the disk"
        )
    free_mb = usage.free / 1_048_576
    if exists:
        try:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".powerbridge-check-") as handle:
                handle.write(b"powerbridge check\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            as_user = hasattr(os, "geteuid") and os.geteuid() != 0
            return fail(
                "data_dir",
                f"{path} is not writable: {exc.strerror or exc}",
                "run the check as root (`sudo powerbridge check`): the directory belongs to the "
                "service user"
                if as_user and isinstance(exc, PermissionError)
                else "the service's StateDirectory=powerbridge owns /var/lib/powerbridge; for "
                "another device.data_dir, make it writable by user powerbridge",
                free_mb=round(free_mb, 1),
            )
        where = f"{path} is writable"
    else:
        if not os.access(probe_dir, os.W_OK):
            return fail(
                "data_dir",
                f"{path} does not exist and {probe_dir} is not writable by this user",
                "run as root (sudo), or create the directory: `sudo install -d "
                f"-o powerbridge {path}`",
            )
        where = f"{path} does not exist yet; it will be created in {probe_dir}"
    if free_mb < need_mb:
        return fail(
            "data_dir",
            f"{where}, but only {free_mb:.0f} MB are free (health.min_free_disk_mb: {need_mb:g})",
            "free space on that file system (`du -xh / | sort -h | tail`), or use a larger card",
            free_mb=round(free_mb, 1),
        )
    return passed("data_dir", f"{where}; {free_mb:,.0f} MB free", free_mb=round(free_mb, 1))


# --------------------------------------------------------------------------- clock


def check_clock(ctx: CheckContext) -> CheckResult:
    now = ctx.clock.utcnow()
    if now < MIN_WALL_CLOCK:
        return fail(
            "clock",
            f"the clock says {now:%Y-%m-%d %H:%M} UTC: it was never set",
            "connect the bridge to a network with an NTP server (UDP 123) and enable time "
            "synchronisation: `sudo timedatectl set-ntp true`",
            now=now.isoformat(),
        )
    synced = ctx.clock_probe()
    if synced is None:
        return fail(
            "clock",
            "cannot tell whether the clock is synchronised on this system",
            "check it by hand (`timedatectl`), then pass --skip clock",
        )
    if not synced:
        return fail(
            "clock",
            f"the clock ({now:%Y-%m-%d %H:%M} UTC) is not synchronised",
            "enable time synchronisation (`sudo timedatectl set-ntp true`), make sure an NTP "
            "server is reachable (UDP 123), then watch `timedatectl timesync-status`",
            synchronised=False,
        )
    return passed("clock", f"synchronised ({now:%Y-%m-%d %H:%M:%S} UTC)", synchronised=True)
