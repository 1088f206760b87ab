"""HMAC-SHA256 signatures on control payloads (``mains``, commands).

The signature is ``sig = hex(HMAC-SHA256(key, canonical JSON of the payload
without "sig"))``.  Verification is constant-time.  Replay protection (sequence
numbers, timestamp windows) is the verifier's job and lives with it.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

from bridge.mqtt.contract import dumps

KEY_MIN_BYTES = 16


class SigningKeyError(ValueError):
    """The key file is missing, unreadable or too short."""


def load_key(path: str | Path) -> bytes:
    """Read a shared key: the file's bytes, stripped of surrounding whitespace."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key {path}: {exc.strerror}") from None
    if len(key) < KEY_MIN_BYTES:
        raise SigningKeyError(f"signing key {path} is shorter than {KEY_MIN_BYTES} bytes")
    return key


def signature(key: bytes, payload: dict[str, Any]) -> str:
    """The hex signature of ``payload`` (its ``sig`` field, if any, is ignored)."""
    body = {k: v for k, v in payload.items() if k != "sig"}
    return hmac.new(key, dumps(body), hashlib.sha256).hexdigest()


def sign(key: bytes, payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``payload`` with its ``sig`` field set."""
    return {**payload, "sig": signature(key, payload)}


def verify(key: bytes, payload: dict[str, Any]) -> bool:
    """Whether ``payload`` carries a valid signature made with ``key``."""
    sig = payload.get("sig")
    if not isinstance(sig, str):
        return False
    return hmac.compare_digest(sig, signature(key, payload))
