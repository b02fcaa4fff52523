"""Metering accuracy in real time: a configured rate with work always waiting, judged
from the simulator's call log alone (not from callgate's own tables).

Submits more SMS jobs than the rate can send in the run, over >= 1,000 numbers, runs one
worker on the system clock for ``--seconds`` and then stops it. From the log's
``started_at`` it reports the achieved rate over the steady part (the first and last
second trimmed) and its deviation from the configured rate (target within 1 %), and the
most calls in any half-open one-second window ``[t, t + 1)`` (target <= rate).

    python bench/metering.py [--rate 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, peak_rss_mb

from callgate.config import Settings
from callgate.engine.worker import Worker
from callgate.gateway import Gateway
from callgate.testing import GUARDRAILS_OFF

TRIM_S = 1.0  # warm-up and shutdown, left out of the steady-state rate


def numbers(k: int) -> list[str]:
    return [f"+1212555{i:04d}" for i in range(k)]


def read_starts(path: str, only: set[int] | None = None) -> tuple[list[float], int]:
    """Sorted ``started_at`` of every logged call (of the jobs ``only``, if given), and
    how many job ids appear twice."""
    starts: list[float] = []
    jobs: Counter[int] = Counter()
    with open(path) as log:
        for line in log:
            call = json.loads(line)
            if only is not None and call["job_id"] not in only:
                continue
            starts.append(float(call["started_at"]))
            jobs[call["job_id"]] += 1
    starts.sort()
    return starts, sum(1 for n in jobs.values() if n > 1)


def rate_over(starts: list[float]) -> tuple[float, float]:
    """(calls per second, span): the n - 1 gaps between n starts over their span."""
    if len(starts) < 2:
        return 0.0, 0.0
    span = starts[-1] - starts[0]
    return (len(starts) - 1) / span, span


def max_in_window(starts: list[float], width: float = 1.0) -> tuple[int, float]:
    """Most calls in any ``[t, t + width)`` with t sliding over every start; and that t."""
    best, at = 0, starts[0] if starts else 0.0
    for i, t in enumerate(starts):
        n = bisect.bisect_left(starts, t + width, lo=i) - i
        if n > best:
            best, at = n, t
    return best, at


async def drive(gw: Gateway, seconds: float) -> tuple[Worker, float]:
    worker = gw.worker()
    asyncio.get_running_loop().call_later(seconds, worker.stop)
    t0 = time.perf_counter()
    await worker.run()
    return worker, time.perf_counter() - t0


def run(rate: float, seconds: float, jobs: int, k: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "simulator.jsonl")
        settings = Settings(
            database_url=f"sqlite:///{tmp}/bench.db",
            rate=rate,
            simulator_latency=0.0,
            simulator_log=Path(log_path),
            **GUARDRAILS_OFF,  # a load test: see docs/guardrails.md
        )
        gw = Gateway(settings)
        nums = numbers(k)
        specs = [gw.spec("sms", to=nums[i % k], body=f"reminder {i}") for i in range(jobs)]
        for i in range(0, jobs, 5000):
            gw.submit_many(specs[i : i + 5000])
        worker, run_s = asyncio.run(drive(gw, seconds))
        asyncio.run(gw.provider.aclose())
        counts = gw.store.counts()
        gw.close()
        starts, duplicated = read_starts(log_path)

    full_rate, full_span = rate_over(starts)
    lo = bisect.bisect_left(starts, starts[0] + TRIM_S) if starts else 0
    hi = bisect.bisect_left(starts, starts[-1] - TRIM_S) if starts else 0
    steady = starts[lo:hi]
    steady_rate, steady_span = rate_over(steady)
    window_max, window_at = max_in_window(starts)
    effective = rate * (1 - worker.meter.margin)
    return {
        "configured_rate_per_s": rate,
        "meter_margin": worker.meter.margin,
        "meter_slot_rate_per_s": round(effective, 3),
        "seconds_requested": seconds,
        "worker_run_s": round(run_s, 3),
        "jobs_submitted": jobs,
        "numbers": k,
        "source": "simulator log (started_at) only",
        "calls": len(starts),
        "duration_s": round(full_span, 3),
        "achieved_rate_per_s": round(full_rate, 3),
        "deviation_pct": round(100 * (full_rate - rate) / rate, 3),
        "steady_trim_s": TRIM_S,
        "steady_calls": len(steady),
        "steady_duration_s": round(steady_span, 3),
        "steady_rate_per_s": round(steady_rate, 3) if len(steady) > 1 else None,
        "steady_deviation_pct": (
            round(100 * (steady_rate - rate) / rate, 3) if len(steady) > 1 else None
        ),
        "rate_formula": "(calls - 1) / (last started_at - first started_at)",
        "deviation_target_pct": 1.0,
        "max_calls_in_1s_window": window_max,
        "max_window_start_offset_s": round(window_at - starts[0], 3) if starts else None,
        "window_target_max": math.floor(rate),
        "job_ids_called_twice": duplicated,
        "worker_stats": {
            "claimed": worker.stats.claimed,
            "sent": worker.stats.sent,
            "finished": worker.stats.finished,
            "reslotted": worker.stats.reslotted,
            "outcomes": {str(o): n for o, n in worker.stats.outcomes.items()},
        },
        "reslotted": worker.stats.reslotted,
        "store_counts": {s: n for s, n in counts.items() if n},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--numbers", type=int, default=1_000)
    parser.add_argument(
        "--jobs", type=int, default=0, help="jobs to queue (default: 1.25 × rate × seconds)"
    )
    args = parser.parse_args()
    jobs = args.jobs or max(5_000, math.ceil(1.25 * args.rate * args.seconds))
    result = run(args.rate, args.seconds, jobs, args.numbers)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(result)


if __name__ == "__main__":
    main()
