"""The component's copy of the bridge's entity table is current."""

from __future__ import annotations

from bridge.mqtt.entities import BRIDGE_ENTITIES
from custom_components.powerbridge.entity_table import MAINS_ENTITIES
from custom_components.powerbridge.sensor import BRIDGE_VALUES

from .generate_entity_table import FIELDS, SOURCES, TARGET, render


def test_entity_table_copy_is_current() -> None:
    assert TARGET.read_text(encoding="utf-8") == render(), (
        "custom_components/powerbridge/entity_table.py is out of date: run "
        ".venv/bin/python tests_ha/generate_entity_table.py"
    )


def test_copy_matches_the_bridge_table_row_by_row() -> None:
    rows = [d for d in BRIDGE_ENTITIES if d.source in SOURCES]
    assert [r.key for r in MAINS_ENTITIES] == [d.key for d in rows]
    for ours, theirs in zip(MAINS_ENTITIES, rows, strict=True):
        for name in FIELDS:
            assert getattr(ours, name) == getattr(theirs, name), (ours.key, name)


def test_every_copied_sensor_has_a_value() -> None:
    sensors = {r.key for r in MAINS_ENTITIES if r.component == "sensor"}
    assert sensors == set(BRIDGE_VALUES)
