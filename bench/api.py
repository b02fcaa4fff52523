"""HTTP submit throughput and latency against a real ``callgate serve``.

Starts ``python -m callgate serve --port 0`` over a fresh database (SQLite in a temporary
directory, or with ``--database postgresql://...`` a new PostgreSQL database beside that
URL's, dropped afterwards; rate 0 = unlimited, simulator latency 0, so its worker
delivers what comes in, as in production), reads the port from its "serving" line on
stderr and the first API key from its stdout, then measures ``POST /v1/messages`` with
httpx.AsyncClient:

1. max throughput: ``--concurrency`` tasks submitting back to back (closed loop) for
   ``--seconds``: req/s and latency p50/p99;
2. fixed rate: requests started on a fixed schedule of ``--rate`` per second (open
   loop) for ``--seconds``: latency p50/p99 measured from each request's *scheduled*
   start, so a server (or client) falling behind shows up in the figures instead of
   slowing the schedule down (no coordinated omission); ``service_*`` is from the moment
   the request was actually sent.

Targets: >= 1,000 req/s, and p99 < 50 ms at 500 req/s. The client runs on the same
machine and competes with the server for CPU: ``cpu_count`` is in the output. ``--load
wrk`` runs the max-throughput phase with Debian's ``wrk`` (C, one thread: a small share
of the CPU, so the figure is the server's, not the load generator's; installed with
apt-get when missing), its own latency percentiles and its CPU time as the client's;
``load_generator`` in the output says which one measured.
Prints one JSON document; the server is stopped at the end. ``--code DIR`` runs the
server from another checkout's ``src`` (``PYTHONPATH``), e.g. the code before a change,
so that before and after are measured by the same client in one session.

``--dashboard TABS`` measures the max throughput a second time, in the same run (with
the same load generator), with TABS dashboard tabs open (each fetching a page every
3 s, as its live refresh does): ``max_throughput_with_dashboard`` beside
``max_throughput`` is what the dashboard costs the API.

    python bench/api.py [--seconds 10] [--concurrency 64] [--rate 500] [--load wrk]
                        [--database postgresql://...] [--code ../other/src]
                        [--dashboard TABS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, peak_rss_mb

from callgate.testing import GUARDRAILS_OFF_ENV, ServeProcess

TARGET_REQ_PER_S = 1000
TARGET_P99_MS = 50.0
TARGET_P99_AT_RATE = 500
STARTUP_TIMEOUT = 60.0


def numbers(k: int) -> list[str]:
    return [f"+1212555{i:04d}" for i in range(k)]


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)  # seconds
    service: list[float] = field(default_factory=list)  # seconds, open loop only
    statuses: Counter[str] = field(default_factory=Counter)

    def summary(self, elapsed: float) -> dict[str, Any]:
        lat = sorted(self.latencies)
        ok = self.statuses.get("202", 0)
        doc: dict[str, Any] = {
            "requests": len(lat),
            "accepted_202": ok,
            "errors": len(lat) - ok,
            "statuses": dict(self.statuses),
            "seconds": round(elapsed, 3),
            "req_per_s": round(len(lat) / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(percentile(lat, 50) * 1000, 2),
            "p90_ms": round(percentile(lat, 90) * 1000, 2),
            "p99_ms": round(percentile(lat, 99) * 1000, 2),
            "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        }
        if self.service:
            svc = sorted(self.service)
            doc["service_p50_ms"] = round(percentile(svc, 50) * 1000, 2)
            doc["service_p99_ms"] = round(percentile(svc, 99) * 1000, 2)
        return doc


# -- the server --------------------------------------------------------------------------


@contextlib.contextmanager
def serve(
    home: Path, database_url: str, code: str | None, worker: str = "auto"
) -> Iterator[ServeProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [code, env.get("PYTHONPATH")]))
    env |= {
        "CALLGATE_DATABASE_URL": database_url,
        "CALLGATE_RATE": "0",
        "CALLGATE_SIMULATOR_LATENCY": "0",
        "CALLGATE_ENVIRONMENT": "development",
        "CALLGATE_SERVE_WORKER": worker,
        **GUARDRAILS_OFF_ENV,  # a load test: see docs/guardrails.md
    }
    with ServeProcess.start(cwd=home, env=env, timeout=STARTUP_TIMEOUT) as server:
        yield server
        server.stop()


# -- the client ----------------------------------------------------------------------------


def make_client(server: ServeProcess) -> httpx.AsyncClient:
    """One client, one keep-alive connection: httpx's pool gets slower per request the
    more connections and waiting requests it juggles, so each task (closed loop) or
    each slot (open loop) has a client of its own, keeping the client's CPU per request
    flat."""
    return httpx.AsyncClient(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.key}"},
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        timeout=httpx.Timeout(60.0),
    )


class Bodies:
    def __init__(self, k: int) -> None:
        self.nums = numbers(k)
        self.i = 0

    def next(self) -> dict[str, str]:
        self.i += 1
        return {"to": self.nums[self.i % len(self.nums)], "body": f"bench {self.i}"}


class AioClient:
    """aiohttp's client, one keep-alive connection (as :func:`make_client`): about a
    third of httpx's CPU per request, so the open loop's figures are more the server's
    and less the load generator's on a machine whose cores they share."""

    def __init__(self, server: ServeProcess) -> None:
        import aiohttp

        self._errors: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)
        self._session = aiohttp.ClientSession(
            base_url=server.url,
            headers={"Authorization": f"Bearer {server.key}"},
            connector=aiohttp.TCPConnector(limit=1),
            timeout=aiohttp.ClientTimeout(total=60.0),
        )

    async def submit(self, body: dict[str, str]) -> str:
        try:
            async with self._session.post("/v1/messages", json=body) as r:
                await r.read()
                return str(r.status)
        except self._errors as exc:
            return type(exc).__name__

    async def aclose(self) -> None:
        await self._session.close()


