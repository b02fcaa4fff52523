"""The database schema: ``callgate migrate``."""

from __future__ import annotations

from callgate.store import open_store


def migrate(database_url: str) -> list[str]:
    """Apply the migrations not yet applied to ``database_url``; their names."""
    store = open_store(database_url, migrate=False)
    try:
        return store.migrate()
    finally:
        store.close()
