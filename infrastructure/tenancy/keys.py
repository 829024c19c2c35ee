"""API keys: their format, how their secret is stored, and how one is checked.

A key reads `brk_<key id>_<secret>`: the key id (12 hex digits) finds the row
without scanning, the secret (256 random bits) proves possession. Only the
SHA-256 of the secret is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_PREFIX = "brk"
_KEY = re.compile(r"brk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class IssuedKey:
    """A new key: `raw` is shown once and never stored."""

    key_id: str
    raw: str
    secret_hash: bytes


def issue_key() -> IssuedKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)  # 32 bytes: 43 url-safe characters
    return IssuedKey(key_id, f"{KEY_PREFIX}_{key_id}_{secret}", hash_secret(secret))


def hash_secret(secret: str) -> bytes:
    """SHA-256 of the secret.

    A fast hash is right here, unlike for passwords: the secret is 256 bits from
    the OS's random source, so there is no dictionary to try and no shortcut
    through the hash; a slow hash (bcrypt, argon2) only protects low-entropy
    secrets, and would cost every API request tens of milliseconds.
    """
    return hashlib.sha256(secret.encode()).digest()


def split_key(raw_key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, None for anything else."""
    found = _KEY.fullmatch(raw_key.strip())
    return (found.group(1), found.group(2)) if found else None


_NO_SUCH_KEY = hash_secret("no such key")


def secret_matches(secret: str, stored_hash: bytes | None) -> bool:
    """Whether `secret` is the one whose hash is stored, in constant time.

    With no stored hash (an unknown or revoked key id) the comparison is still
    made, against a fixed hash, so the time taken does not tell a caller which
    key ids exist.
    """
    matches = hmac.compare_digest(hash_secret(secret), stored_hash or _NO_SUCH_KEY)
    return matches and stored_hash is not None
