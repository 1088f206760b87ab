"""YAML loading that remembers where every key came from (for ``FILE:LINE`` errors)."""

from __future__ import annotations

from typing import Any

import yaml

Path_ = tuple[str | int, ...]


class LineMap:
    """Maps a path of keys/indexes in a YAML document to its 1-based line number."""

    def __init__(self) -> None:
        self._key_lines: dict[Path_, int] = {}
        self._value_lines: dict[Path_, int] = {}

    def add(self, path: Path_, key_line: int, value_line: int) -> None:
        self._key_lines[path] = key_line
        self._value_lines[path] = value_line

    def line_of(self, path: Path_) -> int | None:
        """Line of the key (or list item) at ``path``, else of its nearest ancestor."""
        probe = tuple(path)
        while probe:
            if probe in self._key_lines:
                return self._key_lines[probe]
            probe = probe[:-1]
        return self._key_lines.get((), None)


def _walk(node: yaml.Node, path: Path_, lines: LineMap) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            child = (*path, key)
            lines.add(child, key_node.start_mark.line + 1, value_node.start_mark.line + 1)
            _walk(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines.add(child, item.start_mark.line + 1, item.start_mark.line + 1)
            _walk(item, child, lines)


class YamlSyntaxError(Exception):
    """The file is not valid YAML; ``line`` is 1-based."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def _refuse_aliases(text: str) -> None:
    """Anchors and aliases (``&a``/``*a``) are refused before anything is built.

    A configuration needs neither, and they are what makes a recursive document
    (endless recursion) or an "alias bomb" (exponential memory) out of a few lines.
    """
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent) or anchor is not None:
            raise YamlSyntaxError(
                "YAML anchors and aliases (&name, *name) are not allowed in a configuration "
                "file: write the values out",
                event.start_mark.line + 1 if event.start_mark is not None else None,
            )


def load_with_lines(text: str) -> tuple[Any, LineMap]:
    """Parse ``text`` (safe loader) and return the data and its line map."""
    lines = LineMap()
    try:
        _refuse_aliases(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise YamlSyntaxError(f"not valid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"not valid YAML: {exc}", None) from None
    if node is not None:
        lines.add((), node.start_mark.line + 1, node.start_mark.line + 1)
        _walk(node, (), lines)
    return data, lines
