"""PostgreSQL helpers for the bench scripts: a fresh database per run, pgbench TPS."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _admin(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.encode())


@contextmanager
def fresh_database(admin_url: str, purpose: str) -> Iterator[str]:
    """A new, empty database next to ``admin_url``'s, dropped afterwards."""
    name = f"callgate_bench_{purpose}_{os.getpid()}"
    _admin(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _admin(admin_url, f"CREATE DATABASE {name}")
    try:
        yield with_database(admin_url, name)
    finally:
        _admin(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pgbench_tps(admin_url: str, *, seconds: float, clients: int = 8) -> float:
    """pgbench's simple-update TPS (``-N``) on a scratch database: what this server does
    with small write transactions, as a physical reference."""
    if shutil.which("pgbench") is None:
        raise SystemExit("pgbench is not installed")
    with fresh_database(admin_url, "pgbench") as url, tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["pgbench", "-i", "-q", url], check=True, capture_output=True, cwd=tmp)
        out = subprocess.run(
            [
                "pgbench",
                "-N",
                "-c",
                str(clients),
                "-j",
                "2",
                "-T",
                str(max(1, round(seconds))),
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=tmp,
        ).stdout
    found = re.search(r"tps = ([0-9.]+)", out)
    if found is None:
        raise SystemExit(f"cannot read pgbench's output:\n{out}")
    return float(found.group(1))
