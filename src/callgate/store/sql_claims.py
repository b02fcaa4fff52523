"""Claiming (see :mod:`callgate.store.sql_lanes` for the lanes and DESIGN.md, *Claiming*):
the meter, one claim, the worker's writes, leases and the sweeps of lost or overdue jobs.
Mixed into :class:`~callgate.store.sql.SQLStore`; portable SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from callgate.domain import (
    EXPIRED,
    RELEASED,
    AttemptState,
    Decision,
    Job,
    Reason,
    Status,
)
from callgate.store.base import (
    Claimed,
    MeterPolicy,
    MeterState,
    Write,
    chunks,
)
from callgate.store.sql_lanes import RUNNING_SQL, SQLLanes, lanes_of
from callgate.store.sql_tx import (
    JOB_COLUMNS,
    Conn,
    SQLTx,
    apply,
    claimable_jobs,
    marks,
)


class SQLClaims(SQLLanes):
    """Mixed into :class:`~callgate.store.sql.SQLStore`."""

    def _take_claimable(self, c: Conn, ids: list[int], now: float) -> list[Job]:
        """The jobs of ``ids`` (heads found by this claim), to be marked in flight."""
        rows: list[Any] = []
        for part in chunks(ids):
            rows += c.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({marks(part)})", part
            ).fetchall()
        return claimable_jobs(c, rows, now)

    def _mark_in_flight(
        self, c: Conn, jobs: list[Job], worker_id: str, now: float, lease: float
    ) -> None:
        by_group = sorted(jobs, key=lambda j: j.group_key)  # one lock order everywhere
        c.executemany(
            "UPDATE jobs SET status = 'in_flight', worker_id = ?, lease_expires_at = ?, "
            "updated_at = ? WHERE id = ?",
            [(worker_id, now + lease, now, j.id) for j in by_group],
        )
        c.executemany(
            "UPDATE groups SET seq = ? WHERE group_key = ?",
            [(j.id, j.group_key) for j in by_group],
        )
        c.executemany(
            "INSERT INTO events (job_id, type, status, created_at, fanout) "
            "VALUES (?, 'job.in_flight', 'in_flight', ?, 0)",
            [(j.id, now) for j in jobs],
        )

    # -- the meter ----------------------------------------------------------------------

    def _meter_and_load(self, c: Conn) -> tuple[MeterState, int]:
        """The meter row (locked), then how many jobs are in flight. Two statements: on
        PostgreSQL a statement that waited for the lock would count from the snapshot it
        took before waiting, and let two claims both fill the last places."""
        state = self._meter(c)
        row = c.execute("SELECT count(*) FROM jobs WHERE status = 'in_flight'").fetchone()
        return state, int(row[0])

    def _meter(self, c: Conn) -> MeterState:
        """The meter row, locked: this serialises claims and meter changes."""
        row = c.execute(
            f"SELECT tat, rate, changed_at FROM meter WHERE name = 'global'{self._locking()}"
        ).fetchone()
        return MeterState(tat=row[0], rate=row[1], changed_at=row[2])

    @staticmethod
    def _save_meter(c: Conn, state: MeterState) -> None:
        c.execute(
            "UPDATE meter SET tat = ?, rate = ?, changed_at = ? WHERE name = 'global'",
            (state.tat, state.rate, state.changed_at),
        )

    def reserve_slots(
        self, now: float, meter: MeterPolicy, n: int, batch_id: int | None = None
    ) -> list[float]:
        with self._write() as c:
            state = self._meter(c)
            if batch_id is None:
                slots, state = meter.take(state, now, n)
            else:
                slots, state = self._reserve_lane_slots(c, now, meter, state, n, batch_id)
            self._save_meter(c, state)
        return slots

    def lower_rate(self, now: float, meter: MeterPolicy) -> float | None:
        with self._write() as c:
            state = meter.lowered(self._meter(c), now)
            self._save_meter(c, state)
        return state.rate

    # -- claiming -----------------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        now: float,
        *,
        limit: int,
        lease: float,
        max_concurrency: int,
        meter: MeterPolicy,
    ) -> list[Claimed]:
        """See :mod:`callgate.store.sql_lanes`: the API's jobs first, then the running
        batches round-robin, each batch job in a slot of its batch's meter and the global
        one."""
        with self._write() as c:
            state, in_flight = self._meter_and_load(c)
            want = min(limit, max_concurrency - in_flight)
            want = meter.allowance(state, now, want) if want > 0 else 0
            if want <= 0:
                return []
            direct = self._lane_heads(c, now, want, 0)
            lanes = self._lanes(c) if len(direct) < want else []
            picked = self._batch_heads(c, now, want - len(direct), lanes, meter) if lanes else {}
            ids = direct + [i for found in picked.values() for i in found]
            jobs = self._take_claimable(c, ids, now)
            live = [j for j in jobs if not j.expired(now)]
            for job in sorted(jobs, key=lambda j: j.id):
                if job.expired(now):
                    apply(c, job.id, EXPIRED, now)
            firsts = sorted((j for j in live if j.batch_id is None), key=lambda j: j.id)
            slots, state = meter.take(state, now, len(firsts))
            claimed = [Claimed(j, slot) for j, slot in zip(firsts, slots, strict=True)]
            later, state, served = self._lane_slots(
                [j for j in live if j.batch_id is not None], lanes, now, meter, state
            )
            claimed += later
            if not claimed:
                return []
            self._save_meter(c, state)
            self._save_lanes(c, served)
            self._mark_in_flight(c, [x.job for x in claimed], worker_id, now, lease)
        return claimed

    def next_wakeup(self, now: float, meter: MeterPolicy) -> float | None:
        rows = self._read("SELECT tat, rate, changed_at FROM meter WHERE name = 'global'")
        lanes = lanes_of(self._read(RUNNING_SQL))
        return self._lane_wakeup(now, meter, MeterState(*rows[0]), lanes)

    # -- worker writes ------------------------------------------------------------------

    def write_batch(self, writes: Sequence[Write]) -> list[Any]:
        with self._write() as c:
            tx = SQLTx(c, self._locking())
            return [tx.apply(w) for w in writes]

    def heartbeat(
        self, worker_id: str, now: float, lease: float, job_ids: Sequence[int] = ()
    ) -> int:
        n = 0
        with self._write() as c:
            # the worker is alive (the alerts' heartbeat rule): one row, in this transaction
            c.execute(
                "INSERT INTO workers (worker_id, started_at, heartbeat_at) VALUES (?, ?, ?) "
                "ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                (worker_id, now, now),
            )
            for part in chunks(sorted(job_ids)):
                # a job this worker is writing right now (its attempt, its end) is skipped,
                # not waited for (PostgreSQL: SKIP LOCKED): the next beat renews it, and a
                # heartbeat never takes part in a deadlock with the worker's own writes
                cur = c.execute(
                    "UPDATE jobs SET lease_expires_at = ? WHERE id IN "
                    f"(SELECT id FROM jobs WHERE id IN ({marks(part)}){self._locking(skip=True)}) "
                    "AND status = 'in_flight' AND worker_id = ?",
                    (now + lease, *part, worker_id),
                )
                n += cur.rowcount
        return n

    def expire_leases(self, now: float) -> int:
        with self._write() as c:
            n = self._settle_lost(c, "j.lease_expires_at < ?", now, LEASE_LOST, now)
            if n:
                self._notify(c)
            return n

    def expire_overdue(self, now: float) -> int:
        with self._write() as c:
            rows = c.execute(
                "SELECT id FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ? "
                "AND status IN ('queued', 'retrying', 'held') "
                f"ORDER BY group_key{self._locking(skip=True)}",
                (now,),
            ).fetchall()
            for (job_id,) in rows:
                apply(c, job_id, EXPIRED, now)
        return len(rows)

    def release_worker(self, worker_id: str, now: float) -> int:
        with self._write() as c:
            c.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,))
            n = self._settle_lost(c, "j.worker_id = ?", worker_id, WORKER_STOPPED, now)
            if n:
                self._notify(c)
            return n

    def _settle_lost(
        self, c: Conn, where: str, param: Any, decisions: LostClaim, now: float
    ) -> int:
        """Settle in-flight jobs whose worker is gone: ``uncertain`` (attempt outcome
        ``unknown``) if an attempt may have reached the provider, else back to the queue."""
        rows = c.execute(
            "SELECT j.id, j.attempt_no, a.state FROM jobs j LEFT JOIN attempts a "
            f"ON a.job_id = j.id AND a.number = j.attempt_no "
            f"WHERE j.status = 'in_flight' AND {where} "
            f"ORDER BY j.group_key{self._locking(of='j', skip=True)}",
            (param,),
        ).fetchall()
        sent, unsent = decisions
        for job_id, number, attempt_state in rows:
            if attempt_state in (AttemptState.SENDING, AttemptState.PENDING):
                c.execute(
                    "UPDATE attempts SET outcome = 'unknown' WHERE job_id = ? AND number = ?",
                    (job_id, number),
                )
                apply(c, job_id, sent, now)
            else:
                apply(c, job_id, Decision(unsent.status, unsent.reason, unsent.detail, now), now)
        return len(rows)


LostClaim = tuple[Decision, Decision]
LEASE_LOST: LostClaim = (
    Decision(
        Status.UNCERTAIN,
        Reason.LEASE_LOST,
        "the worker's lease ran out while the "
        "attempt may have reached the provider; it will not be resent blindly",
    ),
    Decision(
        Status.QUEUED, Reason.LEASE_LOST, "the worker's lease ran out before it sent anything"
    ),
)
WORKER_STOPPED: LostClaim = (
    Decision(
        Status.UNCERTAIN,
        "worker_stopped",
        "the worker stopped while the attempt was under way; it will not be resent blindly",
    ),
    RELEASED,
)
