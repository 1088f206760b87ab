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
"""

from __future__ import annotations

import enum
import logging
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bridge import identity
from bridge.clock import Clock, SystemClock, kernel_clock_synchronised
from bridge.config import BridgeConfig, load_bridge_config
from bridge.deployment import systemd
from bridge.errors import ConfigError, MeterError, MeterTimeoutError, PayloadError
from bridge.model import MainsState, Reading
from bridge.mqtt.contract import BridgeTopics, MainsPayload, StatePayload
from bridge.mqtt.session import BrokerProblemError, BrokerSession

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict.  ``fix`` is set on every failure."""

    key: str
    title: str
    outcome: Outcome
    detail: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.key,
            "title": self.title,
            "status": self.outcome.value,
            "detail": self.detail,
            "fix": self.fix,
            "data": self.data,
        }


CHECK_TITLES: Final = {
    "config": "configuration",
    "meter": "meter",
    "mains": "mains pin",
    "broker": "broker",
    "data_dir": "data directory",
    "clock": "clock",
    "service": "service",
}
CHECK_NAMES: Final = tuple(CHECK_TITLES)

MIN_WALL_CLOCK: Final = datetime(2025, 1, 1, tzinfo=UTC)
"""A wall clock before this was never set (a Pi without RTC boots in the past)."""


@dataclass
class CheckContext:
    """What the checks share: where the configuration is, the host, the clocks."""

    config_path: Path
    root: Path = Path("/")
    skip: frozenset[str] = frozenset()
    host: systemd.Host = field(default_factory=systemd.Host)
    clock: Clock = field(default_factory=SystemClock)
    clock_probe: Callable[[], bool | None] = kernel_clock_synchronised
    broker_timeout: float = 5.0
    config: BridgeConfig | None = None
    device_id: str | None = None
    _service_state: str | None = None

    @property
    def offline(self) -> bool:
        """True with ``--root``: installed files are inspected, systemctl is not asked."""
        return self.root.resolve() != Path("/")

    @property
    def cfg(self) -> BridgeConfig:
        """The loaded configuration (only the ``config`` check runs without it)."""
        if self.config is None:
            raise RuntimeError("the configuration has not been loaded")
        return self.config

    @property
    def did(self) -> str:
        """The device id (set by the ``config`` check)."""
        if self.device_id is None:
            raise RuntimeError("the device id is not known before the configuration is loaded")
        return self.device_id

    @property
    def data_dir(self) -> Path:
        return systemd.under(self.root, self.cfg.device.data_dir)

    def service_state(self) -> str:
        """``systemctl is-active`` of the bridge's unit (``unknown`` offline/without systemd)."""
        if self._service_state is None:
            if self.offline or not self.host.systemd_running:
                self._service_state = "unknown"
            else:
                self._service_state = self.host.active_state()
        return self._service_state

    def service_running(self) -> bool:
        return self.service_state() in ("active", "reloading", "deactivating")


CheckFunction = Callable[[CheckContext], CheckResult]


def _result(
    key: str, outcome: Outcome, detail: str, fix: str | None = None, **data: Any
) -> CheckResult:
    return CheckResult(key, CHECK_TITLES[key], outcome, detail, fix, dict(data))


def _fail(key: str, detail: str, fix: str, **data: Any) -> CheckResult:
    return _result(key, Outcome.FAIL, detail, fix, **data)


def _pass(key: str, detail: str, **data: Any) -> CheckResult:
    return _result(key, Outcome.PASS, detail, **data)


def _skip(key: str, detail: str, **data: Any) -> CheckResult:
    return _result(key, Outcome.SKIP, detail, **data)


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
        return _fail("config", f"{first}{more}", fix, problems=[str(p) for p in exc.problems])
    ctx.config = config
    ctx.device_id, source = identity.identify(config.device.id)
    return _pass(
        "config",
        f"{path} is valid; device id {ctx.did} (from {identity.SOURCE_TITLES[source]})",
        path=str(path),
        device_id=ctx.device_id,
        device_id_source=source,
    )


