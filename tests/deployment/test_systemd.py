"""The systemd unit and the installation files rendered from the shipped templates."""

from __future__ import annotations

import re
from pathlib import Path

from bridge.config import parse_bridge_config
from bridge.deployment import systemd
from bridge.deployment.systemd import UnitOptions, install_plan, render_unit


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def test_unit_has_notify_watchdog_restart_and_hardening(tmp_path: Path) -> None:
    cfg = parse_bridge_config("meter: {type: pzem004t, port: /dev/powermeter}\n")
    unit = render_unit(UnitOptions.for_config(cfg, Path("/etc/powerbridge/bridge.yaml")))
    d = directives(unit)
    assert d["Service.Type"] == ["notify"]
    assert d["Service.WatchdogSec"] == ["30s"]
    assert d["Service.Restart"] == ["always"]
    assert d["Unit.After"] == ["network-online.target time-sync.target"]
    assert d["Unit.Wants"] == ["network-online.target time-sync.target"]
    assert d["Service.User"] == ["powerbridge"]
    assert d["Service.StateDirectory"] == ["powerbridge"]
    assert d["Service.ProtectSystem"] == ["strict"]
    assert d["Service.NoNewPrivileges"] == ["yes"]
    assert d["Service.PrivateTmp"] == ["yes"]
    assert d["Service.DevicePolicy"] == ["closed"]
    assert "char-gpiochip rw" in d["Service.DeviceAllow"]
    assert "/dev/powermeter rw" in d["Service.DeviceAllow"]
    assert d["Install.WantedBy"] == ["multi-user.target"]
    exec_start = d["Service.ExecStart"][0]
    assert exec_start.endswith(" run --config /etc/powerbridge/bridge.yaml")
    assert exec_start.startswith("/")
    assert not re.search(r"@[A-Z_]+@", unit)  # every placeholder filled
    assert d["Service.SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert d["Service.SystemCallErrorNumber"] == ["EPERM"]
    assert d["Service.ProtectProc"] == ["invisible"]


def test_device_allow_follows_the_configuration() -> None:
    sim = parse_bridge_config("meter: {type: simulated}\nsimulation: {enabled: true}\n")
    d = directives(render_unit(UnitOptions.for_config(sim, Path("/etc/b.yaml"))))
    assert d["Service.DeviceAllow"] == ["/dev/ptmx rw", "char-pts rw"]
    acm = parse_bridge_config(
        "meter: {type: mcp39f511n, port: /dev/ttyACM0}\nmains: {source: meter}\n"
    )
    d = directives(render_unit(UnitOptions.for_config(acm, Path("/etc/b.yaml"))))
    assert d["Service.DeviceAllow"] == ["char-ttyACM rw", "/dev/ttyACM0 rw"]
    none = parse_bridge_config("device: {data_dir: /srv/pb}\n")
    d = directives(render_unit(UnitOptions.for_config(none, Path("/etc/b.yaml"))))
    assert d["Service.DeviceAllow"] == ["char-gpiochip rw"]
    assert d["Service.ReadWritePaths"] == ["/srv/pb"]


def test_exec_start_quotes_odd_paths() -> None:
    options = UnitOptions(Path("/etc/power bridge/b.yaml"), exec_argv=("/opt/pb/bin/powerbridge",))
    d = directives(render_unit(options))
    assert d["Service.ExecStart"] == [
        '/opt/pb/bin/powerbridge run --config "/etc/power bridge/b.yaml"'
    ]
    assert systemd.quote_arg("50%") == "50%%"


def test_exec_problem_spots_paths_the_service_cannot_see() -> None:
    assert systemd.exec_problem(["/home/pi/venv/bin/powerbridge"]) is not None
    assert systemd.exec_problem(["powerbridge"]) is not None
    assert systemd.exec_problem(["/opt/powerbridge/bin/powerbridge"]) is None


def test_install_plan_and_offline_enable(tmp_path: Path) -> None:
    cfg = parse_bridge_config("")
    plan = install_plan(UnitOptions.for_config(cfg, Path("/etc/powerbridge/bridge.yaml")))
    paths = {str(p.path) for p in plan}
    assert "/etc/systemd/system/powerbridge.service" in paths
    assert "/etc/sysusers.d/powerbridge.conf" in paths
    assert "/etc/udev/rules.d/99-powerbridge-meter.rules" in paths
    for planned in plan:
        systemd.write_file(tmp_path, planned)
    assert systemd.installed_unit(tmp_path) == tmp_path / "etc/systemd/system/powerbridge.service"
    assert not systemd.enabled_offline(tmp_path)
    systemd.enable_offline(tmp_path)
    assert systemd.enabled_offline(tmp_path)
    assert systemd.disable_offline(tmp_path)
    assert not systemd.enabled_offline(tmp_path)


def test_udev_rules_link_every_adapter_the_meter_drivers_know() -> None:
    from bridge.meters.ports import USB_IDS

    known = {f"{v:04x}:{p:04x}" for v, p in USB_IDS}
    assert systemd.meter_usb_ids() == known


def test_udev_rules_cover_the_known_meters() -> None:
    rules = systemd.shipped_rules()["99-powerbridge-meter.rules"]
    for vendor, product in (("04d8", "00dd"), ("1a86", "7523"), ("10c4", "ea60"), ("0403", "6001")):
        line = next(ln for ln in rules.splitlines() if f'ATTRS{{idVendor}}=="{vendor}"' in ln)
        assert f'ATTRS{{idProduct}}=="{product}"' in line
        assert 'SYMLINK+="powermeter"' in line
    sysusers = systemd.sysusers_text()
    assert "u powerbridge" in sysusers
    assert "m powerbridge dialout" in sysusers
