"""Rendering the shipped configuration for a private broker keeps every global setting."""

from __future__ import annotations

from pathlib import Path

from bridge.broker.runner import render_conf, shipped_file


def _directives(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_without_tls_only_the_tls_listener_and_its_options_are_left_out(tmp_path: Path) -> None:
    shipped = _directives(shipped_file("powerbridge.conf"))
    rendered = _directives(
        render_conf(shipped_file("powerbridge.conf"), tmp_path, 41883, None, None)
    )
    keys = {words[0] for words in rendered}
    # Global limits written after the TLS listener in the shipped file still apply.
    for words in shipped:
        if words[0] in ("max_packet_size", "max_queued_messages", "allow_anonymous", "persistence"):
            assert words in rendered
    assert not keys & {"cafile", "certfile", "keyfile", "tls_version"}
    assert [w for w in rendered if w[0] == "listener"] == [["listener", "41883", "127.0.0.1"]]


def test_with_tls_both_listeners_are_on_loopback(tmp_path: Path) -> None:
    rendered = _directives(
        render_conf(shipped_file("powerbridge.conf"), tmp_path, 41883, 48883, tmp_path / "tls")
    )
    assert [w for w in rendered if w[0] == "listener"] == [
        ["listener", "41883", "127.0.0.1"],
        ["listener", "48883", "127.0.0.1"],
    ]
    assert ["cafile", str(tmp_path / "tls" / "ca.crt")] in rendered
    assert ["max_packet_size", "1048576"] in rendered