# --------------------------------------------------------------------------- meter


def describe_reading(reading: Reading) -> str:
    """``230.1 V, 0.521 A, 119.8 W, 50.0 Hz, PF 0.99, 15.230 kWh``."""
    parts: list[str] = []
    for value, fmt in (
        (reading.voltage_v, "{:.1f} V"),
        (reading.current_a, "{:.3f} A"),
        (reading.power_w, "{:.1f} W"),
        (reading.frequency_hz, "{:.2f} Hz"),
        (reading.power_factor, "PF {:.2f}"),
    ):
        if value is not None:
            parts.append(fmt.format(value))
    if reading.energy_wh is not None:
        parts.append(f"{reading.energy_wh / 1000:.3f} kWh")
    return ", ".join(parts) or "a reply with no quantities"


def _reading_data(reading: Reading) -> dict[str, Any]:
    keys = ("voltage_v", "current_a", "power_w", "frequency_hz", "power_factor", "energy_wh")
    return {"channel": reading.channel, **{k: getattr(reading, k) for k in keys}}


def _serial_candidates() -> list[str]:
    by_id = Path("/dev/serial/by-id")
    try:
        return sorted(str(p) for p in by_id.iterdir())
    except OSError:
        return []


def _read_meter(ctx: CheckContext, port: str, meter_type: str) -> list[Reading]:
    """Open the meter on ``port``, read every configured channel, close it."""
    from bridge.meters import create_driver

    cfg = ctx.cfg.meter
    driver = create_driver(
        meter_type, port, baud=cfg.baud, address=cfg.address, timeout=cfg.timeout
    )
    readings: list[Reading] = []
    with driver:
        for channel in cfg.channels if meter_type == "mcp39f511n" else (1,):
            for attempt in range(2):  # the first frame after opening a port may be cut
                try:
                    readings.append(driver.read(channel))
                    break
                except MeterTimeoutError:
                    if attempt == 1:
                        raise
    return readings


def check_meter(ctx: CheckContext) -> CheckResult:
    cfg = ctx.cfg.meter
    if cfg.type == "none":
        return _skip("meter", "no meter configured (meter.type: none)")
    if ctx.service_running():
        return _judge_published_state(ctx)
    if cfg.type == "simulated":
        return _check_simulated_meter(ctx)
    port = cfg.port or ""
    if not Path(port).exists() and port == systemd.POWERMETER_LINK:
        stand_in = _powermeter_stand_in(ctx, cfg.type)
        if stand_in is not None:
            return _read_and_judge(ctx, stand_in, cfg.type, via=port)
    if not Path(port).exists():
        candidates = _serial_candidates()
        hint = (
            f"ports present: {', '.join(candidates)}"
            if candidates
            else "no USB serial port is present at all"
        )
        return _fail(
            "meter",
            f"meter port {port} does not exist",
            f"plug the meter in and set meter.port ({hint}); /dev/powermeter appears once the "
            "udev rules are installed (`powerbridge deployment start` installs them)",
            port=port,
        )
    return _read_and_judge(ctx, port, cfg.type)


def _powermeter_stand_in(ctx: CheckContext, meter_type: str) -> str | None:
    """The one adapter ``/dev/powermeter`` will point at, while the udev rules are not installed.

    Before the first deployment the link does not exist yet: the rules that create
    it are installed by ``deployment start``.  If exactly one present adapter matches
    those rules (and fits the meter type), the meter is checked through it.
    """
    rules = systemd.under(ctx.root, systemd.UDEV_DIR / systemd.METER_RULES)
    if rules.exists():
        return None  # the rules are in place: a missing link means a missing adapter
    from bridge.meters.ports import list_ports

    known = systemd.meter_usb_ids()
    matching = [
        p
        for p in list_ports()
        if p.vid_pid is not None
        and p.vid_pid.lower() in known
        and (not p.fits or meter_type in p.fits)
    ]
    return matching[0].device if len(matching) == 1 else None


