"""The shipped LED udev rule covers the LED names the sysfs backend looks for."""

from __future__ import annotations

import re
from importlib import resources

from bridge.deployment import systemd
from bridge.leds import SYSFS_ALIASES

RULES = "99-powerbridge-leds.rules"


def rule_lines() -> list[str]:
    text = resources.files("bridge.deployment").joinpath("files", RULES).read_text()
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_rule_names_every_led_the_backend_may_use() -> None:
    (line,) = rule_lines()
    match = re.search(r'KERNEL=="([^"]+)"', line)
    assert match is not None
    names = set(match.group(1).split("|"))
    wanted = {name for aliases in SYSFS_ALIASES.values() for name in aliases}
    assert wanted == names
    assert 'SUBSYSTEM=="leds"' in line


def test_rule_gives_both_files_to_the_service_group() -> None:
    (line,) = rule_lines()
    sysusers = resources.files("bridge.deployment").joinpath("files", "powerbridge.sysusers.conf")
    user = next(row.split()[1] for row in sysusers.read_text().splitlines() if row.startswith("u "))
    assert f"chgrp {user} /sys%p/trigger /sys%p/brightness" in line
    assert "chmod g+w /sys%p/trigger /sys%p/brightness" in line


def test_deployment_installs_it() -> None:
    assert RULES in systemd.shipped_rules()
