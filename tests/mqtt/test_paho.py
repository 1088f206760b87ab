"""The shared paho client factory: how a refused connection is explained."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from bridge.mqtt.paho import refusal


@pytest.mark.parametrize("code", [0x86, 0x87])
def test_bad_credentials_name_the_settings_to_check(code: int) -> None:
    text = refusal(ReasonCode(PacketTypes.CONNACK, identifier=code))
    assert text.startswith("connection refused: ")
    assert "mqtt.username" in text
    assert "password_file" in text
    assert "ACL" in text


def test_other_refusals_carry_no_credentials_hint() -> None:
    text = refusal(ReasonCode(PacketTypes.CONNACK, identifier=0x88))  # server unavailable
    assert text.startswith("connection refused: ")
    assert "mqtt.username" not in text
