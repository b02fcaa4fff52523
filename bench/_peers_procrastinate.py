"""The procrastinate side of ``bench/peers.py``: its app and no-op task, the deferral of
N jobs with ``lock=<key>``, and the worker process the bench starts several of.

Run as a script it is one worker process (``python _peers_procrastinate.py URL
CONCURRENCY POLL NAME``), which works until SIGTERM; the parent stops it once the
queue is empty. Nothing here imports callgate.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import procrastinate
from procrastinate.jobs import Job

TASK = "noop"


async def noop() -> None:
    """The job itself: nothing, so that the queue's own cost is all that is measured."""


def make_app(url: str, pool_size: int) -> procrastinate.App:
    """An app on ``url`` whose psycopg pool holds ``pool_size`` connections."""
    connector = procrastinate.PsycopgConnector(conninfo=url, min_size=pool_size, max_size=pool_size)
    app = procrastinate.App(connector=connector)
    app.task(name=TASK)(noop)
    return app


def pool_size_for(concurrency: int) -> int:
    """One connection per running job (each finishes with its own query), one for the
    fetch loop and one held by LISTEN: with fewer, jobs wait for a connection."""
    return concurrency + 2


def make_jobs(app: procrastinate.App, n: int, keys: int) -> list[Job]:
    """Job ``i`` is locked on key ``i % keys``: the keys interleave in id order, as the
    jobs of many destinations arrive in practice (and as ``bench/throughput.py`` does)."""
    task = app.tasks[TASK]
    return [task.configure(lock=f"key-{i % keys}").make_new_job() for i in range(n)]


async def defer_all(app: procrastinate.App, jobs: list[Job], chunk: int) -> float:
    """Defer every job, ``chunk`` per statement (procrastinate's batch defer, one
    ``INSERT`` of many rows), and return the seconds it took."""
    start = time.perf_counter()
    for i in range(0, len(jobs), chunk):
        await app.job_manager.batch_defer_jobs_async(jobs[i : i + chunk])
    return time.perf_counter() - start


async def work(url: str, concurrency: int, poll: float, name: str) -> None:
    app = make_app(url, pool_size_for(concurrency))
    async with app.open_async():
        await app.run_worker_async(**worker_options(concurrency, poll, name))


def worker_options(concurrency: int, poll: float, name: str) -> dict[str, Any]:
    """The worker settings the bench uses (also printed in its output)."""
    return {
        "name": name,
        "concurrency": concurrency,
        "wait": True,  # wait=False stops at the first empty fetch: see peers.py
        "listen_notify": True,
        "fetch_job_polling_interval": poll,
        "delete_jobs": "never",
        "install_signal_handlers": True,
    }


def main(argv: list[str]) -> None:
    url, concurrency, poll, name = argv
    asyncio.run(work(url, int(concurrency), float(poll), name))


if __name__ == "__main__":
    main(sys.argv[1:])
