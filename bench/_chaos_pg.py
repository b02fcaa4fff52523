"""bench/chaos.py's PostgreSQL: a cluster of its own (``initdb`` + ``pg_ctl`` in a
temporary directory, on a free port) that it may stop, restart, flood with idle
connections and whose backends it may terminate; the shared server is never touched.

As root the server's commands run as the ``postgres`` user (``runuser``): PostgreSQL
refuses to run as root.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from callgate.testing import PgCluster, pg_bindir

#: connections the cluster accepts: pool_exhaustion's idle crowd plus callgate's own
MAX_CONNECTIONS = 340
#: application_name of every connection callgate's processes open (workers, producer)
CALLGATE_APP = "callgate-chaos"


def bindir() -> Path:
    found = pg_bindir()
    if found is None:
        raise SystemExit("initdb is not installed (Debian: postgresql): no server of our own")
    return found


class Cluster(PgCluster):
    """A throw-away PostgreSQL server with a ``callgate`` database."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        super().__init__(
            bindir(),
            max_connections=max_connections,
            settings=("synchronous_commit=off", "shared_buffers=64MB"),
            prefix="callgate-chaos-pg-",
            timeout=120,
        )

    def url(self, app: str = CALLGATE_APP) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/callgate?application_name={app}"

    def terminate_callgate(self) -> int:
        """``pg_terminate_backend`` on every connection callgate holds; how many."""
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (CALLGATE_APP,),
            ).fetchall()
        return len(rows)

    def connections(self, app: str | None = None) -> int:
        """Client connections open now (of ``app``, if given)."""
        sql = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            if app is None:
                row = conn.execute(sql).fetchone()
            else:
                row = conn.execute(sql + " AND application_name = %s", (app,)).fetchone()
        return int(row[0]) if row else 0

    def wait_for_clients(self, n: int, timeout: float = 60.0) -> None:
        """Until callgate's processes hold ``n`` connections (workers that started)."""
        deadline = time.monotonic() + timeout
        while self.connections(CALLGATE_APP) < n and time.monotonic() < deadline:
            time.sleep(0.1)

    @contextlib.contextmanager
    def idle_crowd(self, n: int) -> Iterator[list[psycopg.Connection[object]]]:
        """``n`` idle connections held open by another client, then closed."""
        held: list[psycopg.Connection[object]] = []
        url = self.url("chaos-idle-crowd")
        lock = threading.Lock()

        def open_some(k: int) -> None:
            for _ in range(k):
                with contextlib.suppress(psycopg.Error):
                    conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
                    with lock:
                        held.append(conn)

        threads = [threading.Thread(target=open_some, args=(n // 10,)) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            yield held
        finally:
            for conn in held:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
