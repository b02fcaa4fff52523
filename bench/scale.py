"""Throughput against queue depth: the time to finish the first ``--small`` deliveries
with only those jobs queued, versus with ``--big`` jobs queued in total. Simulator at zero
latency, rate unlimited, 1,000 numbers for the measured jobs, max_concurrency and
claim_batch 1,000. Prints both jobs/s, their ratio (target >= 0.8) and peak RSS.

The measured jobs are the same in both runs (ids 1..small, round-robin over the 1,000
numbers). The extra jobs are queued after them and are claimable at once:

* ``same`` (default, the more demanding): the extra jobs round-robin to the same 1,000
  numbers, i.e. ~1,000 jobs deep behind every number. Each claim then takes every
  group's head from a different leaf page of the per-group FIFO index, so a claim of
  1,000 writes ~1,100 pages to the WAL instead of ~180;
* ``spread``: each extra job to its own number (~1,000,000 groups, one job each; a
  one-message-per-recipient campaign). The measured groups' heads stay clustered.

Each run works on a fresh, fsync'ed copy of the queued database, so every run sees the
same queue; small and big runs alternate and the medians are compared.

``--history N`` measures history instead of depth: the same ``--small`` jobs queued on an
empty table versus queued after ``N`` finished jobs (delivered and failed, with their
attempts and events, to the same 1,000 numbers, plus 50,000 past destinations' groups;
written by :mod:`callgate.store.sql_history`, statistics taken after it). ``--database
postgresql://...`` (an admin URL) runs either on PostgreSQL: a template database per case,
cloned for every run. Target for both: ratio >= 0.8.

    python bench/scale.py [--big 1000000] [--small 10000] [--layout same|spread] [--repeat 5]
    python bench/scale.py --history 1000000 [--database postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, peak_rss_mb
from _pg import fresh_database, with_database

from callgate.config import Settings
from callgate.domain import JobSpec, normalize_number
from callgate.engine.worker import Worker
from callgate.gateway import Gateway
from callgate.store.sql_history import write_history
from callgate.testing import GUARDRAILS_OFF

NUMBERS = 1_000
CHUNK = 10_000
WATCH_S = 0.01  # how often the watcher looks at worker.stats.finished


def numbers(k: int) -> list[str]:
    return [f"+1212555{i:04d}" for i in range(k)]


def spread_number(i: int) -> str:
    """The i-th extra number, already in E.164: +1 646 EEE NNNN, exchange 200-999."""
    return f"+1646{200 + i // 10_000:03d}{i % 10_000:04d}"


def measured_specs(gw: Gateway, n: int, k: int) -> list[JobSpec]:
    nums = numbers(k)
    return [gw.spec("sms", to=nums[i % k], body=f"reminder {i}") for i in range(n)]


def extra_specs(gw: Gateway, start: int, n: int, k: int, layout: str) -> Iterator[JobSpec]:
    """The extra jobs, built lazily from validated templates (``to`` already E.164)."""
    nums = numbers(k)
    template = gw.spec("sms", to=nums[0], body="x")
    for i in range(start, start + n):
        to = nums[i % k] if layout == "same" else spread_number(i - start)
        yield dataclasses.replace(template, to=to, payload={"body": f"reminder {i}"})


def submit(gw: Gateway, specs: Iterator[JobSpec] | list[JobSpec]) -> tuple[int, float]:
    """Submit in chunks; (jobs, seconds spent inside gw.submit_many)."""
    n, spent, chunk = 0, 0.0, []
    for spec in specs:
        chunk.append(spec)
        if len(chunk) == CHUNK:
            t0 = time.perf_counter()
            n += len(gw.submit_many(chunk))
            spent += time.perf_counter() - t0
            chunk = []
    if chunk:
        t0 = time.perf_counter()
        n += len(gw.submit_many(chunk))
        spent += time.perf_counter() - t0
    return n, spent


async def first_n(gw: Gateway, n: int) -> tuple[float, Worker]:
    """Run one worker until ``n`` jobs are finished; the seconds that took."""
    worker = gw.worker()
    elapsed = 0.0

    async def watch() -> None:
        nonlocal elapsed
        while worker.stats.finished < n:
            await asyncio.sleep(WATCH_S)
        elapsed = time.perf_counter() - t0
        worker.stop()

    t0 = time.perf_counter()
    watcher = asyncio.create_task(watch())
    await worker.run()
    await watcher
    return elapsed, worker


def settings_for(path: str) -> Settings:
    return Settings(
        database_url=path if path.startswith("postgresql") else f"sqlite:///{path}",
        rate=0,
        max_concurrency=NUMBERS,
        claim_batch=NUMBERS,
        idle_poll=0.05,
        simulator_latency=0.0,
        **GUARDRAILS_OFF,  # a load test: see docs/guardrails.md
    )


def build(path: str, total: int, small: int, layout: str, history: int = 0) -> dict[str, Any]:
    """Queue ``total`` jobs into a fresh database at ``path`` (closed, WAL merged), after
    ``history`` finished jobs."""
    gw = Gateway(settings_for(path))
    t0 = time.perf_counter()
    if history:
        write_history(gw.store, history, numbers=NUMBERS, at=time.time() - 30 * 86_400, batch=None)
        with gw.store._write() as c:  # type: ignore[attr-defined]
            c.execute("ANALYZE")
    history_s = time.perf_counter() - t0
    queued, submit_s = submit(gw, measured_specs(gw, small, NUMBERS))
    if total > small:
        more, more_s = submit(gw, extra_specs(gw, small, total - small, NUMBERS, layout))
        queued, submit_s = queued + more, submit_s + more_s
    build_and_submit_s = time.perf_counter() - t0
    gw.close()
    return {
        "queued": queued,
        "submit_s": round(submit_s, 3),
        "submit_jobs_per_s": round(queued / submit_s),
        "build_specs_and_submit_s": round(build_and_submit_s - history_s, 3),
        "history": history,
        "history_s": round(history_s, 3),
    } | (
        {} if path.startswith("postgresql") else {"db_mb": round(os.path.getsize(path) / 2**20, 1)}
    )


def measure(template: str, path: str, small: int) -> dict[str, Any]:
    """One run on a fresh copy of ``template``: seconds to the first ``small`` finished."""
    if template.startswith("postgresql"):
        with _pg_clone(template, path) as url:
            return _measure(url, small)
    shutil.copyfile(template, path)
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)  # else the run's first checkpoint fsync pays for writing the whole copy
    os.close(fd)
    try:
        return _measure(path, small)
    finally:
        os.remove(path)


@contextlib.contextmanager
def _pg_clone(template: str, admin: str) -> Iterator[str]:
    """A copy of the template database (``CREATE DATABASE ... TEMPLATE``), dropped after."""
    name = f"{urlsplit(template).path.lstrip('/')}_run"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
        conn.execute(
            f"CREATE DATABASE {name} TEMPLATE {urlsplit(template).path.lstrip('/')}".encode()
        )
    try:
        yield with_database(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


def _measure(path: str, small: int) -> dict[str, Any]:
    gw = Gateway(settings_for(path))
    cpu0 = time.process_time()
    work_s, worker = asyncio.run(first_n(gw, small))
    cpu_s = time.process_time() - cpu0
    gw.close()
    return {
        "process_s": round(work_s, 3),
        "jobs_per_s": round(small / work_s),
        "cpu_s": round(cpu_s, 3),
        "claimed": worker.stats.claimed,
        "finished": worker.stats.finished,
        "delivered": worker.stats.outcomes.get("delivered", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs per case; medians")
    parser.add_argument("--layout", choices=("same", "spread"), default="same")
    parser.add_argument(
        "--history", type=int, default=0, help="finished jobs in the table (0: measure depth)"
    )
    parser.add_argument("--database", default=None, help="PostgreSQL admin URL (else SQLite)")
    args = parser.parse_args()
    for i in (0, 1, 899_999):  # the generated extra numbers are valid and already E.164
        assert normalize_number(spread_number(i)) == spread_number(i)

    runs: dict[str, list[dict[str, Any]]] = {"small": [], "big": []}
    big = args.small if args.history else args.big  # history: the same queue, on history
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.database:
            templates = {
                name: stack.enter_context(fresh_database(args.database, f"scale_{name}"))
                for name in runs
            }
            run_path = args.database
        else:
            templates = {name: os.path.join(tmp, f"{name}.db") for name in runs}
            run_path = os.path.join(tmp, "run.db")
        built = {
            "small": build(templates["small"], args.small, args.small, args.layout),
            "big": build(templates["big"], big, args.small, args.layout, args.history),
        }
        rss_after_submit = peak_rss_mb()
        for _ in range(args.repeat):  # interleaved, so drift in machine load hits both
            for name in runs:
                runs[name].append(measure(templates[name], run_path, args.small))
    rate = {name: statistics.median(r["jobs_per_s"] for r in runs[name]) for name in runs}
    ratio = rate["big"] / rate["small"]
    emit(
        {
            "database": "postgresql" if args.database else "sqlite",
            "mode": "history" if args.history else "depth",
            "history": args.history,
            "measured_jobs": args.small,
            "numbers_for_measured_jobs": NUMBERS,
            "max_concurrency": NUMBERS,
            "claim_batch": NUMBERS,
            "rate": "unlimited",
            "simulator_latency_s": 0.0,
            "layout": args.layout,
            "layout_detail": (
                f"the same queue on an empty table (small) and after {args.history} finished "
                "jobs to the same numbers (big)"
                if args.history
                else "extra jobs to distinct numbers (one group each), queued after the measured"
                if args.layout == "spread"
                else "extra jobs round-robin to the same 1,000 numbers (~1,000 deep per "
                "number), queued after the measured; the more demanding layout"
            ),
            "timing": "on a fresh copy of the queued database each run: worker.run() start "
            f"until worker.stats.finished >= measured_jobs (polled every {WATCH_S} s); "
            "small and big runs interleaved; jobs/s are medians",
            "submit": f"gw.submit_many in chunks of {CHUNK}; submit_s is the time inside "
            "submit_many; extra specs are dataclasses.replace copies of a validated template",
            "repeat": args.repeat,
            "submit_small": built["small"],
            "submit_big": built["big"],
            "runs_small": runs["small"],
            "runs_big": runs["big"],
            "small_jobs_per_s": round(rate["small"]),
            "big_jobs_per_s": round(rate["big"]),
            "ratio_big_vs_small": round(ratio, 3),
            "target_ratio": 0.8,
            "peak_rss_mb_after_submit": round(rss_after_submit, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
    )


if __name__ == "__main__":
    main()
