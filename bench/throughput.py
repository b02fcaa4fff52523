"""Throughput: N jobs over K numbers, simulator at zero latency, rate unlimited.

    python bench/throughput.py [--jobs 50000] [--numbers 1000]
    python bench/throughput.py --database postgresql://postgres@127.0.0.1/test --workers 4

On SQLite (the default) one in-process worker runs, and SQLite's raw commit rate from
the same run is printed as the physical reference. With ``--database
postgresql://...`` (an admin URL: a fresh database is made beside it and dropped
afterwards) the jobs are submitted first, then ``--workers`` ``callgate worker --drain``
processes run them; the processing rate is taken from the database's own event times
(first claim to last delivery), so process start-up does not count, and pgbench's
simple-update TPS from the same run is the physical reference.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, peak_rss_mb, sqlite_commit_rate
from _pg import fresh_database, pgbench_tps

from callgate.config import Settings
from callgate.domain import JobSpec, make_spec
from callgate.gateway import Gateway
from callgate.store import open_store
from callgate.testing import GUARDRAILS_OFF, GUARDRAILS_OFF_ENV


def numbers(k: int) -> list[str]:
    return [f"+1212555{i:04d}" for i in range(k)]


def make_specs(n: int, k: int) -> list[JobSpec]:
    nums = numbers(k)
    return [make_spec("sms", to=nums[i % k], body=f"reminder {i}") for i in range(n)]


def run(n: int, k: int) -> dict[str, Any]:
    """One in-process worker on a SQLite file."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/bench.db",
            rate=0,
            max_concurrency=k,
            claim_batch=k,
            idle_poll=0.05,
            **GUARDRAILS_OFF,  # a load test: see docs/guardrails.md
        )
        gw = Gateway(settings)
        specs = make_specs(n, k)
        t0 = time.perf_counter()
        for i in range(0, n, 5000):
            gw.submit_many(specs[i : i + 5000])
        submit_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        worker = asyncio.run(gw.run_worker(drain=True))
        work_s = time.perf_counter() - t1
        counts = gw.store.counts()
        gw.close()
    assert counts["delivered"] == n, counts
    return {
        "backend": "sqlite",
        "workers": 1,
        "jobs": n,
        "numbers": k,
        "submit_s": round(submit_s, 3),
        "submit_jobs_per_s": round(n / submit_s),
        "process_s": round(work_s, 3),
        "process_jobs_per_s": round(n / work_s),
        "end_to_end_jobs_per_s": round(n / (submit_s + work_s)),
        "sent": worker.stats.sent,
    }


def run_processes(url: str, n: int, k: int, workers: int, concurrency: int) -> dict[str, Any]:
    """Submit everything, then ``workers`` worker processes drain it."""
    store = open_store(url)
    specs = make_specs(n, k)
    t0 = time.perf_counter()
    for i in range(0, n, 5000):
        store.submit(specs[i : i + 5000], time.time())
    submit_s = time.perf_counter() - t0
    env = os.environ | {
        "CALLGATE_DATABASE_URL": url,
        "CALLGATE_RATE": "0",
        "CALLGATE_MAX_CONCURRENCY": str(k),
        "CALLGATE_CLAIM_BATCH": str(concurrency),
        "CALLGATE_IDLE_POLL": "0.05",
        **GUARDRAILS_OFF_ENV,
    }
    t1 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "callgate", "worker", "--drain"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    errors = [p.communicate()[1] for p in procs]
    wall_s = time.perf_counter() - t1
    if any(p.returncode for p in procs):
        raise SystemExit("a worker failed:\n" + "\n".join(errors))
    [(first, last)] = store._read(  # type: ignore[attr-defined]
        "SELECT (SELECT min(created_at) FROM events WHERE type = 'job.in_flight'), "
        "(SELECT max(created_at) FROM events WHERE type = 'job.delivered')"
    )
    counts = store.counts()
    store.close()
    assert counts["delivered"] == n, counts
    process_s = last - first
    return {
        "backend": "postgresql",
        "workers": workers,
        "jobs": n,
        "numbers": k,
        "submit_s": round(submit_s, 3),
        "submit_jobs_per_s": round(n / submit_s),
        "process_s": round(process_s, 3),
        "process_jobs_per_s": round(n / process_s),
        "wall_s_incl_startup": round(wall_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--numbers", type=int, default=1_000)
    parser.add_argument("--database", help="postgresql://... admin URL (default: SQLite)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--claim-batch", type=int, default=500)
    parser.add_argument(
        "--raw-seconds", type=float, default=2.0, help="how long to measure the reference"
    )
    args = parser.parse_args()
    if args.database is None:
        result = run(args.jobs, args.numbers)
        raw = sqlite_commit_rate(args.raw_seconds)
        result["sqlite_raw_commits_per_s"] = round(raw)
        result["ratio_process_vs_raw_commit"] = round(result["process_jobs_per_s"] / raw, 3)
        result["target_jobs_per_s"] = 5000
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        emit(result)
        return
    runs = []
    for w in args.workers:
        with fresh_database(args.database, "throughput") as url:
            runs.append(run_processes(url, args.jobs, args.numbers, w, args.claim_batch))
    tps = pgbench_tps(args.database, seconds=args.raw_seconds)
    for r in runs:
        r["ratio_process_vs_pgbench_tps"] = round(r["process_jobs_per_s"] / tps, 3)
    emit({"runs": runs, "pgbench_simple_update_tps": round(tps), "target_jobs_per_s": 5000})


if __name__ == "__main__":
    main()
