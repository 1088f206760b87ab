"""The guides the system tier runs (tests/system/test_install_guide.py) mark every shell block:
run (on which machine) or skipped with a reason. A block without a marker fails here, so no step
of a guide is left out of the tier silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs._markdown import DOCS, MarkerError, guide_blocks, rel
from tests.system.test_install_guide import GUIDES, STAND_INS

PAGES = [DOCS / page for page, _host in GUIDES]


@pytest.mark.parametrize("path", PAGES, ids=rel)
def test_every_shell_block_of_a_guide_is_marked(path: Path) -> None:
    blocks = guide_blocks(path)  # raises MarkerError naming each unmarked block
    assert any(b.run for b in blocks), f"{rel(path)}: the tier runs nothing of it"
    for block in blocks:
        assert block.run or len(block.reason) > 10, f"{block.where()}: skip without a reason"


def test_the_guides_do_not_edit_files_interactively() -> None:
    for path in PAGES:
        for block in guide_blocks(path):
            if block.run:
                for word in ("nano ", "sudoedit ", "vi ", "read "):
                    assert word not in block.script, f"{block.where()}: {word.strip()}"


def test_each_stand_in_finds_its_block() -> None:
    for stand_in in STAND_INS:
        matches = [
            b
            for b in guide_blocks(DOCS / stand_in.page)
            if b.run and stand_in.block_contains in b.script
        ]
        assert len(matches) == 1, (stand_in.page, stand_in.block_contains, len(matches))


def test_markers_are_read_and_an_unmarked_block_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "guide.md"
    page.write_text(
        "Text.\n\n"
        "<!-- system-tier: run -->\n"
        "```sh\n"
        "sudo tee /etc/x <<'EOF'\n"
        "a: 1\n"
        "EOF\n"
        "```\n\n"
        "<!-- system-tier: run on pc -->\n"
        "```sh\n"
        "echo pc\n"
        "```\n\n"
        "<!-- system-tier: skip: needs a real GPIO pin -->\n"
        "```sh\n"
        "powerbridge mains watch\n"
        "```\n\n"
        "```yaml\n"
        "not: a shell block\n"
        "```\n",
        encoding="utf-8",
    )
    blocks = guide_blocks(page)
    assert [(b.run, b.host, b.reason) for b in blocks] == [
        (True, "", ""),
        (True, "pc", ""),
        (False, "", "needs a real GPIO pin"),
    ]
    assert blocks[0].script == "sudo tee /etc/x <<'EOF'\na: 1\nEOF\n"
    assert blocks[0].line == 4

    page.write_text("```sh\necho unmarked\n```\n", encoding="utf-8")
    with pytest.raises(MarkerError, match=r"guide.md:1: sh block without"):
        guide_blocks(page)
    page.write_text("<!-- system-tier: skip: x -->\nText.\n", encoding="utf-8")
    with pytest.raises(MarkerError, match="not followed by a sh block"):
        guide_blocks(page)
    page.write_text("<!-- system-tier: maybe -->\n```sh\ntrue\n```\n", encoding="utf-8")
    with pytest.raises(MarkerError, match="cannot read marker"):
        guide_blocks(page)
