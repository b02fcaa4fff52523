"""Shared helpers for the bench scripts (each prints one JSON document on stdout)."""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from typing import Any


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sqlite_commit_rate(seconds: float = 2.0, synchronous: str = "NORMAL") -> float:
    """SQLite's raw rate of small write transactions (one-row INSERT + COMMIT) on this disk."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(os.path.join(tmp, "raw.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (v) VALUES ('x')")
            conn.execute("COMMIT")
            n += 1
        elapsed = time.perf_counter() - start
        conn.close()
    return n / elapsed


def emit(doc: dict[str, Any]) -> None:
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
