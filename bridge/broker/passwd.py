"""Mosquitto 2.0 password file entries, without needing ``mosquitto_passwd``.

Mosquitto 2.0 stores ``user:$7$<iterations>$<salt b64>$<hash b64>`` where the
hash is PBKDF2-HMAC-SHA512 (see mosquitto's ``src/password_mosq.c``, format
``pw_sha512_pbkdf2``).  It accepts any iteration count; 101 is its own default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

ITERATIONS = 101
SALT_BYTES = 12


def hash_entry(username: str, password: str, *, iterations: int = ITERATIONS) -> str:
    """One line for a Mosquitto password file."""
    if ":" in username or not username:
        raise ValueError("a user name must be non-empty and contain no ':'")
    salt = os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    salt64 = base64.b64encode(salt).decode()
    hash64 = base64.b64encode(digest).decode()
    return f"{username}:$7${iterations}${salt64}${hash64}"


def verify_entry(line: str, username: str, password: str) -> bool:
    """Whether ``line`` is ``username``'s entry and matches ``password``."""
    user, _, rest = line.strip().partition(":")
    parts = rest.split("$")
    if user != username or len(parts) != 5 or parts[1] != "7":
        return False
    iterations = int(parts[2])
    salt = base64.b64decode(parts[3])
    expected = base64.b64decode(parts[4])
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(digest, expected)


def new_password() -> str:
    """A random password: 32 URL-safe characters (~190 bits)."""
    return secrets.token_urlsafe(24)
