"""PostgreSQL stopped for 10 s in the middle of a run, then started again: the workers
back off and reconnect (no crash, no restart loop), the API answers 503 with a clear
error meanwhile, and the run completes with nothing lost and nothing sent twice.

A group commit whose connection died while it committed may have committed or not; an
attempt start in it is not replayed (that could send twice) and its job ends
``uncertain`` for reconciliation: fail closed.

The server is one of the test's own (``tests/pgcluster.py``), never the shared one.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from callgate import auth
from callgate.api import create_app
from callgate.config import Settings
from callgate.domain import TERMINAL, make_spec
from callgate.gateway import Gateway
from callgate.store import open_store
from callgate.testing import GUARDRAILS_OFF, GUARDRAILS_OFF_ENV
from tests.pgcluster import Cluster
from tests.simlog import overlaps, read_log

from .support import IN_DOUBT, Callgate, check_in_doubt, wait_for

pytestmark = pytest.mark.slow

JOBS = 3000
NUMBERS = [f"+1202555{i:04d}" for i in range(300)]
OUTAGE = 10.0


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    server = Cluster()
    yield server
    server.remove()


def api_call(
    gw: Gateway, token: str, method: str, path: str, body: object = None
) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(gw))
        async with httpx.AsyncClient(transport=transport, base_url="http://cg") as client:
            headers = {"Authorization": f"Bearer {token}"}
            return await client.request(method, path, json=body, headers=headers)

    return asyncio.run(call())


def test_outage_mid_run(cluster: Cluster, tmp_path: Path) -> None:
    url = cluster.url()
    cg = Callgate(tmp_path)
    cg.env = {
        "CALLGATE_DATABASE_URL": url,
        "CALLGATE_SIMULATOR_LOG": str(cg.log),
        "CALLGATE_RATE": "300",
        "CALLGATE_SIMULATOR_LATENCY_JITTER": "0.01",
        "CALLGATE_IDLE_POLL": "0.2",
        "CALLGATE_SWEEP_INTERVAL": "0.5",
        "CALLGATE_LEASE": "5",
        **GUARDRAILS_OFF_ENV,
    }
    gw = Gateway(Settings(database_url=url, **GUARDRAILS_OFF))
    _, token = auth.create_key(gw.store, "outage test", time.time())
    specs = [make_spec("sms", to=NUMBERS[i % len(NUMBERS)], body=f"r {i}") for i in range(JOBS)]
    ids = [r.job.id for r in gw.store.submit(specs, time.time())]
    try:
        workers = [cg.start("worker", "--drain") for _ in range(2)]
        wait_for(lambda: len(read_log(cg.log)) >= JOBS // 5, 60, "the run to get going")
        cluster.stop()
        down_at = time.monotonic()
        during = api_call(gw, token, "POST", "/v1/messages", {"to": NUMBERS[0], "body": "hi"})
        ready = api_call(gw, token, "GET", "/readyz")
        while time.monotonic() - down_at < OUTAGE:  # the outage itself: a scenario length
            assert all(w.poll() is None for w in workers), "a worker exited while it was down"
            time.sleep(0.5)
        sent_while_down = len(read_log(cg.log))
        cluster.start()
        for proc in workers:
            _, stderr = proc.communicate(timeout=120)
            assert proc.returncode == 0, stderr
            assert "Traceback" not in stderr, stderr
            assert "unavailable" in stderr  # it said why it waited
    finally:
        gw.close()

    assert during.status_code == 503
    error = during.json()["error"]
    assert error["code"] == "store_error"
    assert "database is unavailable" in error["message"]
    assert ready.status_code == 503
    assert JOBS // 5 <= sent_while_down < JOBS, "the outage should land mid-run"

    store = open_store(url)
    try:
        counts = store.counts()
        jobs = {j.id: j for j in store.list_jobs(limit=JOBS + 10)}
        rows = store._read("SELECT job_id, outcome FROM attempts")  # type: ignore[attr-defined]
    finally:
        store.close()
    assert sorted(jobs) == sorted(ids), "a job was lost"
    assert {s for s, n in counts.items() if n} <= {"delivered", "failed", *IN_DOUBT}, counts
    in_doubt = counts["uncertain"] + counts["held"]
    assert in_doubt <= 200, "only the commits cut by the outage are in doubt"
    calls = read_log(cg.log)
    assert overlaps(calls) == []
    per_job = Counter(int(c["job_id"]) for c in calls)
    attempts = Counter(int(job_id) for job_id, _ in rows)
    known = Counter(int(job_id) for job_id, outcome in rows if outcome not in (None, "unknown"))
    for job_id, job in jobs.items():
        assert job.status in TERMINAL | IN_DOUBT, job
        check_in_doubt(job)
        # every call had its attempt row first, and every recorded outcome a call
        assert known[job_id] <= per_job[job_id] <= attempts[job_id], job
