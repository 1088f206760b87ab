"""`powerbridge config`: write a commented example, check a file, print the reference."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from bridge.cli._common import add_command, add_group
from bridge.errors import ConfigError, ConfigProblem, ExitCode, UsageError


def example_text(*, client: bool) -> str:
    """The fully commented example configuration shipped with the package."""
    name = "client.yaml" if client else "bridge.yaml"
    return resources.files("bridge.config.templates").joinpath(name).read_text(encoding="utf-8")


def _init(args: argparse.Namespace) -> int:
    text = example_text(client=args.client)
    if args.path is None:
        sys.stdout.write(text)
        return int(ExitCode.OK)
    path: Path = args.path
    if path.exists() and not args.force:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    kind = "shutdown client" if args.client else "bridge"
    print(f"wrote a commented {kind} configuration to {path}")
    print(f"edit it, then run: powerbridge config check {path}")
    return int(ExitCode.OK)


def looks_like_client(path: Path) -> bool:
    """A file with a top-level ``bridges:`` list is a shutdown client configuration."""
    from bridge.config._yaml import YamlSyntaxError, load_with_lines

    try:
        data, _lines = load_with_lines(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YamlSyntaxError):
        return False
    return isinstance(data, dict) and ("bridges" in data or "shutdown" in data)


def _check(args: argparse.Namespace) -> int:
    from bridge.config import load_bridge_config, load_client_config
    from bridge.config.files import referenced_file_problems

    problems: list[ConfigProblem] = []
    for path in args.files:
        client = args.client or (not args.bridge and looks_like_client(path))
        try:
            config = load_client_config(path) if client else load_bridge_config(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        missing = referenced_file_problems(config, path)
        if missing:
            problems.extend(missing)
            continue
        kind = "shutdown client" if client else "bridge"
        print(f"{path}: valid {kind} configuration")
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return int(ExitCode.USAGE)
    return int(ExitCode.OK)


def reference_markdown() -> str:
    """The configuration reference, generated from the schema (docs/configuration.md)."""
    from bridge.config import BridgeConfig, ClientConfig
    from bridge.config._schema import reference

    lines = [
        "# Configuration reference",
        "",
        "Generated from the schema by `powerbridge config reference`; do not edit by hand.",
        "Durations accept `90s`, `10m`, `1h`, `2d`, `250ms` or a number of seconds.",
        "Secrets are never written in the file itself: use `*_file` or `*_env` settings.",
        "",
    ]
    for title, cls, name in (
        ("Bridge (`bridge.yaml`)", BridgeConfig, "bridge"),
        ("Shutdown client (`client.yaml`)", ClientConfig, "client"),
    ):
        lines += [f"## {title}", "", "| key | default | meaning |", "|---|---|---|"]
        for key, default, doc in reference(cls):
            shown = f"`{default}`" if default else ""
            escaped = doc.replace("|", "\\|")
            lines.append(f"| `{key}` | {shown} | {escaped} |")
        lines += [
            "",
            f"Example: `powerbridge config init{' --client' if name == 'client' else ''}`.",
            "",
        ]
    return "\n".join(lines)


def _reference(_args: argparse.Namespace) -> int:
    sys.stdout.write(reference_markdown())
    return int(ExitCode.OK)


def register(subparsers: Any) -> None:
    sub = add_group(subparsers, "config", "write, check and explain configuration files")
    init = add_command(
        sub,
        "init",
        "write a fully commented example configuration",
        _init,
        description=(
            "Write a fully commented example configuration that passes `config check`.\n"
            "Without PATH it is printed on standard output."
        ),
    )
    init.add_argument("--client", action="store_true", help="a shutdown client's configuration")
    init.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    init.add_argument("path", nargs="?", type=Path, metavar="PATH", help="file to write")
    check = add_command(
        sub,
        "check",
        "validate configuration files; print every problem as FILE:LINE: key: message",
        _check,
        description=(
            "Validate configuration files. Every problem is printed as\n"
            "  FILE:LINE: dotted.key: what was expected, what was found\n"
            "Exit 0 when all files are valid, 2 otherwise. The kind (bridge or shutdown\n"
            "client) is recognised by a top-level `bridges:` key, or forced with a flag."
        ),
    )
    kind = check.add_mutually_exclusive_group()
    kind.add_argument("--client", action="store_true", help="check as a shutdown client config")
    kind.add_argument("--bridge", action="store_true", help="check as a bridge config")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add_command(sub, "reference", "print the configuration reference (Markdown)", _reference)
