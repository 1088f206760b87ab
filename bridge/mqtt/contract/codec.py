"""Canonical JSON and the strict field readers every payload decoder uses.

Part of :mod:`bridge.mqtt.contract`; import from there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from bridge.clock import parse_utc
from bridge.errors import PayloadError
from bridge.mqtt.contract.topics import _BOOT_RE, PAYLOAD_VERSION

# --------------------------------------------------------------------------- helpers


class JsonPayload:
    """A payload of the contract: :meth:`to_dict` gives its fields, :meth:`encode` its bytes."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def encode(self) -> bytes:
        """Canonical JSON of :meth:`to_dict` (see :func:`dumps`)."""
        return dumps(self.to_dict())


def dumps(payload: dict[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, no spaces (signatures are computed over this)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _parse_json(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)


def _fast_parser() -> Callable[[bytes], Any]:
    """orjson's ``loads`` with the archive's extra (three to four times faster on sample
    batches); on a bridge or a PC, the standard library's."""
    try:
        from orjson import loads
    except ImportError:
        return _parse_json
    return loads


_parse_json_fast: Final = _fast_parser()


def loads_object(raw: bytes, *, max_size: int | None = None, fast: bool = False) -> dict[str, Any]:
    """Parse a JSON object with a version we understand, or raise :class:`PayloadError`.

    ``fast``: with orjson installed (``powerbridge[archive]``), parse with it: the archive
    reads tens of thousands of samples a second.  It is as strict (UTF-8 only; ``NaN``,
    ``Infinity`` and integers beyond 64 bits are errors, not values) and the result is
    the same for anything the contract allows.
    """
    if max_size is not None and len(raw) > max_size:
        raise PayloadError(f"payload of {len(raw)} bytes exceeds {max_size}")
    try:
        data = (_parse_json_fast if fast else _parse_json)(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # each parser's errors
        raise PayloadError(f"not JSON: {exc.__class__.__name__}") from None
    if not isinstance(data, dict):
        raise PayloadError("not a JSON object")
    version = data.get("v")
    if version != PAYLOAD_VERSION or isinstance(version, bool):
        raise PayloadError(f"unsupported payload version {version!r}")
    return data


def _with_sig(out: dict[str, Any], sig: str | None) -> dict[str, Any]:
    """``out`` with its ``sig`` field, when the payload carries one (signed payloads)."""
    if sig is not None:
        out["sig"] = sig
    return out


def _sig_of(data: dict[str, Any]) -> str | None:
    """The optional ``sig`` field of a signed payload (checked by the receiver, not here)."""
    sig = data.get("sig")
    if sig is not None and not isinstance(sig, str):
        raise PayloadError("field 'sig' has the wrong type")
    return sig


def _reject_constant(name: str) -> Any:
    raise PayloadError(f"non-finite number {name}")


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in data:
        raise PayloadError(f"missing field {name!r}")
    value = data[name]
    if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
        raise PayloadError(f"field {name!r} has the wrong type")
    if not isinstance(value, kind):
        raise PayloadError(f"field {name!r} has the wrong type")
    return value


def _one_of(data: dict[str, Any], name: str, allowed: tuple[str, ...], what: str) -> str:
    """A text field that must be one of ``allowed`` (``what`` names it in the error)."""
    value: str = _field(data, name, str)
    if value not in allowed:
        raise PayloadError(f"unknown {what} {value!r}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _time(data: dict[str, Any], name: str) -> datetime:
    value = _field(data, name, str)
    try:
        return parse_utc(value)
    except ValueError:
        raise PayloadError(f"field {name!r} is not an ISO-8601 UTC time") from None


def _finite(data: dict[str, Any], name: str, *, minimum: float | None = None) -> float:
    value = float(_field(data, name, (int, float)))
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        raise PayloadError(f"field {name!r} out of range")
    return value


def _run(data: dict[str, Any]) -> tuple[str, int]:
    """``boot`` (a run id of the bridge) and ``n`` (a message's number in that run, from 1)."""
    boot = _field(data, "boot", str)
    if not _BOOT_RE.fullmatch(boot):
        raise PayloadError("field 'boot' is not a run id")
    n = _seq(data, "n")
    if n < 1:
        raise PayloadError("field 'n' out of range")
    return boot, n


def _seq(data: dict[str, Any], name: str = "seq") -> int:
    value = _field(data, name, int)
    if value < 0 or value > 2**53:
        raise PayloadError(f"field {name!r} out of range")
    return int(value)