Client = httpx.AsyncClient | AioClient


async def submit(client: Client, bodies: Bodies) -> str:
    if isinstance(client, AioClient):
        return await client.submit(bodies.next())
    try:
        r = await client.post("/v1/messages", json=bodies.next())
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return str(r.status_code)


async def closed_loop(
    clients: list[Client], seconds: float, bodies: Bodies
) -> tuple[Samples, float]:
    """One task per client, each submitting back to back until the time is up."""
    samples = Samples()

    async def one_task(client: Client, end: float) -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            status = await submit(client, bodies)
            samples.latencies.append(time.perf_counter() - t0)
            samples.statuses[status] += 1

    start = time.perf_counter()
    await asyncio.gather(*(one_task(c, start + seconds) for c in clients))
    return samples, time.perf_counter() - start


async def open_loop(
    clients: list[Client], rate: float, seconds: float, bodies: Bodies
) -> tuple[Samples, float]:
    """Start request i at ``start + i / rate`` whatever the earlier ones are doing; a
    request that finds every client busy waits for one, and that wait counts."""
    samples = Samples()
    total = int(rate * seconds)
    free: asyncio.Queue[Client] = asyncio.Queue()
    for c in clients:
        free.put_nowait(c)

    async def one(scheduled: float) -> None:
        client = await free.get()
        sent = time.perf_counter()
        try:
            status = await submit(client, bodies)
        finally:
            free.put_nowait(client)
        done = time.perf_counter()
        samples.latencies.append(done - scheduled)
        samples.service.append(done - sent)
        samples.statuses[status] += 1

    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter() + 0.05
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return samples, time.perf_counter() - start


#: what one open dashboard tab fetches: its page every 3 s (the page's live refresh)
DASHBOARD_PAGES = ("/dashboard", "/dashboard/lines", "/dashboard/jobs?status=queued")
DASHBOARD_REFRESH = 3.0


