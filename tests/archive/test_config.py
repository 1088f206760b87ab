"""The archive's configuration: defaults, and a view that is closed unless configured open."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.archive.config import parse
from bridge.errors import ConfigError


def test_defaults_are_sqlite_and_loopback() -> None:
    config = parse("")
    assert config.archive.database.startswith("sqlite:///")
    assert config.http.host == "127.0.0.1"
    assert config.username == "archiver"


def test_a_plain_path_is_a_sqlite_file() -> None:
    assert parse("archive: {database: /srv/a.db}").archive.database == "sqlite:////srv/a.db"


def test_the_view_is_not_open_to_the_network_without_a_password() -> None:
    with pytest.raises(ConfigError) as info:
        parse("http: {host: 0.0.0.0}")
    (problem,) = info.value.problems
    assert problem.key == "http.host"
    assert problem.line == 1


def test_a_password_or_a_proxy_opens_it(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("x\n")
    parse(f"http: {{host: 0.0.0.0, username: ops, password_file: {secret}}}")
    parse("http: {host: 0.0.0.0, behind_proxy: true}")


def test_unknown_keys_are_refused_with_their_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse("archive:\n  databse: x\n")
    assert info.value.problems[0].line == 2


def test_docs_fleets_carries_the_current_key_reference() -> None:
    from bridge.archive.config import REFERENCE_BEGIN, REFERENCE_END, reference_table

    doc = (Path(__file__).resolve().parents[2] / "docs" / "fleets.md").read_text(encoding="utf-8")
    block = doc.split(REFERENCE_BEGIN, 1)[1].split(REFERENCE_END, 1)[0]
    assert block.strip() == reference_table().strip(), (
        "docs/fleets.md's archive.yaml reference is stale: paste reference_table() between "
        "its markers"
    )
