"""Batch metering in real time: a CSV of N rows submitted as one batch at ``--rate``
(with the global meter set higher, so that the batch's own rate is what binds), sent by
one or more workers on the system clock until the batch completes. Judged from the
simulator's call log alone: the achieved rate (over the whole batch and over its steady
part) and the most calls in any one-second window. Targets: the achieved rate within 1 %
of the batch's rate, and no window above it.

    python bench/batch_rate.py [--rows 10000] [--rate 200] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import io
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, peak_rss_mb
from metering import TRIM_S, max_in_window, rate_over, read_starts

from callgate.config import Settings
from callgate.gateway import Gateway
from callgate.testing import GUARDRAILS_OFF


def batch_csv(rows: int, numbers: int) -> io.BytesIO:
    lines = "".join(f"+1212555{i % numbers:04d},+15005550006,reminder {i}\n" for i in range(rows))
    return io.BytesIO(("To,From,Body\n" + lines).encode())


async def drive(gw: Gateway, workers: int) -> tuple[list[Any], float]:
    running = [gw.worker() for _ in range(workers)]
    t0 = time.perf_counter()
    await asyncio.gather(*(w.run(drain=True) for w in running))
    return running, time.perf_counter() - t0


def run(
    rows: int, rate: float, global_rate: float, workers: int, url: str | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "simulator.jsonl")
        settings = Settings(
            database_url=url or f"sqlite:///{tmp}/bench.db",
            rate=global_rate,
            simulator_latency=0.0,
            simulator_log=Path(log_path),
            **GUARDRAILS_OFF,  # a load test: see docs/guardrails.md
        )
        gw = Gateway(settings)
        t0 = time.perf_counter()
        batch = gw.submit_batch(batch_csv(rows, min(rows, 10_000)), rate=rate, filename="b.csv")
        accept_s = time.perf_counter() - t0
        running, run_s = asyncio.run(drive(gw, workers))
        asyncio.run(gw.provider.aclose())
        done = gw.store.get_batch(batch.id)
        mine = {r["job_id"] for r in gw.store.batch_results(batch.id, limit=rows + 1)}
        gw.close()
        starts, duplicated = read_starts(log_path, only=mine)
    full_rate, span = rate_over(starts)
    lo = bisect.bisect_left(starts, starts[0] + TRIM_S) if starts else 0
    hi = bisect.bisect_left(starts, starts[-1] - TRIM_S) if starts else 0
    steady_rate, _ = rate_over(starts[lo:hi])
    window_max, _ = max_in_window(starts)
    return {
        "rows": rows,
        "batch_rate_per_s": rate,
        "global_rate_per_s": global_rate,
        "workers": workers,
        "source": "simulator log (started_at) only, this batch's calls",
        "accept_s": round(accept_s, 3),
        "run_s": round(run_s, 3),
        "calls": len(starts),
        "duration_s": round(span, 3),
        "achieved_rate_per_s": round(full_rate, 3),
        "achieved_ratio": round(full_rate / rate, 4),
        "steady_rate_per_s": round(steady_rate, 3),
        "steady_deviation_pct": round(100 * (steady_rate - rate) / rate, 3),
        "max_calls_in_1s_window": window_max,
        "window_target_max": math.floor(rate),
        "job_ids_called_twice": duplicated,
        "batch_status": str(done.status),
        "batch_counts": dict(done.counts),
        "reslotted": sum(w.stats.reslotted for w in running),
        "slots_lapsed": sum(p.lapsed for w in running for p in w._pacers.values()),
        "slots_woken_late": sum(p.late for w in running for p in w._pacers.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0, help="the batch's rate")
    parser.add_argument("--global-rate", type=float, default=1_000.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    result = run(args.rows, args.rate, args.global_rate, args.workers, args.database_url)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(result)


if __name__ == "__main__":
    main()