@contextlib.asynccontextmanager
async def dashboard_open(server: ServeProcess, tabs: int, doc: dict[str, Any]) -> Any:
    """While the block runs, ``tabs`` dashboard tabs refresh their page every 3 s (the
    overview, the lines, the queued jobs in turn; signed in with the bench's key);
    their page times and failures go in ``doc``."""
    samples = Samples()
    stop = asyncio.Event()

    async def tab(i: int) -> None:
        async with make_client(server) as client:
            n = i
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    r = await client.get(DASHBOARD_PAGES[n % len(DASHBOARD_PAGES)])
                    samples.statuses[str(r.status_code)] += 1
                except httpx.HTTPError as exc:
                    samples.statuses[type(exc).__name__] += 1
                samples.latencies.append(time.perf_counter() - t0)
                n += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), DASHBOARD_REFRESH)

    start = time.perf_counter()
    tasks = [asyncio.create_task(tab(i)) for i in range(tabs)]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        lat = sorted(samples.latencies)
        doc.update(
            {
                "tabs": tabs,
                "pages": len(lat),
                "statuses": dict(samples.statuses),  # 200 each, or the page failed
                "seconds": round(time.perf_counter() - start, 3),
                "p50_ms": round(percentile(lat, 50) * 1000, 2),
                "p99_ms": round(percentile(lat, 99) * 1000, 2),
            }
        )


def cpu_seconds(pid: int | None = None) -> float | None:
    """CPU time (user + system, all threads) of a process: ``pid``, or this one."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    """The child processes of ``pid`` (serve's worker process, if it has one)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def tree_cpu(pids: list[int]) -> float | None:
    times = [cpu_seconds(p) for p in pids]
    return None if not pids or None in times else sum(t for t in times if t is not None)


@contextlib.contextmanager
def cpu_meter(server: ServeProcess, doc: dict[str, Any]) -> Iterator[None]:
    """Add the server's (its worker process's apart) and this client's CPU time over
    the block to ``doc`` (after it)."""
    children = children_of(server.proc.pid)
    server_0, client_0 = cpu_seconds(server.proc.pid), cpu_seconds()
    worker_0 = tree_cpu(children)
    yield
    server_1, client_1 = cpu_seconds(server.proc.pid), cpu_seconds()
    worker_1 = tree_cpu(children)
    n = max(1, int(doc.get("requests", 0)))
    if worker_0 is not None and worker_1 is not None:
        doc["worker_process_cpu_s"] = round(worker_1 - worker_0, 3)
        doc["worker_process_cpu_ms_per_request"] = round((worker_1 - worker_0) * 1000 / n, 3)
    if server_0 is not None and server_1 is not None:
        doc["server_cpu_s"] = round(server_1 - server_0, 3)
        doc["server_cpu_ms_per_request"] = round((server_1 - server_0) * 1000 / n, 3)
    if client_0 is not None and client_1 is not None:
        doc["client_cpu_s"] = round(client_1 - client_0, 3)
        doc["client_cpu_ms_per_request"] = round((client_1 - client_0) * 1000 / n, 3)


# -- wrk: a load generator that costs little CPU ----------------------------------------

WRK_SCRIPT = """
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
request = function()
  i = i + 1
  local body = string.format('{{"to":"+1212555%04d","body":"bench %d"}}', i % {numbers}, i)
  return wrk.format(nil, "/v1/messages", nil, body)
end
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk_binary() -> str:
    """Debian's wrk, installed when missing (as root; else say how)."""
    found = shutil.which("wrk")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
    if found is None:
        sys.exit("--load wrk needs wrk: apt-get install wrk")
    return found


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def parse_wrk(text: str) -> dict[str, Any]:
    """wrk's report (``--latency``) as this script's fields."""

    def ms(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
        return round(float(number) * UNITS[unit], 2)

    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if total is None:
        raise SystemExit(f"wrk said:\n{text}")
    requests, seconds = int(total[1]), float(total[2]) * UNITS[total[3]] / 1000
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    errors = (int(bad[1]) if bad else 0) + (sum(int(g) for g in sockets.groups()) if sockets else 0)
    pcts = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.MULTILINE))
    top = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", text)
    return {
        "requests": requests,
        "accepted_202": requests - (int(bad[1]) if bad else 0),
        "errors": errors,
        "seconds": round(seconds, 3),
        "req_per_s": round(requests / seconds, 1) if seconds else 0.0,
        "p50_ms": ms(pcts["50"]),
        "p90_ms": ms(pcts["90"]),
        "p99_ms": ms(pcts["99"]),
        "max_ms": ms(top[1]) if top else None,
    }


