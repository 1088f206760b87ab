"""Every relative link in README.md and docs/ resolves, anchors included."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.docs._markdown import DOCS, ROOT, anchors, doc_files, links, rel, slug

PENDING: dict[str, str] = {
    "docs/performance.md": "rendered from bench-results.json by `./dev bench`",
}
"""Documents that may be missing for now, each with the reason: ``{"docs/x.md": "why"}``.
A link to one of them is checked as soon as the file exists.  Keep this empty; an entry is
a promise that the document is being written."""


def broken_links(path: Path) -> list[str]:
    problems: list[str] = []
    for number, target in links(path):
        parsed = urlparse(target)
        if parsed.scheme or target.startswith("//"):
            continue  # http(s), mailto: not checked here
        file_part, _, fragment = target.partition("#")
        destination = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not destination.exists() and _pending(destination):
            continue
        if not destination.exists():
            problems.append(f"{rel(path)}:{number}: {target}: no such file")
            continue
        if ROOT not in destination.parents and destination != ROOT:
            problems.append(f"{rel(path)}:{number}: {target}: points outside the repository")
            continue
        if fragment and destination.suffix == ".md" and fragment not in anchors(destination):
            problems.append(f"{rel(path)}:{number}: {target}: no heading #{fragment}")
    return problems


def _pending(destination: Path) -> bool:
    try:
        return str(destination.relative_to(ROOT)) in PENDING
    except ValueError:
        return False


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_the_index_lists_every_document() -> None:
    index = DOCS / "README.md"
    linked = {
        (index.parent / target.partition("#")[0]).resolve()
        for _n, target in links(index)
        if not urlparse(target).scheme
    }
    missing = [rel(p) for p in sorted(DOCS.glob("*.md")) if p != index and p not in linked]
    assert missing == [], "add them to docs/README.md"


def test_the_checker_catches_what_it_should(tmp_path: Path) -> None:
    """The checker is not vacuous: a missing file and a missing anchor are both reported."""
    doc = DOCS / "_link_checker_probe.md"
    doc.write_text(
        "# Probe\n\n## A `code` heading, with: punctuation\n\n"
        "[ok](cli.md) [ok anchor](#a-code-heading-with-punctuation) [gone](no-such-file.md)\n"
        "[bad anchor](cli.md#no-such-heading) [web](https://example.org/x.md)\n"
        "`[in code](ignored.md)`\n\n```sh\n[fenced](ignored.md)\n```\n",
        encoding="utf-8",
    )
    try:
        problems = broken_links(doc)
    finally:
        doc.unlink()
    assert len(problems) == 2, problems
    assert "no-such-file.md: no such file" in problems[0]
    assert "no heading #no-such-heading" in problems[1]


def test_slugs_follow_github() -> None:
    assert slug("Exit codes") == "exit-codes"
    assert slug("PZEM-004T v3 (TTL UART) — mind the 5 V / 3.3 V levels") == (
        "pzem-004t-v3-ttl-uart--mind-the-5-v--33-v-levels"
    )
    assert slug("`powerbridge demo`") == "powerbridge-demo"
