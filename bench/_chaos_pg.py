"""bench/chaos.py's PostgreSQL: a cluster of its own (``initdb`` + ``pg_ctl`` in a
temporary directory, on a free port) that it may stop, restart, flood with idle
connections and whose backends it may terminate; the shared server is never touched.

As root the server's commands run as the ``postgres`` user (``runuser``): PostgreSQL
refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from callgate.testing import free_port

#: connections the cluster accepts: pool_exhaustion's idle crowd plus callgate's own
MAX_CONNECTIONS = 340
#: application_name of every connection callgate's processes open (workers, producer)
CALLGATE_APP = "callgate-chaos"


def bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise SystemExit("initdb is not installed (Debian: postgresql): no server of our own")
    return Path(initdb).parent


class Cluster:
    """A throw-away PostgreSQL server with a ``callgate`` database."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        self.bindir = bindir()
        self.port = free_port()
        self.max_connections = max_connections
        self.dir = Path(tempfile.mkdtemp(prefix="callgate-chaos-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE callgate")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, app: str = CALLGATE_APP) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/callgate?application_name={app}"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c max_connections={self.max_connections} "
            "-c shared_buffers=64MB"
        )
        log = str(self.dir / "log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: sessions are disconnected, transactions rolled back."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

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
