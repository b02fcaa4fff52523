"""End-to-end throughput on the embedded store: N jobs over K numbers, simulator at zero
latency, rate unlimited. Prints jobs/s and SQLite's raw commit rate from the same run.

    python bench/throughput.py [--jobs 50000] [--numbers 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, peak_rss_mb, sqlite_commit_rate

from callgate.config import Settings
from callgate.gateway import Gateway


def numbers(k: int) -> list[str]:
    return [f"+1212555{i:04d}" for i in range(k)]


def make_jobs(gw: Gateway, n: int, k: int) -> list:  # type: ignore[type-arg]
    nums = numbers(k)
    return [gw.spec("sms", to=nums[i % k], body=f"reminder {i}") for i in range(n)]


def run(n: int, k: int, *, queued_extra: int = 0) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/bench.db",
            rate=0,
            max_concurrency=k,
            claim_batch=k,
            idle_poll=0.05,
        )
        gw = Gateway(settings)
        specs = make_jobs(gw, n, k)
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
        "jobs": n,
        "numbers": k,
        "submit_s": round(submit_s, 3),
        "submit_jobs_per_s": round(n / submit_s),
        "process_s": round(work_s, 3),
        "process_jobs_per_s": round(n / work_s),
        "end_to_end_jobs_per_s": round(n / (submit_s + work_s)),
        "sent": worker.stats.sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--numbers", type=int, default=1_000)
    parser.add_argument(
        "--raw-seconds",
        type=float,
        default=2.0,
        help="how long to measure SQLite's raw commit rate",
    )
    args = parser.parse_args()
    result = run(args.jobs, args.numbers)
    raw = sqlite_commit_rate(args.raw_seconds)
    result["sqlite_raw_commits_per_s"] = round(raw)
    result["ratio_process_vs_raw_commit"] = round(result["process_jobs_per_s"] / raw, 3)
    result["target_jobs_per_s"] = 5000
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(result)


if __name__ == "__main__":
    main()
