"""The embedded store: one SQLite file in WAL mode, safe for several processes.

SQLite serialises writers itself (``BEGIN IMMEDIATE``); every write is one short
transaction, and the worker batches its writes (group commit) to amortise the commit.
The queue operations themselves are :class:`~callgate.store.sql.SQLStore`'s.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from callgate.exceptions import ConfigurationError, StoreError
from callgate.store.sql import SQLStore, migrations
from callgate.store.sql_tx import Conn

log = logging.getLogger("callgate.store")


def parse_url(url: str) -> str:
    """``sqlite:///rel.db`` → ``rel.db``; ``sqlite:////abs.db`` → ``/abs.db``."""
    rest = url.removeprefix("sqlite:")
    if rest in ("", "//", "///:memory:", "//:memory:", ":memory:"):
        return ":memory:"
    if not rest.startswith("///"):
        raise ConfigurationError(
            f"invalid SQLite URL {url!r}: expected sqlite:///PATH", field="database_url"
        )
    return rest[3:]


#: the database holds webhook signing secrets and every job: only its owner may read it
FILE_MODE = 0o600
_COMPANIONS = ("", "-wal", "-shm", "-journal")


def _private(path: str) -> None:
    """Create the database file ``FILE_MODE`` (not world-readable under the usual umask)
    and bring it and its companions (``-wal``, ``-shm``, ``-journal``) to that mode on
    every open; a file callgate does not own is left as it is, with a warning.

    An existing file is never opened here: closing a descriptor of a database file drops
    every POSIX lock this process holds on it, the locks of its open connections too."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot open database {path!r}: {exc}") from exc
    for suffix in _COMPANIONS:
        name = path + suffix
        try:
            if os.stat(name).st_mode & 0o777 != FILE_MODE:
                os.chmod(name, FILE_MODE)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not make %s private (mode %o): %s", name, FILE_MODE, exc)


class SQLiteStore(SQLStore):
    """The Store on one SQLite file (see :class:`callgate.store.base.Store`)."""

    INDEXED_BY = True

    def __init__(self, path: str, *, migrate: bool = True, synchronous: str = "NORMAL") -> None:
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _private(path)
        try:
            self._conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute(f"PRAGMA synchronous = {synchronous}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute("PRAGMA busy_timeout = 30000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {path!r}: {exc}") from exc
        if path != ":memory:":
            _private(path)  # the -wal and -shm files exist now
        self._lock = threading.RLock()
        self._checkpointer: _Checkpointer | None = None
        if migrate:
            self.migrate()

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True) -> SQLiteStore:
        return cls(parse_url(url), migrate=migrate)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self._conn.close()

    def prepare_worker(self) -> None:
        """Tune for a long-running worker: a bigger page cache, and WAL checkpoints on a
        thread of their own instead of inside the worker's commits, where their fsync
        would stall the event loop (and with it the meter's timing)."""
        if self._checkpointer is not None or self.path == ":memory:":
            return
        with self._lock:
            self._conn.execute("PRAGMA cache_size = -65536")
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._checkpointer = _Checkpointer(self.path)

    # -- plumbing -----------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot start a transaction: {exc}") from exc
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"database error: {exc}") from exc
                raise

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"database error: {exc}") from exc

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied; return their names."""
        applied: list[str] = []
        with self._write() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            done = {r[0] for r in c.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in migrations("sqlite"):
                if version in done:
                    continue
                for statement in _split_sql(sql):
                    c.execute(statement)
                c.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (version, name, time.time()),
                )
                applied.append(name)
        return applied

    def _next_ids(self, c: Conn, n: int) -> list[int]:
        row = c.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
        last = int(row[0]) if row else 0
        return list(range(last + 1, last + n + 1))


class _Checkpointer:
    """Copies the WAL back into the database every second, from its own connection."""

    def __init__(self, path: str, interval: float = 1.0) -> None:
        self._stop = threading.Event()
        self._conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="callgate-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # busy or locked: the next round will do
                log.debug("checkpoint skipped: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self._conn.close()


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (``sqlite3.complete_statement`` knows triggers)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not current.strip():
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
