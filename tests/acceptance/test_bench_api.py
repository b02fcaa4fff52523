"""bench/api.py still runs against a real ``callgate serve`` and prints what it promises
(tiny sizes; the figures themselves are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import pg

BENCH = Path(__file__).resolve().parents[2] / "bench" / "api.py"


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_api_bench(database: str) -> None:
    args = ["--seconds", "0.5", "--warmup", "0", "--concurrency", "2"]
    args += ["--rate", "20", "--connections", "2", "--numbers", "5", "--dashboard", "1"]
    if database == "postgresql":
        pg.require()
        args += ["--database", pg.admin_url()]  # a database of its own beside this one
    done = subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["database"] == database
    assert doc["cpu_count"] >= 1
    for phase in ("max_throughput", "fixed_rate"):
        figures = doc[phase]
        assert figures["requests"] > 0
        assert figures["errors"] == 0, figures
        assert {"req_per_s", "p50_ms", "p99_ms"} <= figures.keys()
    assert doc["fixed_rate"]["requests"] == 10
    # the same closed loop with a dashboard tab open: its first page came back
    with_dashboard = doc["max_throughput_with_dashboard"]
    assert with_dashboard["requests"] > 0
    assert with_dashboard["errors"] == 0, with_dashboard
    assert with_dashboard["dashboard"]["pages"] >= 1
    assert set(with_dashboard["dashboard"]["statuses"]) == {"200"}
    assert sum(doc["jobs_by_status_at_end"].values()) >= 10
    assert {"meets_req_per_s", "meets_p99_at_rate"} <= doc.keys()
