"""A Hypothesis state machine over the store's queue operations.

Random submits, claims by several workers, attempts with random outcomes (decided by the
real retry policy), cancels, retries by a person, clock jumps, worker crashes and lease
sweeps; after every step the design's invariants are checked against the database.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from callgate.domain import (
    CLAIMABLE,
    AttemptResult,
    Kind,
    Outcome,
    Status,
    from_ts,
    make_spec,
)
from callgate.engine.meter import GCRA
from callgate.engine.retry import KindPolicy, RetryPolicy
from callgate.exceptions import InvalidTransition
from callgate.store import Store, open_store
from callgate.store.base import Finish, StartAttempt
from tests import pg

NUMBERS = ["+15005550006", "+15005550122", "+12025550143", "+12125550100"]
WORKERS = ["w1", "w2"]
LEASE = 30.0
MAX_CONCURRENCY = 3
OUTCOMES = [
    Outcome.DELIVERED,
    Outcome.BUSY,
    Outcome.PROVIDER_ERROR,
    Outcome.PERMANENT,
    Outcome.RATE_LIMITED,
    Outcome.UNKNOWN,
]


class QueueMachine(RuleBasedStateMachine):
    def __init__(self, database: Callable[[], tuple[str, Callable[[], None]]]) -> None:
        super().__init__()
        url, self._release = database()
        self.store: Store = open_store(url)
        self.now = 1_800_000_000.0
        self.meter = GCRA(rate=None)
        policy = KindPolicy(max_attempts=3, retry_delay=60.0, backoff_base=5.0)
        self.retry = RetryPolicy({k: policy for k in Kind}, rng=random.Random(0))
        self.submitted: set[int] = set()
        self.claimed: dict[int, str] = {}  # job → worker, claimed but not started
        self.sending: dict[int, tuple[str, int]] = {}  # job → (worker, attempt number)
        self.terminal: dict[int, Status] = {}

    def teardown(self) -> None:
        self.store.close()
        self._release()

    # -- rules ---------------------------------------------------------------------------

    @rule(
        number=st.sampled_from(NUMBERS),
        strict=st.booleans(),
        ttl=st.one_of(st.none(), st.floats(1, 400)),
        delay=st.one_of(st.none(), st.floats(0, 100)),
    )
    def submit(self, number: str, strict: bool, ttl: float | None, delay: float | None) -> None:
        spec = make_spec(
            Kind.FAX,
            to=number,
            media_url="https://example.org/a.pdf",
            strict_order=strict,
            not_before=None if delay is None else from_ts(self.now) + timedelta(seconds=delay),
            expires_at=None if ttl is None else from_ts(self.now) + timedelta(seconds=ttl + 100),
        )
        [result] = self.store.submit([spec], self.now)
        self.submitted.add(result.job.id)

    @rule(worker=st.sampled_from(WORKERS), limit=st.integers(1, 4))
    def claim(self, worker: str, limit: int) -> None:
        before = {j.id: j for j in self.store.list_jobs(limit=10_000)}
        claimed = self.store.claim(
            worker,
            self.now,
            limit=limit,
            lease=LEASE,
            max_concurrency=MAX_CONCURRENCY,
            meter=self.meter,
        )
        for item in claimed:
            job = before[item.job.id]
            assert job.status in CLAIMABLE
            assert job.run_at.timestamp() <= self.now + 1e-6  # datetimes hold µs
            self._assert_head_of_group(job.id, job.group_key, before)
            self.claimed[job.id] = worker

    def _assert_head_of_group(self, job_id: int, group: str, before: dict) -> None:  # type: ignore[type-arg]
        for other in before.values():
            if other.group_key != group or other.id >= job_id:
                continue
            assert other.status is not Status.IN_FLIGHT
            due = other.status in CLAIMABLE and other.run_at.timestamp() <= self.now - 1e-6
            assert not due, f"job {job_id} claimed before older due job {other.id}"
            waiting_strict = other.status in CLAIMABLE and other.strict_order
            assert not waiting_strict, f"job {job_id} overtook strict job {other.id}"

    @precondition(lambda self: bool(self.claimed))
    @rule(data=st.data())
    def start(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.claimed)))
        worker = self.claimed.pop(job_id)
        [number] = self.store.write_batch([StartAttempt(job_id, worker, self.now)])
        if number is not None:
            self.sending[job_id] = (worker, number)

    @precondition(lambda self: bool(self.sending))
    @rule(data=st.data(), outcome=st.sampled_from(OUTCOMES))
    def finish(self, data: st.DataObject, outcome: Outcome) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.sending)))
        _, number = self.sending.pop(job_id)
        job = self.store.get_job(job_id)
        decision = self.retry.decide(job, job.attempts, AttemptResult(outcome), self.now)
        self.store.write_batch([Finish(job_id, number, AttemptResult(outcome), decision, self.now)])

    @precondition(lambda self: bool(self.submitted))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.submitted)))
        try:
            self.store.cancel(job_id, self.now)
        except InvalidTransition:
            assert self.store.get_job(job_id).status.terminal

    @precondition(lambda self: bool(self.submitted))
    @rule(data=st.data())
    def person_retries(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.submitted)))
        try:
            self.store.retry(job_id, self.now)
            self.terminal.pop(job_id, None)
        except InvalidTransition:
            pass

    @rule(dt=st.floats(0.1, 700))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(worker=st.sampled_from(WORKERS))
    def crash(self, worker: str) -> None:
        """The worker dies: whatever it held is settled only by the lease sweep."""
        self.claimed = {j: w for j, w in self.claimed.items() if w != worker}
        self.sending = {j: v for j, v in self.sending.items() if v[0] != worker}

    @rule(worker=st.sampled_from(WORKERS))
    def heartbeat(self, worker: str) -> None:
        held = [j for j, w in self.claimed.items() if w == worker]
        held += [j for j, (w, _) in self.sending.items() if w == worker]
        self.store.heartbeat(worker, self.now, LEASE, held)

    @rule()
    def sweep(self) -> None:
        sending = dict(self.sending)
        self.store.expire_leases(self.now)
        self.store.expire_overdue(self.now)
        for job_id in sending:
            status = self.store.get_job(job_id).status
            if status is not Status.IN_FLIGHT:
                # a live worker lost its lease mid-send: the job may never go back to the
                # queue, only to uncertain
                assert status is Status.UNCERTAIN or status.terminal
                del self.sending[job_id]
        for job_id in list(self.claimed):
            if self.store.get_job(job_id).status is not Status.IN_FLIGHT:
                del self.claimed[job_id]

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def nothing_lost(self) -> None:
        counts = self.store.counts()
        assert sum(counts.values()) == len(self.submitted)

    @invariant()
    def one_in_flight_per_group_and_cap(self) -> None:
        rows = self.store._read(  # type: ignore[attr-defined]
            "SELECT group_key, count(*) FROM jobs WHERE status = 'in_flight' GROUP BY group_key"
        )
        assert all(n == 1 for _, n in rows)
        assert sum(n for _, n in rows) <= MAX_CONCURRENCY

    @invariant()
    def groups_table_matches_jobs(self) -> None:
        truth = dict.fromkeys(NUMBERS, (0, 0))
        for gk, status in self.store._read(  # type: ignore[attr-defined]
            "SELECT group_key, status FROM jobs"
        ):
            pending, busy = truth[gk]
            truth[gk] = (pending + (status in CLAIMABLE), busy + (status == "in_flight"))
        derived = {
            gk: (p, b)
            for gk, p, b in self.store._read(  # type: ignore[attr-defined]
                "SELECT group_key, pending, busy FROM groups"
            )
        }
        for gk, value in truth.items():
            assert derived.get(gk, (0, 0)) == value, gk

    @invariant()
    def no_group_is_forgotten(self) -> None:
        """A free group whose head is due (and not held back by a waiting strict job) is
        visible to the next claim: its ``wake_at`` has come."""
        jobs = sorted(self.store.list_jobs(limit=10_000), key=lambda j: j.id)
        wake = dict(
            self.store._read(  # type: ignore[attr-defined]
                "SELECT group_key, wake_at FROM groups"
            )
        )
        for group in NUMBERS:
            mine = [j for j in jobs if j.group_key == group]
            if any(j.status is Status.IN_FLIGHT for j in mine):
                continue
            for job in (j for j in mine if j.status in CLAIMABLE):
                if job.run_at.timestamp() <= self.now - 1e-6:
                    assert wake[group] <= self.now, f"group {group} forgotten"
                    break
                if job.strict_order:
                    break

    @invariant()
    def terminal_stays_terminal(self) -> None:
        for job in self.store.list_jobs(limit=10_000):
            if job.id in self.terminal:
                assert job.status is self.terminal[job.id]
            elif job.status.terminal:
                self.terminal[job.id] = job.status

    @invariant()
    def attempts_within_limits(self) -> None:
        for job in self.store.list_jobs(limit=10_000):
            assert 0 <= job.attempts <= 3
            live = [
                a for a in self.store.attempts(job.id) if a.state != "done" and a.outcome is None
            ]
            assert len(live) <= 1


SETTINGS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_queue_operations_keep_the_invariants(backend: str, request: pytest.FixtureRequest):
    if backend == "sqlite":

        def database() -> tuple[str, Callable[[], None]]:
            tmp = tempfile.TemporaryDirectory()
            return f"sqlite:///{Path(tmp.name) / 'sm.db'}", tmp.cleanup

    else:
        databases: pg.Databases = request.getfixturevalue("pg_databases")

        def database() -> tuple[str, Callable[[], None]]:
            url = databases.fresh()
            return url, lambda: databases.drop(url)

    run_state_machine_as_test(lambda: QueueMachine(database), settings=SETTINGS)