def _read_and_judge(
    ctx: CheckContext, port: str, meter_type: str, via: str | None = None
) -> CheckResult:
    try:
        readings = _read_meter(ctx, port, meter_type)
    except MeterError as exc:
        return _fail(
            "meter",
            f"{meter_type} on {port}: {exc}",
            _meter_fix(exc, meter_type),
            port=port,
            error=type(exc).__name__,
        )
    shown = "; ".join(
        (f"ch{r.channel}: " if len(readings) > 1 else "") + describe_reading(r) for r in readings
    )
    note = (
        f" ({via} will point here once `deployment start` installs the udev rules)" if via else ""
    )
    return _pass(
        "meter",
        f"{meter_type} on {port} answers: {shown}{note}",
        port=port,
        readings=[_reading_data(r) for r in readings],
    )


def _meter_fix(exc: MeterError, meter_type: str) -> str:
    from bridge.errors import MeterDisconnectedError, MeterProtocolError

    if isinstance(exc, MeterDisconnectedError):
        return (
            "check that the port is the meter's and that this user may open it (group dialout); "
            "is another program using it?"
        )
    if isinstance(exc, MeterProtocolError):
        return (
            f"the reply is not a valid {meter_type} frame: check meter.type, meter.baud and "
            "meter.address (`powerbridge meter probe` tries the usual settings)"
        )
    return (
        "check the wiring (TX/RX crossed, RS-485 A/B), that the meter is powered, and meter.baud "
        "and meter.address (`powerbridge meter probe` tries the usual settings)"
    )


def _check_simulated_meter(ctx: CheckContext) -> CheckResult:
    """The wire-level simulator behind a pseudo-terminal, read by the real driver.

    The same path the daemon takes for ``meter.type: simulated``: the bytes cross a
    pty, so the driver, its framing and its CRC checks are exercised.
    """
    from bridge.meters.simulator import SimulatedMeter

    cfg = ctx.cfg
    sim = cfg.simulation
    try:
        with SimulatedMeter(
            sim.meter_protocol,
            baud=cfg.meter.baud,
            address=cfg.meter.address,
            voltage_v=sim.voltage_v,
            load_w=sim.load_w,
            noise=sim.noise,
        ) as meter:
            readings = _read_meter(ctx, meter.port, sim.meter_protocol)
    except MeterError as exc:
        return _fail(
            "meter",
            f"simulated {sim.meter_protocol} meter: {exc}",
            "the simulator did not answer its own driver: report this as a bug",
        )
    return _pass(
        "meter",
        f"simulated {sim.meter_protocol} meter answers: {describe_reading(readings[0])}",
        simulated=True,
        readings=[_reading_data(r) for r in readings],
    )


def _from_service(
    ctx: CheckContext, name: str, *, topic: str, owned: str, missing: str, fix: str
) -> bytes | CheckResult:
    """The running service's retained message on ``topic``, or the failed check saying why not.

    While the service runs it owns the meter and the pin; the checks judge them by
    what it publishes instead of opening them a second time.
    """
    try:
        with BrokerSession(ctx.cfg, ctx.did).connect(ctx.broker_timeout) as session:
            found = session.retained([topic], wait=1.0)
    except BrokerProblemError as exc:
        return _fail(
            name, f"the service is running and owns {owned} cannot be seen: {exc}", exc.fix
        )
    raw = found.get(topic)
    return _fail(name, missing, fix) if raw is None else raw