def wrk_phase(
    server: ServeProcess, concurrency: int, seconds: float, numbers_: int
) -> dict[str, Any]:
    """The closed loop by wrk: ``concurrency`` connections on one thread."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(key=server.key, numbers=numbers_))
    try:
        cmd = [wrk_binary(), "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency"]
        cmd += ["-s", script.name, server.url]
        workers = children_of(server.proc.pid)
        server_0, client_0 = cpu_seconds(server.proc.pid), children_cpu()
        worker_0 = tree_cpu(workers)
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        server_1, client_1 = cpu_seconds(server.proc.pid), children_cpu()
        worker_1 = tree_cpu(workers)
    finally:
        os.unlink(script.name)
    doc = parse_wrk(out)
    n = max(1, doc["requests"])
    if worker_0 is not None and worker_1 is not None:
        doc["worker_process_cpu_s"] = round(worker_1 - worker_0, 3)
        doc["worker_process_cpu_ms_per_request"] = round((worker_1 - worker_0) * 1000 / n, 3)
    if server_0 is not None and server_1 is not None:
        doc["server_cpu_s"] = round(server_1 - server_0, 3)
        doc["server_cpu_ms_per_request"] = round((server_1 - server_0) * 1000 / n, 3)
    doc["client_cpu_s"] = round(client_1 - client_0, 3)
    doc["client_cpu_ms_per_request"] = round((client_1 - client_0) * 1000 / n, 3)
    return doc


COUNT_SQL = "SELECT status, COUNT(*) FROM jobs GROUP BY status"


def job_counts(database_url: str) -> dict[str, int]:
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            return dict(conn.execute(COUNT_SQL).fetchall())
    import psycopg

    with psycopg.connect(database_url) as conn:
        return {str(status): int(n) for status, n in conn.execute(COUNT_SQL).fetchall()}


@contextlib.contextmanager
def database(home: Path, admin_url: str | None) -> Iterator[str]:
    """The URL of a fresh database: a SQLite file in ``home``, or a new PostgreSQL
    database beside ``admin_url``'s (dropped afterwards)."""
    if admin_url is None:
        yield f"sqlite:///{home / 'bench.db'}"
        return
    from _pg import fresh_database

    with fresh_database(admin_url, "api") as url:
        yield url


