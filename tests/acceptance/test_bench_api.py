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
@pytest.mark.parametrize(
    ("database", "load"), [("sqlite", "httpx"), ("postgresql", "httpx"), ("postgresql", "wrk")]
)
def test_api_bench(database: str, load: str) -> None:
    args = ["--seconds", "0.5", "--warmup", "0", "--concurrency", "2"]
    args += ["--rate", "20", "--connections", "2", "--numbers", "5", "--load", load]
    args += ["--dashboard", "1"]
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
    assert (doc["database"], doc["load_generator"]) == (database, load)
    assert doc["cpu_count"] >= 1
    for phase in ("max_throughput", "fixed_rate"):
        figures = doc[phase]
        assert figures["requests"] > 0
        assert figures["errors"] == 0, figures
        assert {"req_per_s", "p50_ms", "p99_ms"} <= figures.keys()
    if load == "wrk":  # its own CPU, not this process's: a small share of the server's
        assert doc["max_throughput"]["client_cpu_s"] < doc["max_throughput"]["server_cpu_s"]
    assert doc["fixed_rate"]["requests"] == 10
    # the same closed loop with a dashboard tab open: its first page came back
    with_dashboard = doc["max_throughput_with_dashboard"]
    assert with_dashboard["requests"] > 0
    assert with_dashboard["errors"] == 0, with_dashboard
    assert with_dashboard["dashboard"]["pages"] >= 1
    assert set(with_dashboard["dashboard"]["statuses"]) == {"200"}
    assert sum(doc["jobs_by_status_at_end"].values()) >= 10
    assert {"meets_req_per_s", "meets_p99_at_rate"} <= doc.keys()


WRK_REPORT = """Running 4s test @ http://127.0.0.1:40807
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    50.12ms   20.01ms 142.76ms   70.00%
    Req/Sec     1.27k   100.00     1.40k    80.00%
  Latency Distribution
     50%   46.34ms
     75%   60.00ms
     90%   72.09ms
     99%  120.57ms
  5078 requests in 4.01s, 1.20MB read
  Non-2xx or 3xx responses: 3
  Socket errors: connect 0, read 1, write 0, timeout 2
Requests/sec:   1266.33
"""


def test_a_wrk_report_is_read() -> None:
    sys.path.insert(0, str(BENCH.parent))
    try:
        from api import parse_wrk  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(BENCH.parent))
    doc = parse_wrk(WRK_REPORT)
    assert (doc["requests"], doc["accepted_202"], doc["errors"]) == (5078, 5075, 6)
    assert (doc["seconds"], doc["req_per_s"]) == (4.01, 1266.3)
    assert (doc["p50_ms"], doc["p90_ms"], doc["p99_ms"], doc["max_ms"]) == (
        46.34,
        72.09,
        120.57,
        142.76,
    )
