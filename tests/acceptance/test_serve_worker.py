"""Where ``callgate serve`` runs its worker (``CALLGATE_SERVE_WORKER``, issue 14).

On PostgreSQL the default (``auto``) is a ``callgate worker`` child process: the API
and the worker do not share one interpreter's lock, so the API answers while the worker
sends. The child stops with ``serve`` (SIGTERM, or even when ``serve`` is killed
outright), and a child that exits on its own takes ``serve`` down with a non-zero exit,
as a worker thread that fails does. ``none`` makes an API-only node.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from callgate.config import load_settings
from callgate.testing import GUARDRAILS_OFF_ENV, ServeProcess
from tests import pg

from .support import Callgate, wait_for

STARTUP = 60.0
OK = "+15005550006"


@pytest.fixture
def pg_cg(tmp_path: Path, pg_databases: pg.Databases) -> Iterator[Callgate]:
    url = pg_databases.fresh()
    gate = Callgate(tmp_path)
    gate.env = {
        "CALLGATE_DATABASE_URL": url,
        "CALLGATE_SIMULATOR_LOG": str(gate.log),
        "CALLGATE_RATE": "0",
        "CALLGATE_IDLE_POLL": "0.05",
        "CALLGATE_POLL_INITIAL": "0.05",
        "CALLGATE_SHUTDOWN_GRACE": "5",
        **GUARDRAILS_OFF_ENV,
    }
    yield gate
    gate.cleanup()
    pg_databases.drop(url)


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def submit(server: ServeProcess, n: int) -> list[int]:
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as c:
        ids = []
        for i in range(n):
            r = c.post("/v1/messages", json={"to": OK, "body": f"m{i}"})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        return ids


def statuses(server: ServeProcess, ids: list[int]) -> list[str]:
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as c:
        return [c.get(f"/v1/jobs/{i}").json()["status"] for i in ids]


def test_auto_is_a_worker_process_on_postgresql_only() -> None:
    pg_url = "postgresql://u@127.0.0.1:5432/d"
    assert load_settings(database_url=pg_url).serve_worker_mode() == "process"
    assert load_settings(database_url="sqlite:///x.db").serve_worker_mode() == "thread"
    settings = load_settings(database_url=pg_url, serve_worker="thread")
    assert settings.serve_worker_mode() == "thread"


def test_serve_on_postgresql_sends_through_its_worker_process_and_stops_it(
    pg_cg: Callgate,
) -> None:
    with ServeProcess.start(cwd=pg_cg.home, env=pg_cg.environ(), timeout=STARTUP) as server:
        kids = children(server.proc.pid)
        assert len(kids) == 1, kids
        cmdline = Path(f"/proc/{kids[0]}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:4] == [b"-m", b"callgate", b"worker"]
        ids = submit(server, 5)
        wait_for(lambda: set(statuses(server, ids)) == {"delivered"}, 30, "the jobs delivered")
        assert server.stop() == 0, server.stderr.text
        assert not alive(kids[0])
        assert "callgate worker: stopped; sent 5" in server.stderr.text


def test_a_worker_process_that_dies_takes_serve_down(pg_cg: Callgate) -> None:
    with ServeProcess.start(cwd=pg_cg.home, env=pg_cg.environ(), timeout=STARTUP) as server:
        (kid,) = children(server.proc.pid)
        os.kill(kid, signal.SIGKILL)
        assert server.proc.wait(timeout=30) != 0
        server.stderr.wait_for(f"worker process \\(pid {kid}\\) exited", 10, "the reason")


def test_the_worker_process_does_not_outlive_a_killed_serve(pg_cg: Callgate) -> None:
    with ServeProcess.start(cwd=pg_cg.home, env=pg_cg.environ(), timeout=STARTUP) as server:
        (kid,) = children(server.proc.pid)
        server.proc.kill()  # no chance to stop its child: the parent-death signal does
        server.proc.wait(timeout=10)
        wait_for(lambda: not alive(kid), 30, "the worker process to stop")


def test_none_is_an_api_node_whose_jobs_wait_for_a_worker(pg_cg: Callgate) -> None:
    env = pg_cg.environ({"CALLGATE_SERVE_WORKER": "none"})
    with ServeProcess.start(cwd=pg_cg.home, env=env, timeout=STARTUP) as server:
        assert children(server.proc.pid) == []
        ids = submit(server, 3)
        assert statuses(server, ids) == ["queued"] * 3
        worker = pg_cg.start("worker", env={"CALLGATE_SERVE_WORKER": "none"})
        try:
            wait_for(lambda: set(statuses(server, ids)) == {"delivered"}, 30, "delivered")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        assert server.stop() == 0
