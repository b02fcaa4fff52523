"""bench/chaos.py --quick: the five chaos scenarios of the public job-queue benchmark,
seconds each, on a PostgreSQL cluster the script starts itself (``initdb``; never the
shared server). Judged here: the guarantees (nothing lost, nothing sent twice, never two
calls to one number at once, every job explainable, no worker crashed), not the timings
of a shared machine; the figures are only checked to be there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from callgate.testing import pg_bindir

BENCH = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"
SCENARIOS = {
    "crash_recovery",
    "repeated_kills",
    "postgres_restart",
    "backend_kill",
    "pool_exhaustion",
}
FIELDS = {"jobs_lost", "double_sends", "group_overlaps", "recovery_s", "throughput", "passed"}


@pytest.mark.slow
def test_chaos_bench_quick() -> None:
    if pg_bindir() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("initdb is not installed (Debian: postgresql)")
        pytest.skip("initdb is not installed: no PostgreSQL server of our own")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    assert set(doc["scenarios"]) == SCENARIOS
    for name, result in doc["scenarios"].items():
        assert result.keys() >= FIELDS, name
        assert {"warmup", "baseline", "fault", "recovery"} <= result["throughput"].keys()
        assert {"p50", "p95", "p99"} <= result["claim_latency_ms"]["baseline"].keys()
        assert result["jobs_lost"] == 0, (name, result["jobs"])
        assert result["double_sends"] == 0, (name, result)
        assert result["group_overlaps"] == 0, name
        assert result["jobs"]["unexplained"] == 0, (name, result["jobs"])
        assert result["jobs"]["accepted"] > 0, name
        assert result["worker_tracebacks"] == [], name
        assert result["workers_alive_at_end"], name
        assert result["guarantees_held"], name
    assert doc["guarantees_held"]
