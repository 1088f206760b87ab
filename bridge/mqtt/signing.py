"""HMAC-SHA256 signatures on control payloads (``mains``, commands): the one place they are made.

The signature is ``sig = hex(HMAC-SHA256(key, canonical JSON of the signed body))``.
What the body is depends on the kind of message (docs/mqtt-contract.md, "Signatures"):

* ``mains``: the payload without ``sig`` (:func:`sign`, :func:`verify`);
* commands, to a bridge or to a client: the payload without ``sig`` plus
  ``"topic": <the topic>`` (:func:`command_signing_body`, :func:`sign_command`,
  ``verify(..., topic=...)``), so a signed ``cancel`` cannot be replayed as
  ``shutdown_now``, nor a command for one bridge or client sent to another.

Verification is constant-time.  Replay protection (sequence numbers, nonces,
timestamp windows) is the verifier's job and lives with it
(:mod:`bridge.mqtt.commands`, :mod:`bridge.shutdown.intake`).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

from bridge.errors import ConfigError, ConfigProblem
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


def configured_key(key_file: str | None, source: str) -> bytes | None:
    """The key of a configuration's ``signing.key_file`` (``None`` when unset); an
    unreadable or short key is a :class:`~bridge.errors.ConfigError` naming ``source``."""
    if not key_file:
        return None
    try:
        return load_key(key_file)
    except SigningKeyError as exc:
        problem = ConfigProblem(source, None, "signing.key_file", str(exc))
        raise ConfigError([problem]) from None


def command_signing_body(topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What a *client* command's ``sig`` covers: the payload without ``sig``, plus its topic.

    ``sig = hex(HMAC-SHA256(key, canonical JSON of {…payload without "sig", "topic": topic}))``.
    The topic is not sent; binding it stops a signed command from being replayed under
    another name (``cancel`` → ``shutdown_now``) or to another client.
    """
    body = {k: v for k, v in payload.items() if k != "sig"}
    body["topic"] = topic
    return body


def signature(key: bytes, payload: dict[str, Any], *, topic: str | None = None) -> str:
    """The hex signature of ``payload`` (its ``sig`` field, if any, is ignored).

    With ``topic``, the signature also covers the topic (:func:`command_signing_body`).
    """
    body = {k: v for k, v in payload.items() if k != "sig"}
    if topic is not None:
        body = command_signing_body(topic, body)
    return hmac.new(key, dumps(body), hashlib.sha256).hexdigest()


def sign(key: bytes, payload: dict[str, Any], *, topic: str | None = None) -> dict[str, Any]:
    """A copy of ``payload`` with its ``sig`` field set (bound to ``topic`` if given)."""
    return {**payload, "sig": signature(key, payload, topic=topic)}


def sign_command(key: bytes, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of a client command with its ``sig`` set (for Home Assistant, tools and tests)."""
    return sign(key, payload, topic=topic)


def verify(key: bytes, payload: dict[str, Any], *, topic: str | None = None) -> bool:
    """Whether ``payload`` carries a valid signature made with ``key`` (bound to ``topic``)."""
    sig = payload.get("sig")
    if not isinstance(sig, str):
        return False
    return hmac.compare_digest(sig, signature(key, payload, topic=topic))
