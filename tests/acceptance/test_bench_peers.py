"""bench/peers.py still runs against a real PostgreSQL and prints what it promises (tiny
sizes; the figures themselves are not judged here, only that they are there and that
procrastinate kept its one-per-key promise).

The server is ``CALLGATE_TEST_DATABASE_URL`` (an admin URL: the bench creates and drops
its own databases), else 127.0.0.1:5432 as user postgres. Without a server the test is
skipped on a laptop and fails in CI (``CI=true``). callgate's side runs with
``--skip-callgate`` until ``open_store`` takes a ``postgresql://`` URL; then drop the flag
and assert ``doc["callgate"]`` like ``doc["procrastinate"]``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "peers.py"
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/test"


def missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: PostgreSQL is required here)")
    pytest.skip(reason)


def admin_url() -> str:
    """The server to run against, or skip (fail in CI) when there is none."""
    url = os.environ.get("CALLGATE_TEST_DATABASE_URL")
    if url:
        return url
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        missing("no PostgreSQL: set CALLGATE_TEST_DATABASE_URL or run one on 127.0.0.1:5432")
    return LOCAL_URL


@pytest.mark.slow
def test_peers_bench() -> None:
    url = admin_url()
    if shutil.which("pgbench") is None:
        missing("pgbench is not on PATH")
    args = ["--database", url, "--jobs", "200", "--keys", "20", "--workers", "2"]
    args += ["--concurrency", "4", "--pgbench-seconds", "1", "--skip-callgate"]
    done = subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    peer = doc["procrastinate"]
    assert doc["pgbench"]["tps"] > 0
    assert peer["jobs_per_s"] > 0
    assert peer["defer_jobs_per_s"] > 0
    assert peer["statuses"] == {"succeeded": 200}
    assert (peer["jobs_seen"], peer["keys_seen"]) == (200, 20)
    assert (peer["keys_with_overlap"], peer["fifo_violations"]) == (0, 0)
    assert peer["worker_failures"] == []
    assert doc["ratio_procrastinate_vs_pgbench_tps"] > 0
    assert doc["callgate"] is None
    assert doc["callgate_unavailable"] == "--skip-callgate"
