"""bench/peers.py still runs against a real PostgreSQL and prints what it promises (tiny
sizes; the figures themselves are not judged here, only that they are there and that
both queues kept their one-per-key promise).

The server is ``CALLGATE_TEST_DATABASE_URL`` (an admin URL: the bench creates and drops
its own databases), else the local default; without one the test skips on a laptop and
fails in CI (see ``tests/pg.py``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import pg

BENCH = Path(__file__).resolve().parents[2] / "bench" / "peers.py"


@pytest.mark.slow
def test_peers_bench() -> None:
    pg.require()
    if shutil.which("pgbench") is None:
        pytest.fail("pgbench is not on PATH (Debian: postgresql-client)")
    args = ["--database", pg.admin_url(), "--jobs", "200", "--keys", "20", "--workers", "2"]
    args += ["--concurrency", "4", "--pgbench-seconds", "1"]
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
    ours = doc["callgate"]
    assert ours["jobs_per_s"] > 0
    assert ours["statuses"] == {"delivered": 200}
    assert (ours["jobs_seen"], ours["keys_seen"]) == (200, 20)
    assert (ours["keys_with_overlap"], ours["fifo_violations"]) == (0, 0)
    assert ours["worker_failures"] == []
    assert doc["ratio_callgate_vs_procrastinate"] > 0
