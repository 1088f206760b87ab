"""Configuration declared once, as dataclasses with field metadata.

Every setting is a dataclass field made with :func:`setting` (a value with a
voluptuous validator and a line of documentation) or :func:`section` (a nested
dataclass).  From that one declaration this module derives:

* the voluptuous schema (unknown keys rejected, every error collected),
* the frozen dataclass instance built from validated data,
* the configuration reference in ``docs/configuration.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import voluptuous as vol

from bridge.config._yaml import LineMap, YamlSyntaxError, load_with_lines
from bridge.errors import ConfigError, ConfigProblem

T = TypeVar("T")

_MISSING = dataclasses.MISSING


def setting(
    default: Any,
    check: Any,
    doc: str,
    *,
    secret: bool = False,
    required: bool = False,
) -> Any:
    """Declare one setting: its default, its voluptuous validator and its documentation."""
    metadata = {"check": check, "doc": doc, "secret": secret, "required": required}
    if isinstance(default, list | dict):
        raise TypeError("use an immutable default (a tuple) for list settings")
    return dataclasses.field(default=default, metadata=metadata)


def section(cls: type[Any], doc: str) -> Any:
    """Declare a nested section whose settings are the fields of ``cls``."""
    return dataclasses.field(default_factory=cls, metadata={"section": cls, "doc": doc})


def items_of(cls: type[Any], doc: str) -> Any:
    """Declare a list of sub-objects, each with the fields of ``cls``."""
    return dataclasses.field(default_factory=list, metadata={"items": cls, "doc": doc})


def _fields(cls: type[Any]) -> Iterator[dataclasses.Field[Any]]:
    yield from (f for f in dataclasses.fields(cls) if f.init)


def schema_for(cls: type[Any]) -> vol.Schema:
    """The voluptuous schema of a configuration dataclass (recursively)."""
    shape: dict[Any, Any] = {}
    for f in _fields(cls):
        meta = f.metadata
        marker = vol.Required(f.name) if meta.get("required") else vol.Optional(f.name)
        if "section" in meta:
            shape[marker] = vol.Any(None, schema_for(meta["section"]))
        elif "items" in meta:
            shape[marker] = vol.Any(None, [schema_for(meta["items"])])
        else:
            shape[marker] = meta["check"]
    return vol.Schema(shape, extra=vol.PREVENT_EXTRA)


def build(cls: type[T], data: Mapping[str, Any] | None) -> T:
    """Build the frozen dataclass ``cls`` from already validated data, applying defaults."""
    data = data or {}
    kwargs: dict[str, Any] = {}
    for f in _fields(cls):
        if f.name not in data or (
            data[f.name] is None and ("section" in f.metadata or "items" in f.metadata)
        ):
            continue
        value = data[f.name]
        if "section" in f.metadata:
            value = build(f.metadata["section"], value)
        elif "items" in f.metadata:
            value = tuple(build(f.metadata["items"], item) for item in value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _known_keys(cls: type[Any], path: tuple[str | int, ...]) -> list[str]:
    current: type[Any] | None = cls
    for part in path:
        if current is None or isinstance(part, int):
            continue
        match = next((f for f in _fields(current) if f.name == part), None)
        if match is None:
            return []
        current = match.metadata.get("section") or match.metadata.get("items")
    return [f.name for f in _fields(current)] if current is not None else []


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _value_at(data: Any, path: tuple[str | int, ...]) -> tuple[bool, Any]:
    current = data
    for part in path:
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, current


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)" if value else "an empty list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problem(
    cls: type[Any], err: vol.Invalid, data: Any, lines: LineMap, file: str
) -> ConfigProblem:
    path: tuple[str | int, ...] = tuple(p if isinstance(p, int) else str(p) for p in err.path)
    message = err.error_message or str(err)
    if message == "extra keys not allowed":
        key = str(path[-1]) if path else ""
        known = _known_keys(cls, path[:-1])
        import difflib  # only for a mistyped key

        hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        text = f"unknown key '{key}'"
        if hint:
            text += f"; did you mean '{hint[0]}'?"
        elif known:
            text += f"; expected one of: {', '.join(sorted(known))}"
        return ConfigProblem(file, lines.line_of(path), _dotted(path), text)
    if message == "required key not provided":
        return ConfigProblem(file, lines.line_of(path[:-1]), _dotted(path), "required key missing")
    found, value = _value_at(data, path)
    if message.startswith(("expected dict", "expected a dictionary")):
        message = "expected a mapping of settings"
    if message.startswith(("expected list", "expected a list")) and not message.startswith(
        "expected a list of at least"
    ):
        message = "expected a list"
    text = f"{message}, got {_describe(value)}" if found else message
    return ConfigProblem(file, lines.line_of(path), _dotted(path), text)


def _leaf_errors(err: vol.Invalid) -> Iterator[vol.Invalid]:
    if isinstance(err, vol.MultipleInvalid):
        for sub in err.errors:
            yield from _leaf_errors(sub)
    else:
        yield err


def validate_text(
    cls: type[T],
    text: str,
    file: str,
    *,
    post: Callable[[T], list[tuple[str, str]]] | None = None,
) -> T:
    """Validate YAML ``text`` against ``cls``; raise :class:`ConfigError` with every problem.

    ``post`` runs cross-field checks on the built config and returns
    ``(dotted.key, message)`` pairs.
    """
    try:
        data, lines = load_with_lines(text)
    except YamlSyntaxError as exc:
        raise ConfigError([ConfigProblem(file, exc.line, "", str(exc))]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem(file, 1, "", f"expected a mapping of sections, got {_describe(data)}")]
        )
    try:
        validated = schema_for(cls)(data)
    except vol.Invalid as exc:
        problems = [_problem(cls, leaf, data, lines, file) for leaf in _leaf_errors(exc)]
        unique = list(dict.fromkeys(problems))
        unique.sort(key=lambda p: (p.line or 0, p.key))
        raise ConfigError(unique) from None
    config = build(cls, validated)
    if post is not None:
        cross = post(config)
        if cross:
            raise ConfigError(
                [
                    ConfigProblem(file, lines.line_of(tuple(key.split("."))), key, message)
                    for key, message in cross
                ]
            )
    return config


def validate_file(
    cls: type[T], path: Path, *, post: Callable[[T], list[tuple[str, str]]] | None = None
) -> T:
    """Read and validate a configuration file; errors name the file as given."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(path), None, "", "file not found")]) from None
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(str(path), None, "", f"cannot read: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(str(path), None, "", "not UTF-8 text")]) from None
    return validate_text(cls, text, str(path), post=post)


def reference(cls: type[Any], prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """``(dotted.key, default, doc)`` for every setting: the configuration reference."""
    for f in _fields(cls):
        key = f"{prefix}{f.name}"
        if "section" in f.metadata:
            yield key, "", str(f.metadata["doc"])
            yield from reference(f.metadata["section"], key + ".")
        elif "items" in f.metadata:
            yield f"{key}[]", "[]", str(f.metadata["doc"])
            yield from reference(f.metadata["items"], key + "[].")
        else:
            if f.default is not _MISSING:
                default = f.default
            elif f.default_factory is not _MISSING:
                default = f.default_factory()
            else:
                default = None
            shown = "(required)" if f.metadata.get("required") else _show_default(default)
            yield key, shown, str(f.metadata["doc"])


def _show_default(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show_default(v) for v in value) + "]"
    return str(value)