def server_code(code: str | None) -> dict[str, str | None]:
    """Where the server's code came from: ``--code`` (and its git commit) or this checkout."""
    src = Path(code).resolve() if code is not None else Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"code": str(src) if code is not None else None, "commit": commit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed load first")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="closed-loop tasks (a client each)"
    )
    parser.add_argument("--rate", type=float, default=TARGET_P99_AT_RATE, help="open-loop req/s")
    parser.add_argument(
        "--connections", type=int, default=64, help="open-loop clients (one connection each)"
    )
    parser.add_argument("--numbers", type=int, default=1000, help="distinct destinations")
    parser.add_argument(
        "--database",
        metavar="POSTGRESQL_URL",
        help="serve on PostgreSQL: a fresh database beside this one's (default: SQLite)",
    )
    parser.add_argument("--code", metavar="DIR", help="run the server from this src directory")
    parser.add_argument(
        "--load",
        choices=("httpx", "wrk"),
        default="httpx",
        help="the max-throughput phase's load generator (wrk: C, little CPU)",
    )
    parser.add_argument(
        "--serve-worker",
        choices=("auto", "thread", "process"),
        default="auto",
        help="CALLGATE_SERVE_WORKER for the server (auto: a worker process on PostgreSQL)",
    )
    parser.add_argument(
        "--open-load",
        choices=("aiohttp", "httpx"),
        default="aiohttp",
        help="the fixed-rate phase's client (aiohttp: a third of httpx's CPU per request)",
    )
    parser.add_argument(
        "--dashboard",
        type=int,
        default=0,
        metavar="TABS",
        help="measure max throughput again with TABS dashboard tabs open (each refreshing "
        "every 3 s), in the same run",
    )
    args = parser.parse_args()
    if args.database is not None and not args.database.startswith(("postgresql:", "postgres:")):
        parser.error("--database takes a postgresql:// URL (SQLite is the default)")

    run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    loop = "asyncio"
    with contextlib.suppress(ImportError):
        import uvloop  # the server uses it too (uvicorn[standard])

        run, loop = uvloop.run, "uvloop"

    bodies = Bodies(args.numbers)
    throughput: dict[str, Any] = {"concurrency": args.concurrency}
    fixed: dict[str, Any] = {"target_rate": args.rate, "connections": args.connections}
    with_dashboard: dict[str, Any] = {"concurrency": args.concurrency}
    pages: dict[str, Any] = {}

    async def measure(server: ServeProcess) -> None:
        # clients are made (an SSL context each, even for http) outside the timed parts
        clients = [make_client(server) for _ in range(max(args.concurrency, args.connections))]
        slots: list[Client] = (
            [AioClient(server) for _ in range(args.connections)]
            if args.open_load == "aiohttp"
            else list(clients[: args.connections])
        )

        async def max_phase(doc: dict[str, Any]) -> None:
            """The max-throughput phase, by the load generator asked for."""
            if args.load == "wrk":
                phase = functools.partial(
                    wrk_phase, server, args.concurrency, args.seconds, args.numbers
                )
                doc.update(await asyncio.get_running_loop().run_in_executor(None, phase))
                return
            with cpu_meter(server, doc):
                closed, closed_s = await closed_loop(
                    clients[: args.concurrency], args.seconds, bodies
                )
                doc.update(closed.summary(closed_s))

        try:
            if args.warmup > 0:
                await closed_loop(clients[: args.concurrency], args.warmup, bodies)
            await max_phase(throughput)
            if args.dashboard:
                async with dashboard_open(server, args.dashboard, pages):
                    await max_phase(with_dashboard)
                with_dashboard["dashboard"] = pages
            with cpu_meter(server, fixed):
                opened, opened_s = await open_loop(slots, args.rate, args.seconds, bodies)
                fixed.update(opened.summary(opened_s))
        finally:
            await asyncio.gather(
                *(c.aclose() for c in {id(c): c for c in clients + slots}.values())
            )

    with tempfile.TemporaryDirectory() as tmp, database(Path(tmp), args.database) as url:
        with serve(Path(tmp), url, args.code, args.serve_worker) as server:
            run(measure(server))
        counts = job_counts(url)

    doc = {
        "database": "postgresql" if args.database is not None else "sqlite",
        "server": server_code(args.code),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "client_event_loop": loop,
        "load_generator": args.load,
        "open_load_generator": args.open_load,
        "serve_worker": args.serve_worker,
        "max_throughput": throughput,
        "fixed_rate": fixed,
        **({"max_throughput_with_dashboard": with_dashboard} if args.dashboard else {}),
        "jobs_by_status_at_end": counts,
        "targets": {
            "req_per_s": TARGET_REQ_PER_S,
            "p99_ms_at_rate": TARGET_P99_MS,
            "rate": TARGET_P99_AT_RATE,
        },
        "meets_req_per_s": throughput["req_per_s"] >= TARGET_REQ_PER_S,
        "meets_p99_at_rate": args.rate >= TARGET_P99_AT_RATE
        and fixed["errors"] == 0
        and fixed["p99_ms"] < TARGET_P99_MS,
        "client_peak_rss_mb": round(peak_rss_mb(), 1),
    }
    emit(doc)


if __name__ == "__main__":
    main()
