"""The shell examples in the docs run, so that the docs cannot drift from the program.

The convention (also in docs/README.md):

* in the pages of ``RUN_ALL``, every line of a ```sh block that starts with ``powerbridge``
  is run in a temporary directory, the page's blocks one after another, and must exit 0
  (or the code of a trailing ``# exits N``), unless it ends with ``# not run in tests``;
* in every other page, its ``powerbridge … --help`` lines are run;
* in every page, every ``powerbridge`` command line — marked, ``sudo``-prefixed or not —
  must at least be accepted by the argument parser (a renamed option or command fails here).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.cli import build_parser, main
from tests.docs._markdown import DOCS, ROOT, Example, doc_files, examples, rel

RUN_ALL = (
    ROOT / "README.md",
    DOCS / "README.md",
    DOCS / "cli.md",
    DOCS / "install-raspberry-pi.md",
    DOCS / "wiring.md",
    DOCS / "fleets.md",
    DOCS / "troubleshooting.md",
    DOCS / "safety.md",
    DOCS / "comparison.md",
)
"""Pages whose every unmarked ``powerbridge`` line is run."""


def selected(path: Path) -> list[Example]:
    found = [e for e in examples(path) if e.runnable and not e.marked]
    if path in RUN_ALL:
        return found
    return [e for e in found if "--help" in e.argv or "-h" in e.argv]


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """``main()`` reconfigures the root logger; give pytest its handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def run(example: Example) -> tuple[int, str]:
    out = io.StringIO()
    with (
        logging_kept(),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
    ):
        try:
            code = main(example.argv)
        except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue()


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_shell_examples_run(path: Path, tmp_path: Path) -> None:
    chosen = selected(path)
    if not chosen:
        return  # this page has no example to run (checked by the parser test below)
    failures = []
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        for example in chosen:
            code, output = run(example)
            if code != example.exit_code:
                tail = "\n    ".join(output.strip().splitlines()[-8:])
                failures.append(
                    f"{example.where()}\n  exit {code}, expected {example.exit_code}\n    {tail}"
                )
    finally:
        os.chdir(cwd)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_every_command_line_parses(path: Path) -> None:
    parser = build_parser()
    failures = []
    for example in examples(path):
        if "--help" in example.argv or "-h" in example.argv:
            continue  # run above where it matters; --help exits before the rest is checked
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                parser.parse_args(example.argv)
            except SystemExit as exc:
                if exc.code != 0:
                    failures.append(f"{example.where()}\n  {err.getvalue().strip()}")
    assert not failures, "\n".join(failures)


def test_cli_reference_examples_are_run() -> None:
    """The convention is not vacuous: the CLI reference has examples, and they are selected."""
    cli = examples(DOCS / "cli.md")
    run_here = selected(DOCS / "cli.md")
    assert any(e.argv[:2] == ["config", "init"] for e in run_here)
    assert any(e.argv[:2] == ["config", "check"] for e in run_here)
    assert any(e.argv == ["demo", "--help"] for e in run_here)
    assert any(e.argv == ["watch", "--help"] for e in run_here)
    assert any(e.marked for e in cli)
    assert not any(e.marked for e in run_here)


def test_a_failing_example_is_reported(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```sh\n"
        "powerbridge config check missing.yaml\n"
        "powerbridge config check missing.yaml    # exits 2\n"
        "sudo powerbridge deployment start --no-such-option    # not run in tests\n"
        "powerbridge --help | less\n"
        "```\n",
        encoding="utf-8",
    )
    found = examples(page)
    assert [e.exit_code for e in found] == [0, 2, 0, 0]
    assert [e.runnable for e in found] == [True, True, False, True]
    assert found[2].argv == ["deployment", "start", "--no-such-option"]
    assert found[3].argv == ["--help"]
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert run(found[0])[0] == 2
        assert run(found[1])[0] == 2
    finally:
        os.chdir(cwd)
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as info:
        build_parser().parse_args(found[2].argv)
    assert info.value.code == 2
