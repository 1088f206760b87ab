"""The meter and the mains pin: opened and read, or judged by what the running service publishes.

When the bridge's service is already running, the meter and the pin belong to it:
they are then judged from its retained state (the age of its newest reading, its
announced mains state) instead of being opened a second time.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Final

from bridge.deployment import systemd
from bridge.deployment.checks._base import (
    CheckContext,
    CheckResult,
    Published,
    fail,
    passed,
    read_published,
    skipped,
)
from bridge.errors import MeterError, MeterTimeoutError
from bridge.model import MainsState, Reading
from bridge.mqtt.contract import MainsPayload, StatePayload

PUBLISHED_STATE: Final = Published(
    check="meter",
    topic=lambda topics: topics.state,
    decode=StatePayload.decode,
    owned="the meter; its readings",
    what="newest reading",
    missing="the service is running but has published no reading yet",
    fix="see `journalctl -u powerbridge` for meter errors",
)
PUBLISHED_MAINS: Final = Published(
    check="mains",
    topic=lambda topics: topics.mains,
    decode=MainsPayload.decode,
    owned="the pin; its state",
    what="mains state",
    missing="the service is running but has announced no mains state",
    fix="see `journalctl -u powerbridge` for GPIO errors",
)


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
        return skipped("meter", "no meter configured (meter.type: none)")
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
        return fail(
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
        return fail(
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
    return passed(
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
        return fail(
            "meter",
            f"simulated {sim.meter_protocol} meter: {exc}",
            "the simulator did not answer its own driver: report this as a bug",
        )
    return passed(
        "meter",
        f"simulated {sim.meter_protocol} meter answers: {describe_reading(readings[0])}",
        simulated=True,
        readings=[_reading_data(r) for r in readings],
    )


def _judge_published_state(ctx: CheckContext) -> CheckResult:
    """The service owns the port: judge the meter by the age of its newest reading."""
    reading = read_published(ctx, PUBLISHED_STATE)
    if isinstance(reading, CheckResult):
        return reading
    age = (ctx.clock.utcnow() - reading.ts).total_seconds()
    allowed = max(3 * ctx.cfg.meter.interval, 10.0)
    if age > allowed:
        return fail(
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
    return passed(
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
        return skipped("mains", "mains.source is meter: no pin is used")
    if ctx.service_running():
        return _judge_published_mains(ctx)
    from bridge.mains import MainsSensor
    from bridge.mains.store import OutageStore

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
        return fail(
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
    return passed("mains", f"{what} ({kind})", pin=cfg.pin, state=level.value, simulated=simulation)


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
    payload = read_published(ctx, PUBLISHED_MAINS)
    for _ in range(attempts - 1):
        if isinstance(payload, CheckResult) or payload.state is not MainsState.UNKNOWN:
            break
        time.sleep(0.5)
        payload = read_published(ctx, PUBLISHED_MAINS)
    if isinstance(payload, CheckResult):
        return payload
    if payload.state is MainsState.UNKNOWN:
        # As before any announcement: a service that has just started confirms its input
        # first (a state stored before its start is history, not the present).
        return fail(
            "mains",
            "the service is still confirming its input "
            f"(mains unknown, seq {payload.seq}, after waiting {window + CONFIRM_SLACK_S:g} s)",
            "a service that has just started confirms the pin over mains.confirm_on / "
            "confirm_off: run the check again; if it stays unknown, the input flaps: see "
            "`journalctl -u powerbridge`",
            state=payload.state.value,
            from_service=True,
        )
    return passed(
        "mains",
        f"mains {payload.state.value} (announced by the running service, seq {payload.seq})",
        state=payload.state.value,
        from_service=True,
    )