def _judge_published_state(ctx: CheckContext) -> CheckResult:
    """The service owns the port: judge the meter by the age of its newest reading."""
    raw = _from_service(
        ctx,
        "meter",
        topic=BridgeTopics(ctx.cfg.mqtt.base_topic, ctx.did).state,
        owned="the meter; its readings",
        missing="the service is running but has published no reading yet",
        fix="see `journalctl -u powerbridge` for meter errors",
    )
    if isinstance(raw, CheckResult):
        return raw
    try:
        reading = StatePayload.decode(raw)
        age = (ctx.clock.utcnow() - reading.ts).total_seconds()
    except PayloadError as exc:
        return _fail("meter", f"the service's newest reading is unreadable: {exc}", "report this")
    allowed = max(3 * ctx.cfg.meter.interval, 10.0)
    if age > allowed:
        return _fail(
            "meter",
            f"the service's newest reading is {age:.0f} s old (more than {allowed:.0f} s)",
            "the meter stopped answering the service: see `journalctl -u powerbridge`, check "
            "the cable and the meter's supply",
            age_s=round(age, 1),
        )
    values = {
        k: v
        for k, v in reading.values.items()
        if isinstance(v, int | float) and k.endswith(("_v", "_w"))
    }
    shown = ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
    return _pass(
        "meter",
        f"read by the running service, {age:.1f} s ago: {shown}",
        age_s=round(age, 1),
        from_service=True,
    )


# --------------------------------------------------------------------------- mains


def check_mains(ctx: CheckContext) -> CheckResult:
    cfg = ctx.cfg.mains
    simulation = ctx.cfg.simulation.enabled
    if cfg.source == "meter" and not simulation:
        return _skip("mains", "mains.source is meter: no pin is used")
    if ctx.service_running():
        return _judge_published_mains(ctx)
    from bridge.mains import MainsSensor
    from bridge.outages import OutageStore

    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    try:
        sensor = MainsSensor(
            cfg, OutageStore(conn, boot_id=""), on_event=lambda _e: None, simulation=simulation
        )
        try:
            sensor.start()
            level = sensor.pin_level
        finally:
            sensor.close()
    except Exception as exc:  # noqa: BLE001 - any failure to read the pin is this check's verdict
        return _fail(
            "mains",
            f"GPIO{cfg.pin} cannot be read: {exc}",
            "run on the Raspberry Pi with the lgpio backend (`pip install powerbridge[pi]`), "
            "as a user in group gpio; or set simulation.enabled: true on a test machine",
            pin=cfg.pin,
        )
    finally:
        conn.close()
    polarity = "high" if cfg.active_high else "low"
    what = {"on": "mains present", "off": "mains absent"}.get(level.value, level.value)
    kind = "simulated pin" if simulation else f"GPIO{cfg.pin}, mains present when {polarity}"
    return _pass("mains", f"{what} ({kind})", pin=cfg.pin, state=level.value, simulated=simulation)


CONFIRM_SLACK_S: Final = 3.0
"""Beyond the confirmation window, how long check waits for a starting service's state."""


def _judge_published_mains(ctx: CheckContext) -> CheckResult:
    # A service that has just started announces "unknown" until its input has been
    # stable for the confirmation window: wait that long (and a little) for its state.
    window = max(
        float(getattr(ctx.cfg.mains, "confirm_on", 0.0)),
        float(getattr(ctx.cfg.mains, "confirm_off", 0.0)),
    )
    attempts = 1 + int((window + CONFIRM_SLACK_S) / 0.5)
    for attempt in range(attempts):
        raw = _from_service(
            ctx,
            "mains",
            topic=BridgeTopics(ctx.cfg.mqtt.base_topic, ctx.did).mains,
            owned="the pin; its state",
            missing="the service is running but has announced no mains state",
            fix="see `journalctl -u powerbridge` for GPIO errors",
        )
        if isinstance(raw, CheckResult):
            return raw
        try:
            payload = MainsPayload.decode(raw)
        except PayloadError as exc:
            return _fail("mains", f"the service's mains state is unreadable: {exc}", "report this")
        if payload.state is not MainsState.UNKNOWN or attempt == attempts - 1:
            break
        time.sleep(0.5)
    if payload.state is MainsState.UNKNOWN:
        # As before any announcement: a service that has just started confirms its input
        # first (a state stored before its start is history, not the present).
        return _fail(
            "mains",
            "the service is still confirming its input "
            f"(mains unknown, seq {payload.seq}, after waiting {window + CONFIRM_SLACK_S:g} s)",
            "a service that has just started confirms the pin over mains.confirm_on / "
            "confirm_off: run the check again; if it stays unknown, the input flaps: see "
            "`journalctl -u powerbridge`",
            state=payload.state.value,
            from_service=True,
        )
    return _pass(
        "mains",
        f"mains {payload.state.value} (announced by the running service, seq {payload.seq})",
        state=payload.state.value,
        from_service=True,
    )


