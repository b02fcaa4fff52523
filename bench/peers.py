"""callgate against a peer queue on the same PostgreSQL, in the same run: N no-op jobs over
K keys, at most one running per key, through procrastinate (``lock=<key>``) and through
callgate; pgbench's simple-update TPS as the physical reference. Prints one JSON document.

    python bench/peers.py [--database postgresql://postgres@127.0.0.1:5432/test]
        [--jobs 50000] [--keys 1000] [--workers 4] [--concurrency 16] [--skip-callgate]

``--database`` is an admin URL: each side gets a fresh database created from it
(``callgate_bench_peers_<pid>_<side>``), dropped at the end; the database it names is
only connected to. Each side's figure is its processing rate: all jobs are queued first,
then ``--workers`` processes start together, and the rate is jobs over the time from the
first job starting to the last finishing, as the queue itself recorded it
(procrastinate's ``procrastinate_events``, callgate's simulator log). The same records
show whether any key ever had two jobs overlapping, or started them out of order.

procrastinate is tuned for many short async jobs: an async task (a sync one would run in
a thread), ``--concurrency`` jobs per worker with a psycopg pool of ``concurrency + 2``
connections (one per running job, which finishes with its own query, one for the fetch
loop, one held by LISTEN), LISTEN/NOTIFY on, ``fetch_job_polling_interval`` 0.05 s
instead of 5 s (after an empty fetch a worker is woken by a *new* job only, never by a
lock coming free, so the poll is what restarts it), its logging left at WARNING, finished
jobs kept (the default, and the check reads them), jobs deferred 1,000 per statement
(``batch_defer``), tables ANALYZEd once queued (callgate's too), the stock schema unless
``--peer-lock-index``. A worker fetches one job per query, one query at a time, each its
own committed transaction, so its rate is bounded by the commit latency whatever the
concurrency (4 to 20 measured the same). ``wait=False`` cannot drain: a worker stops at
its first empty fetch, which with locks happens while jobs remain (every waiting head
locked behind a running job), so the workers run with ``wait=True`` and get SIGTERM once
nothing is left.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

sys.path.insert(0, os.path.dirname(__file__))
import _peers_procrastinate as peer
from _common import emit

from callgate.testing import GUARDRAILS_OFF_ENV

HERE = Path(__file__).resolve().parent
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_VS_PEER = 2.0
TARGET_JOBS_PER_S = 5000
Interval = tuple[str, int, float, float]  # key, job id (submit order), start, end


# -- databases -------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    """The same server URL with another database name."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextlib.contextmanager
def scratch_database(admin_url: str, side: str) -> Iterator[str]:
    """A fresh, empty database for one side of the run, dropped afterwards."""
    name = f"callgate_bench_peers_{os.getpid()}_{side}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def checkpoint(admin_url: str) -> None:
    """Start each measurement with clean shared buffers, not mid-way through another's
    checkpoint (needs a superuser; skipped otherwise)."""
    with (
        psycopg.connect(admin_url, autocommit=True) as conn,
        contextlib.suppress(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CHECKPOINT")


def timeout_for(jobs: int) -> float:
    """How long a side may take before the run is called failed (50 jobs/s at worst)."""
    return max(120.0, jobs / 50)


# -- pgbench ---------------------------------------------------------------------------


def run_pgbench(admin_url: str, clients: int, seconds: float, scale: int) -> dict[str, Any]:
    """``pgbench -i`` on its own scratch database, then ``-N`` (simple update: one UPDATE,
    one SELECT, one INSERT per transaction) for ``seconds``."""
    exe = shutil.which("pgbench")
    if exe is None:
        raise SystemExit("pgbench not found on PATH (Debian: postgresql-client)")
    with scratch_database(admin_url, "pgbench") as url:
        run([exe, "-i", "-q", "-s", str(scale), url])
        checkpoint(admin_url)
        args = ["-N", "-c", str(clients), "-j", "2", "-T", str(max(1, round(seconds)))]
        out = run([exe, *args, url])
    tps = re.search(r"^tps = ([0-9.]+)", out, re.MULTILINE)
    latency = re.search(r"^latency average = ([0-9.]+) ms", out, re.MULTILINE)
    if tps is None or latency is None:
        raise SystemExit(f"no 'tps = ' or 'latency average = ' in pgbench's output:\n{out}")
    return {
        "tps": round(float(tps.group(1))),
        "latency_ms": float(latency.group(1)),
        "command": " ".join(["pgbench", *args]),
    }


def run(cmd: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


# -- what the queues recorded ----------------------------------------------------------


def check_intervals(rows: Iterable[Interval]) -> dict[str, Any]:
    """Per key: did two jobs ever overlap, and did they start in submit order?"""
    by_key: dict[str, list[tuple[float, float, int]]] = {}
    for key, job_id, start, end in rows:
        by_key.setdefault(key, []).append((start, end, job_id))
    overlapping, out_of_order, starts, ends = 0, 0, [], []
    for runs in by_key.values():
        runs.sort()
        latest_end, last_id, overlapped = float("-inf"), -1, False
        for start, end, job_id in runs:
            overlapped = overlapped or start < latest_end
            out_of_order += job_id < last_id
            latest_end, last_id = max(latest_end, end), job_id
        overlapping += overlapped
        starts.append(runs[0][0])
        ends.append(latest_end)
    return {
        "jobs_seen": sum(len(r) for r in by_key.values()),
        "keys_seen": len(by_key),
        "keys_with_overlap": overlapping,
        "fifo_violations": out_of_order,
        "first_start": min(starts, default=0.0),
        "last_end": max(ends, default=0.0),
    }


def rate_figures(n: int, checked: dict[str, Any], wall_s: float) -> dict[str, Any]:
    process_s = checked.pop("last_end") - checked.pop("first_start")
    return {
        "process_s": round(process_s, 3),
        "jobs_per_s": round(n / process_s) if process_s > 0 else None,
        "wall_s": round(wall_s, 3),
        "wall_jobs_per_s": round(n / wall_s),
        **checked,
    }


# -- worker processes ------------------------------------------------------------------


@dataclass
class Workers:
    """Worker processes started together; each one's stderr goes to a file."""

    procs: list[subprocess.Popen[bytes]]
    errs: list[Path]

    @classmethod
    def start(cls, specs: list[tuple[list[str], dict[str, str]]], cwd: str) -> Workers:
        procs, errs = [], []
        for i, (cmd, env) in enumerate(specs):
            errs.append(Path(cwd, f"worker-{i}.err"))
            with errs[-1].open("wb") as err:
                procs.append(
                    subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
                )
        return cls(procs, errs)

    def all_exited(self) -> bool:
        return all(p.poll() is not None for p in self.procs)

    def wait(self, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        for p in self.procs:
            p.wait(timeout=max(0.0, deadline - time.perf_counter()))

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM (a graceful stop for both queues), then SIGKILL after ``grace``."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def failures(self) -> list[str]:
        """The stderr tail of every worker that exited with an error."""
        return [
            f"exit {p.returncode}: {err.read_text(errors='replace')[-800:]}"
            for p, err in zip(self.procs, self.errs, strict=True)
            if p.returncode not in (0, None)
        ]


# -- procrastinate ---------------------------------------------------------------------

PEER_EVENTS_SQL = """
SELECT j.lock, j.id, extract(epoch FROM s.at)::float8, extract(epoch FROM e.at)::float8
  FROM procrastinate_jobs j
  JOIN procrastinate_events s ON s.job_id = j.id AND s.type = 'started'
  JOIN procrastinate_events e ON e.job_id = j.id
   AND e.type IN ('succeeded', 'failed', 'aborted', 'deferred_for_retry')
"""


#: the index procrastinate's issue tracker suggests for the lock check (issues #393 and
#: #1242): the stock schema's ``(id, lock)`` index cannot be searched by lock, so every
#: candidate job costs a scan of every queued job's entry; opt in with --peer-lock-index
PEER_LOCK_INDEX_SQL = (
    "CREATE INDEX bench_peers_lock_id ON procrastinate_jobs (lock, id)"
    " WHERE status IN ('todo', 'doing')"
)


async def prepare_peer(url: str, args: argparse.Namespace) -> float:
    """Apply procrastinate's schema to the fresh database and defer every job."""
    app = peer.make_app(url, 2)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        if args.peer_lock_index:
            await app.connector.execute_query_async(PEER_LOCK_INDEX_SQL)
        batch = peer.make_jobs(app, args.jobs, args.keys)
        return await peer.defer_all(app, batch, args.defer_chunk)


def analyze(url: str) -> None:
    """Planner statistics for the queued jobs, as autovacuum gives a long-lived queue."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def check_connections(admin_url: str, wanted: int) -> None:
    """Fail clearly, not with a pool timeout, if the server cannot take the workers' pools."""
    with psycopg.connect(admin_url) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int - count(*)"
            " FROM pg_stat_activity WHERE backend_type = 'client backend'"
        ).fetchone()
    free = int(row[0]) if row else 0
    if wanted > free:
        raise SystemExit(
            f"the workers' pools need {wanted} connections, the server has {free} free:"
            " lower --workers or --concurrency"
        )


def wait_drained(url: str, workers: Workers, timeout: float) -> float:
    """Poll until no procrastinate job is todo or doing; return when that was seen."""
    deadline = time.perf_counter() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.perf_counter() < deadline:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing'))"
            ).fetchone()
            if row is not None and not row[0]:
                return time.perf_counter()
            if workers.all_exited():
                raise SystemExit(f"every procrastinate worker exited: {workers.failures()}")
            time.sleep(0.1)
    raise SystemExit(f"procrastinate did not drain within {timeout:.0f} s")


def peer_results(url: str) -> tuple[dict[str, int], list[Interval]]:
    with psycopg.connect(url) as conn:
        counts = dict(
            conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1")
        )
        rows = list(conn.execute(PEER_EVENTS_SQL))
    return counts, rows


def peer_drain(url: str, args: argparse.Namespace) -> tuple[float, list[str]]:
    """Start the worker processes together; stop them once nothing is left."""
    script = str(HERE / "_peers_procrastinate.py")
    env = dict(os.environ)
    specs = [
        ([sys.executable, script, url, str(args.concurrency), str(args.poll), f"w{i}"], env)
        for i in range(args.workers)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        workers = Workers.start(specs, tmp)
        try:
            wall_s = wait_drained(url, workers, timeout_for(args.jobs)) - start
        finally:
            workers.stop()
        return wall_s, workers.failures()


def run_procrastinate(admin_url: str, args: argparse.Namespace) -> dict[str, Any]:
    check_connections(admin_url, args.workers * peer.pool_size_for(args.concurrency) + 2)
    with scratch_database(admin_url, "procrastinate") as url:
        defer_s = asyncio.run(prepare_peer(url, args))
        analyze(url)
        checkpoint(admin_url)
        wall_s, failures = peer_drain(url, args)
        counts, rows = peer_results(url)
    return {
        "version": version("procrastinate"),
        "defer_s": round(defer_s, 3),
        "defer_jobs_per_s": round(args.jobs / defer_s),
        **rate_figures(args.jobs, check_intervals(rows), wall_s),
        "statuses": counts,
        "worker_failures": failures,
        "settings": peer_settings(args),
    }


def peer_settings(args: argparse.Namespace) -> dict[str, Any]:
    options = peer.worker_options(args.concurrency, args.poll, "w<i>")
    return {
        "workers": args.workers,
        **{k: v for k, v in options.items() if k != "name"},
        "pool_size": peer.pool_size_for(args.concurrency),
        "defer_chunk": args.defer_chunk,
        "task": "async def noop() -> None",
        "lock": "key-<i % keys>",
        "schema": "stock + (lock, id) index" if args.peer_lock_index else "stock",
    }


# -- callgate --------------------------------------------------------------------------


class CallgateUnavailable(Exception):
    """callgate cannot run this benchmark yet (the reason is the message)."""


def run_callgate(admin_url: str, jobs: int, keys: int, workers: int) -> dict[str, Any]:
    """The same workload through callgate on a fresh PostgreSQL database: ``callgate
    migrate``, ``jobs`` no-op provider requests (``make_spec("request", api="noop")``) to
    ``keys`` numbers submitted through ``open_store(url).submit``, then ``workers``
    ``callgate worker --drain`` processes at unlimited rate, timed until all exit.

    Raises :class:`CallgateUnavailable` while ``open_store`` refuses a postgresql URL.
    """
    from callgate.store import open_store

    with scratch_database(admin_url, "callgate") as url:
        callgate_supports(url)
        with tempfile.TemporaryDirectory() as tmp:
            env = callgate_env(url, keys, workers)
            run([sys.executable, "-m", "callgate", "migrate"], env=env, cwd=tmp)
            submit_s = callgate_submit(url, jobs, keys)
            analyze(url)
            checkpoint(admin_url)
            wall_s, rows, failures = callgate_drain(env, workers, jobs, tmp)
        store = open_store(url, migrate=False)
        try:
            counts = {k: v for k, v in store.counts().items() if v}
        finally:
            store.close()
    return {
        "submit_s": round(submit_s, 3),
        "submit_jobs_per_s": round(jobs / submit_s),
        **rate_figures(jobs, check_intervals(rows), wall_s),
        "statuses": counts,
        "worker_failures": failures,
        "settings": {k: v for k, v in env.items() if k.startswith("CALLGATE_") and "URL" not in k},
    }


def callgate_supports(url: str) -> None:
    from callgate.exceptions import ConfigurationError
    from callgate.store import open_store

    try:
        open_store(url, migrate=False).close()
    except ConfigurationError as exc:
        raise CallgateUnavailable(f"open_store refuses a postgresql URL: {exc}") from exc


def callgate_env(url: str, keys: int, workers: int) -> dict[str, str]:
    """The environment of every callgate command: this database, unlimited rate, enough
    concurrency for every key, claims split across the workers, nothing else inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
    return env | {
        "CALLGATE_DATABASE_URL": url,
        "CALLGATE_RATE": "0",
        "CALLGATE_MAX_CONCURRENCY": str(keys),
        "CALLGATE_CLAIM_BATCH": str(max(1, keys // workers)),
        "CALLGATE_IDLE_POLL": "0.05",
        **GUARDRAILS_OFF_ENV,  # a load test: see docs/guardrails.md
    }


def callgate_numbers(keys: int) -> list[str]:
    """The numbers bench/throughput.py sends to (valid, and plain successes in the
    simulator)."""
    if keys > 10_000:
        raise SystemExit("at most 10,000 keys (one number each)")
    from throughput import numbers

    return numbers(keys)


def callgate_submit(url: str, jobs: int, keys: int, chunk: int = 5000) -> float:
    from callgate.domain import make_spec
    from callgate.store import open_store

    nums = callgate_numbers(keys)
    specs = [make_spec("request", to=nums[i % keys], api="noop") for i in range(jobs)]
    store = open_store(url, migrate=False)
    try:
        start = time.perf_counter()
        for i in range(0, jobs, chunk):
            store.submit(specs[i : i + chunk], time.time())
        return time.perf_counter() - start
    finally:
        store.close()


def callgate_drain(
    env: dict[str, str], workers: int, jobs: int, tmp: str
) -> tuple[float, list[Interval], list[str]]:
    """Run the workers with --drain until every one has exited; read their simulator logs."""
    logs = [os.path.join(tmp, f"sim-{i}.jsonl") for i in range(workers)]
    cmd = [sys.executable, "-m", "callgate", "worker", "--drain"]
    specs = [(cmd, env | {"CALLGATE_SIMULATOR_LOG": log}) for log in logs]
    start = time.perf_counter()
    procs = Workers.start(specs, tmp)
    try:
        procs.wait(timeout_for(jobs))
        wall_s = time.perf_counter() - start
    finally:
        procs.stop()
    return wall_s, list(read_sim_logs(logs)), procs.failures()


def read_sim_logs(paths: Iterable[str]) -> Iterator[Interval]:
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                call = json.loads(line)
                yield call["to"], call["job_id"], call["started_at"], call["ended_at"]


# -- main ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database", default=DEFAULT_ADMIN_URL, help="admin URL (postgresql://)")
    p.add_argument("--jobs", type=int, default=50_000)
    p.add_argument("--keys", type=int, default=1_000)
    p.add_argument("--workers", type=int, default=4, help="worker processes per side")
    p.add_argument("--concurrency", type=int, default=16, help="procrastinate jobs per worker")
    p.add_argument("--poll", type=float, default=0.05, help="procrastinate fetch polling, s")
    p.add_argument("--defer-chunk", type=int, default=1000, help="procrastinate jobs per defer")
    p.add_argument(
        "--peer-lock-index",
        action="store_true",
        help="add the (lock, id) index procrastinate's issue tracker suggests (not stock)",
    )
    p.add_argument("--pgbench-seconds", type=float, default=10.0)
    p.add_argument("--pgbench-clients", type=int, default=16)
    p.add_argument("--pgbench-scale", type=int, default=1)
    p.add_argument("--skip-callgate", action="store_true", help="report callgate as null")
    return p.parse_args(argv)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    doc: dict[str, Any] = {"jobs": args.jobs, "keys": args.keys, "workers": args.workers}
    doc["pgbench"] = run_pgbench(
        args.database, args.pgbench_clients, args.pgbench_seconds, args.pgbench_scale
    )
    doc["procrastinate"] = run_procrastinate(args.database, args)
    doc["callgate"] = None
    if args.skip_callgate:
        doc["callgate_unavailable"] = "--skip-callgate"
    else:
        try:
            doc["callgate"] = run_callgate(args.database, args.jobs, args.keys, args.workers)
        except CallgateUnavailable as exc:
            doc["callgate_unavailable"] = str(exc)
    cg = (doc["callgate"] or {}).get("jobs_per_s")
    peer_rate = doc["procrastinate"]["jobs_per_s"]
    doc["ratio_callgate_vs_procrastinate"] = ratio(cg, peer_rate)
    doc["ratio_callgate_vs_pgbench_tps"] = ratio(cg, doc["pgbench"]["tps"])
    doc["ratio_procrastinate_vs_pgbench_tps"] = ratio(peer_rate, doc["pgbench"]["tps"])
    doc["targets"] = {
        "callgate_vs_procrastinate": TARGET_VS_PEER,
        "callgate_jobs_per_s": TARGET_JOBS_PER_S,
    }
    emit(doc)


if __name__ == "__main__":
    main()
