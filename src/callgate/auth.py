"""API keys: random bearer tokens, of which only a SHA-256 is stored.

A token is 32 random bytes (``cg_`` + URL-safe base64), so a plain SHA-256 is enough:
there is nothing to brute-force, and checking a request costs one hash and one lookup.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from callgate.clock import Clock
from callgate.domain import ApiKey, validate_label
from callgate.store.parts import KeysPart

TOKEN_PREFIX = "cg_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(store: KeysPart, name: str, now: float) -> tuple[ApiKey, str]:
    """Create a key; return it and its token (shown once, never stored). ``name`` says
    who uses it: 1-200 characters, not blank, no control characters."""
    validate_label(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(6)
    return store.add_api_key(key_id, name, hash_token(token), token[:8], now), token


def authenticate(store: KeysPart, token: str | None) -> ApiKey | None:
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    return store.api_key_by_hash(hash_token(token))


class KeyCache:
    """Valid keys by token hash, for ``ttl`` seconds of ``clock``: the API's look-ups on
    a store over the network (PostgreSQL) skip a trip per request. Unknown and revoked
    keys are never remembered; :meth:`forget` (a revocation in this process) drops all.
    A key revoked by another process still reads for up to ``ttl``; its submits are
    refused at once (the store checks the key in the submit's transaction)."""

    MAX = 10_000  # distinct keys remembered at once (past that: start again)

    def __init__(self, clock: Clock, ttl: float) -> None:
        self._clock, self._ttl = clock, ttl
        self._keys: dict[str, tuple[ApiKey, float]] = {}

    def get(self, token_hash: str) -> ApiKey | None:
        hit = self._keys.get(token_hash)
        if hit is None:
            return None
        if hit[1] <= self._clock.now():
            del self._keys[token_hash]
            return None
        return hit[0]

    def put(self, token_hash: str, key: ApiKey) -> None:
        if self._ttl <= 0:
            return
        if len(self._keys) >= self.MAX:
            self._keys.clear()
        self._keys[token_hash] = (key, self._clock.now() + self._ttl)

    def forget(self) -> None:
        self._keys.clear()


def key_file_for(database_path: str) -> Path:
    return Path(database_path + ".key")


def ensure_first_key(store: KeysPart, database_path: str | None, now: float) -> str | None:
    """On a database without keys, create one and write its token to a 0600 file beside
    the database; return the token (``None`` when keys exist already)."""
    if store.api_keys():
        return None
    _, token = create_key(store, "default", now)
    if database_path and database_path != ":memory:":
        path = key_file_for(database_path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        os.chmod(path, 0o600)
    return token
