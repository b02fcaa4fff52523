"""API keys for the HTTP API (tokens are shown once; only their hashes are stored)."""

from __future__ import annotations

import builtins
from collections.abc import Callable

from callgate import auth
from callgate.clock import Clock
from callgate.domain import ApiKey
from callgate.services.base import Service
from callgate.store.parts import KeysPart


class KeysService(Service[KeysPart]):
    def __init__(
        self,
        store: KeysPart,
        clock: Clock,
        changed: Callable[[], None],
        *,
        cache: auth.KeyCache | None = None,
    ) -> None:
        super().__init__(store, clock, changed)
        self.cache = cache or auth.KeyCache(clock, 0)

    def create(self, name: str) -> tuple[ApiKey, str]:
        """A new key and its token (shown once)."""
        return auth.create_key(self._store, name, self._clock.now())

    def list(self) -> builtins.list[ApiKey]:
        return self._store.api_keys()

    def revoke(self, key_id: str) -> bool:
        revoked = self._store.revoke_api_key(key_id, self._clock.now())
        self.cache.forget()  # this process's API stops taking it at once
        return revoked

    def ensure_first(self) -> tuple[str | None, str | None]:
        """The first key's token if none existed (else None), and the file it was also
        written to (SQLite: next to the database), if any."""
        path = getattr(self._store, "path", None)
        token = auth.ensure_first_key(self._store, path, self._clock.now())
        return token, (None if path is None else str(auth.key_file_for(path)))
