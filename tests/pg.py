"""PostgreSQL for the tests: the server to use (or a clear skip), and a fresh database per
test.

The server is ``CALLGATE_TEST_DATABASE_URL`` (an admin URL, e.g.
``postgresql://postgres@127.0.0.1:5432/test``), else that local default. Without a
server the PostgreSQL tests skip with the reason, except under ``CI=true``, where a
missing server fails them: CI must not pass by skipping.

Each test gets a database in exactly the state a new migrated one has. Cloning one per
test (``CREATE DATABASE ... TEMPLATE``) costs seconds here, since it syncs files to disk,
so clones are made once, kept in a pool, and brought back to the template's state
between tests: every row deleted, the template's rows (the meter's) copied back and the
sequences reset. Test databases commit without waiting for the disk
(``synchronous_commit = off``): a committed transaction is still visible to every
session and survives any client crash, which is what the tests rely on.
"""

from __future__ import annotations

import functools
import itertools
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def admin_url() -> str:
    return os.environ.get("CALLGATE_TEST_DATABASE_URL") or DEFAULT_URL


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@functools.cache
def unavailable() -> str | None:
    """Why PostgreSQL cannot be used here (None: it can)."""
    try:
        with psycopg.connect(admin_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL at {admin_url()} ({str(exc).strip().splitlines()[0]})"
    return None


def require() -> None:
    """Skip (or, in CI, fail) the calling test when there is no server."""
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI needs it (set CALLGATE_TEST_DATABASE_URL)")
    pytest.skip(f"{reason}; set CALLGATE_TEST_DATABASE_URL to run the PostgreSQL tests")


def admin(*statements: str) -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql.encode())


class Databases:
    """Test databases for one session: clones of a migrated template, reused."""

    def __init__(self) -> None:
        self.prefix = f"callgate_t{os.getpid()}"
        self.template = f"{self.prefix}_template"
        self._n = itertools.count(1)
        self._free: list[str] = []
        self._made: list[str] = []
        admin(
            f"DROP DATABASE IF EXISTS {self.template} WITH (FORCE)",
            f"CREATE DATABASE {self.template}",
        )
        from callgate.store.postgres import PostgresStore

        PostgresStore(with_database(admin_url(), self.template)).close()
        self._snapshot = _snapshot(with_database(admin_url(), self.template))

    def fresh(self, *, migrated: bool = True) -> str:
        """The URL of a database as a new migrated one is (or an empty one)."""
        if not migrated:
            return self._create("template0")
        if not self._free:
            return self._create(self.template)
        name = self._free.pop()
        url = with_database(admin_url(), name)
        _restore(url, self._snapshot)
        return url

    def _create(self, template: str) -> str:
        name = f"{self.prefix}_{next(self._n)}"
        admin(
            f"CREATE DATABASE {name} TEMPLATE {template}",
            f"ALTER DATABASE {name} SET synchronous_commit = off",
        )
        self._made.append(name)
        return with_database(admin_url(), name)

    def drop(self, url: str) -> None:
        """The test is done with it: back to the pool."""
        name = database_of(url)
        admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid != pg_backend_pid()"
        )
        self._free.append(name)

    def close(self) -> None:
        admin(*(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)" for n in [*self._made, self.template]))
        self._made.clear()
        self._free.clear()


Snapshot = tuple[dict[str, list[tuple[Any, ...]]], dict[str, tuple[int, bool]]]


def _snapshot(url: str) -> Snapshot:
    """The template's rows per table and its sequences' positions."""
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        rows = {t: [tuple(r) for r in conn.execute(f"SELECT * FROM {t}")] for t in tables}
        sequences = {
            name: (int(last or 1), bool(called))
            for name, last, called in [
                (s, *conn.execute(f"SELECT last_value, is_called FROM {s}").fetchone())
                for (s,) in conn.execute(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
                ).fetchall()
            ]
        }
    return rows, sequences


def _restore(url: str, snapshot: Snapshot) -> None:
    rows, sequences = snapshot
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")  # no FK order, no triggers
        for table, content in rows.items():
            conn.execute(f"DELETE FROM {table}".encode())
            if content:
                marks = ", ".join(["%s"] * len(content[0]))
                conn.cursor().executemany(f"INSERT INTO {table} VALUES ({marks})", content)
        for name, (last, called) in sequences.items():
            conn.execute("SELECT setval(%s, %s, %s)", (name, last, called))
