"""Persistence: the only code that speaks SQL. :func:`open_store` picks the backend."""

from __future__ import annotations

from callgate.exceptions import ConfigurationError
from callgate.store.base import Claimed, MeterPolicy, MeterState, SubmitResult
from callgate.store.parts import Store


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the store named by a database URL: ``sqlite:///path`` (the embedded default)
    or ``postgresql://user@host/db`` (many workers on many machines)."""
    if url.startswith("sqlite:"):
        from callgate.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(url, migrate=migrate)
    if url.startswith(("postgresql://", "postgres://")):
        from callgate.store.postgres import PostgresStore

        return PostgresStore.from_url(url, migrate=migrate)
    raise ConfigurationError(
        f"unsupported database URL {url.split(':', 1)[0]!r}: "
        "expected sqlite:///PATH or postgresql://USER@HOST/DATABASE",
        field="database_url",
    )


__all__ = ["Claimed", "MeterPolicy", "MeterState", "Store", "SubmitResult", "open_store"]
