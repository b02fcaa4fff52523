"""Kill -9 a worker in the middle of a run, twice, then drain: nothing is lost, no line is
ever dialled twice at once, nothing is sent more often than its attempts allow.

Judged from the simulator's call log (what the "provider" saw) and the store.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from callgate.domain import TERMINAL, Status
from callgate.store.sqlite import SQLiteStore
from tests.simlog import overlaps, read_log

from .support import IN_DOUBT, Callgate, check_in_doubt, query, submit_faxes, wait_for

pytestmark = pytest.mark.slow

LINES = [f"+1202555{200 + i:04d}" for i in range(30)]
FAXES = 300  # ten per line
SETTINGS = {
    "CALLGATE_RATE": "0",
    "CALLGATE_SIMULATOR_FAX_DURATION": "0.1",
    "CALLGATE_SIMULATOR_MIX": '{"busy": 0.2}',
    "CALLGATE_FAX_RETRY_DELAY": "0.1",
    "CALLGATE_LEASE": "1",
    "CALLGATE_SWEEP_INTERVAL": "0.2",
}


def run_then_kill(cg: Callgate, calls_before: int, progress: int) -> tuple[int, str]:
    """Start a worker, SIGKILL it once the provider has seen ``progress`` more calls."""
    worker = cg.start("worker")
    wait_for(
        lambda: len(read_log(cg.log)) >= calls_before + progress or worker.poll() is not None,
        timeout=30,
        what=f"{progress} more provider calls",
    )
    assert worker.poll() is None, f"the worker exited by itself: {worker.communicate()[1]}"
    worker.send_signal(signal.SIGKILL)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    return len(read_log(cg.log)), stderr


def test_kill_9_twice_mid_run_then_drain(cg: Callgate) -> None:
    cg.env.update(SETTINGS)
    ids = submit_faxes(cg.db, [LINES[i % len(LINES)] for i in range(FAXES)])
    assert len(ids) == FAXES

    seen, first_stderr = run_then_kill(cg, 0, progress=60)
    stuck = query(cg.db, "SELECT count(*) FROM jobs WHERE status = 'in_flight'")[0][0]
    assert stuck > 0, "precondition: the kill should land while faxes are in flight"
    seen, second_stderr = run_then_kill(cg, seen, progress=60)
    assert seen < FAXES, "precondition: the second kill should land mid-run too"

    drain = cg.run("worker", "--drain", timeout=90)
    assert drain.returncode == 0, drain.stderr
    for stderr in (first_stderr, second_stderr, drain.stderr):
        assert "Traceback" not in stderr, stderr

    # nothing lost, nothing left behind
    store = SQLiteStore(str(cg.db))
    try:
        counts = store.counts()
        jobs = {j.id: j for j in store.list_jobs(limit=10_000)}
    finally:
        store.close()
    assert sum(counts.values()) == FAXES, counts
    assert sorted(jobs) == sorted(ids)
    assert len(cg.jobs()) == FAXES  # and the CLI agrees
    left = {s: n for s, n in counts.items() if n and Status(s) not in TERMINAL | IN_DOUBT}
    assert left == {}, f"jobs left unsettled: {left}"
    assert counts["delivered"] > FAXES // 2, counts
    # a kill mid-fax makes the fax uncertain (then held: the restarted simulator cannot
    # tell whether it was sent): never resent blindly, and said why
    assert counts["uncertain"] + counts["held"] > 0, counts
    for job in jobs.values():
        check_in_doubt(job)

    # what the provider saw
    calls = read_log(cg.log)
    assert overlaps(calls) == [], "two faxes to one number at once"
    per_job = Counter(c["job_id"] for c in calls)
    delivered = Counter(c["job_id"] for c in calls if c["outcome"] == "delivered")
    assert set(per_job) <= set(ids)
    for job_id, job in jobs.items():
        assert per_job[job_id] <= job.attempts, (job, per_job[job_id])
        assert delivered[job_id] <= 1, f"job {job_id} was delivered {delivered[job_id]} times"
        if job.status is Status.DELIVERED:
            # every attempt of a delivered job ran to its end in a live worker
            assert per_job[job_id] == job.attempts, (job, per_job[job_id])
            assert delivered[job_id] == 1, job
            mine = [c for c in calls if c["job_id"] == job_id]
            assert mine[-1]["outcome"] == "delivered", mine