# --------------------------------------------------------------------------- broker


def _acl_fix(username: str | None, device_id: str, root: str) -> str:
    """What to do when the ACL refuses the bridge its topics."""
    expected = f"bridge-{device_id}"
    if username and username.startswith("bridge-") and username != expected:
        other = username.removeprefix("bridge-")
        return (
            f"user {username} is the broker's user for device id {other}, not {device_id}: "
            f"set device.id: {other} in the configuration (or, for a new id, create its user "
            f"with `powerbridge broker add-bridge {device_id}` and use mqtt.username: {expected})"
        )
    return (
        f"give {username} readwrite on {root}/# in the broker's ACL "
        f"(`powerbridge broker add-bridge {device_id}` writes it for user {expected})"
    )


def check_broker(ctx: CheckContext) -> CheckResult:
    topics = BridgeTopics(ctx.cfg.mqtt.base_topic, ctx.did)
    session = BrokerSession(ctx.cfg, ctx.did)
    started = time.monotonic()
    try:
        session.connect(ctx.broker_timeout)
    except BrokerProblemError as exc:
        return _fail("broker", str(exc), exc.fix, problem=exc.kind, user=session.username)
    try:
        token = uuid.uuid4().hex.encode()
        if not session.subscribe(topics.check):
            return _fail(
                "broker",
                f"connected as {session.username}, but the ACL refuses it {topics.check}",
                _acl_fix(session.username, ctx.did, topics.root),
                problem="denied",
            )
        session.publish(topics.check, token, qos=1)
        if not session.expect(topics.check, token, timeout=3.0):
            return _fail(
                "broker",
                f"connected as {session.username}, but a message published on {topics.check} "
                "never came back: the ACL does not let this bridge publish its topics",
                _acl_fix(session.username, ctx.did, topics.root),
                problem="denied",
            )
    except BrokerProblemError as exc:
        return _fail("broker", str(exc), exc.fix, problem=exc.kind)
    finally:
        session.close()
    elapsed_ms = (time.monotonic() - started) * 1000
    tls = " over TLS" if ctx.cfg.mqtt.tls.enabled else ""
    return _pass(
        "broker",
        f"{session.where}{tls} accepts {session.username}; published and read back on "
        f"{topics.root}/ in {elapsed_ms:.0f} ms",
        user=session.username,
        round_trip_ms=round(elapsed_ms, 1),
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
        return _fail("data_dir", f"{path} is not a directory", "set device.data_dir to a directory")
    probe_dir = path if exists else _existing_ancestor(path)
    try:
        usage = shutil.disk_usage(probe_dir)
    except OSError as exc:
        return _fail(
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
            return _fail(
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
            return _fail(
                "data_dir",
                f"{path} does not exist and {probe_dir} is not writable by this user",
                "run as root (sudo), or create the directory: `sudo install -d "
                f"-o powerbridge {path}`",
            )
        where = f"{path} does not exist yet; it will be created in {probe_dir}"
    if free_mb < need_mb:
        return _fail(
            "data_dir",
            f"{where}, but only {free_mb:.0f} MB are free (health.min_free_disk_mb: {need_mb:g})",
            "free space on that file system (`du -xh / | sort -h | tail`), or use a larger card",
            free_mb=round(free_mb, 1),
        )
    return _pass("data_dir", f"{where}; {free_mb:,.0f} MB free", free_mb=round(free_mb, 1))


# --------------------------------------------------------------------------- clock


def check_clock(ctx: CheckContext) -> CheckResult:
    now = ctx.clock.utcnow()
    if now < MIN_WALL_CLOCK:
        return _fail(
            "clock",
            f"the clock says {now:%Y-%m-%d %H:%M} UTC: it was never set",
            "connect the bridge to a network with an NTP server (UDP 123) and enable time "
            "synchronisation: `sudo timedatectl set-ntp true`",
            now=now.isoformat(),
        )
    synced = ctx.clock_probe()
    if synced is None:
        return _fail(
            "clock",
            "cannot tell whether the clock is synchronised on this system",
            "check it by hand (`timedatectl`), then pass --skip clock",
        )
    if not synced:
        return _fail(
            "clock",
            f"the clock ({now:%Y-%m-%d %H:%M} UTC) is not synchronised",
            "enable time synchronisation (`sudo timedatectl set-ntp true`), make sure an NTP "
            "server is reachable (UDP 123), then watch `timedatectl timesync-status`",
            synchronised=False,
        )
    return _pass("clock", f"synchronised ({now:%Y-%m-%d %H:%M:%S} UTC)", synchronised=True)


# --------------------------------------------------------------------------- service


def check_service(ctx: CheckContext) -> CheckResult:
    if ctx.offline:
        return _check_service_offline(ctx)
    return _check_service_online(ctx)


def _check_service_offline(ctx: CheckContext) -> CheckResult:
    """``--root``: the unit file and the ``multi-user.target.wants`` link under the prefix."""
    unit = systemd.UNIT_NAME
    found = systemd.installed_unit(ctx.root)
    if found is None:
        return _fail(
            "service",
            f"{unit} is not installed under {ctx.root}",
            f"`powerbridge deployment start --root {ctx.root}` installs it",
        )
    if not systemd.enabled_offline(ctx.root):
        return _fail(
            "service",
            f"{unit} is installed under {ctx.root} but not enabled",
            f"`powerbridge deployment start --root {ctx.root}` enables it",
        )
    return _pass(
        "service",
        f"{unit} installed and enabled under {ctx.root} (--root: whether it runs is not known)",
        unit_file=str(found),
    )


def _check_service_online(ctx: CheckContext) -> CheckResult:
    unit = systemd.UNIT_NAME
    if not ctx.host.systemd_running:
        return _fail(
            "service",
            "systemd is not running on this machine: nothing starts the bridge at boot",
            "run the bridge on a systemd host, or pass --skip service when something else "
            "(a container, a supervisor) starts `powerbridge run`",
        )
    enabled = ctx.host.enabled_state()
    if enabled == "not-found":
        return _fail(
            "service",
            f"{unit} is not installed",
            "`sudo powerbridge deployment start` installs, enables and starts it",
        )
    active = ctx.service_state()
    if enabled != "enabled":
        return _fail(
            "service",
            f"{unit} is installed but {enabled} (and {active}): it will not start at boot",
            f"`sudo systemctl enable --now {unit}`",
            enabled=enabled,
            active=active,
        )
    if active != "active":
        return _fail(
            "service",
            f"{unit} is enabled but {active}",
            f"see why: `journalctl -u {unit} -n 50`; then `sudo systemctl restart {unit}`",
            enabled=enabled,
            active=active,
        )
    return _pass("service", f"{unit} is enabled and running", enabled=enabled, active=active)


# --------------------------------------------------------------------------- running them


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
            emit(_skip(name, f"skipped on request (--skip {name})", requested=True))
            continue
        if name != "config" and ctx.config is None:
            emit(
                _fail(
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
        return _fail(
            name,
            f"the check itself failed: {type(exc).__name__}: {exc}",
            "run with -vv for details and report it",
        )


def validate_names(names: Iterable[str]) -> list[str]:
    """Unknown check names, for the command line."""
    return [n for n in names if n not in CHECK_TITLES]
