"""Personal access tokens: random, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "lf"


def generate() -> str:
    return f"{PREFIX}{secrets.token_hex(20)}"


def hash_token(token: str) -> str:
    # Tokens carry 160 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()
