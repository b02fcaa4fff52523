"""Reconciliation's queue operations, portable SQL for both backends: claim ``uncertain``
jobs for a look-up at the provider, and settle them by what it said.

An ``uncertain`` job is one whose last attempt may or may not have reached the provider
(its worker's lease ran out mid-send, or no final status came in time). A reconciler
claims it the way a worker claims a queued job: a lease in ``lease_expires_at``, taken
with ``SKIP LOCKED`` on PostgreSQL, so two reconcilers never look the same job up at
once, and one that dies leaves it claimable again when the lease runs out. ``run_at``
is when the job is next due for a look-up (a provider that could not answer is asked
again later). Adopting the provider's answer is the worker's own ``Finish`` write, which
accepts an ``uncertain`` job whose attempt number still matches.
"""

from __future__ import annotations

from collections.abc import Sequence

from callgate.domain import Decision, Job, Status
from callgate.store.base import Uncertain
from callgate.store.sql_tx import JOB_COLUMNS, SQLParts, apply, job_from_row, uncount

_COLUMNS = ", ".join(f"j.{c.strip()}" for c in JOB_COLUMNS.split(","))


class SQLReconcile(SQLParts):
    """The reconciler's side of the store (mixed into :class:`~callgate.store.sql.SQLStore`)."""

    def uncertain_due(self, now: float) -> int:
        """How many ``uncertain`` jobs are due for a look-up and not claimed."""
        [(n,)] = self._read(
            "SELECT count(*) FROM jobs WHERE status = 'uncertain' AND run_at <= ? "
            "AND (lease_expires_at IS NULL OR lease_expires_at <= ?)",
            (now, now),
        )
        return int(n)

    def known_refs(self, refs: Sequence[str]) -> set[str]:
        """Which of these provider references callgate recorded for an attempt."""
        known: set[str] = set()
        for i in range(0, len(refs), 500):
            part = list(refs[i : i + 500])
            marks = ",".join("?" * len(part))
            rows = self._read(
                f"SELECT provider_ref FROM attempts WHERE provider_ref IN ({marks})", part
            )
            known.update(str(r[0]) for r in rows)
        return known

    def claim_uncertain(
        self, worker_id: str, now: float, *, limit: int, lease: float
    ) -> list[Uncertain]:
        """Up to ``limit`` due ``uncertain`` jobs, oldest first, leased to ``worker_id``,
        each with the attempt in doubt (its number, reference and times)."""
        with self._write() as c:
            rows = c.execute(
                f"SELECT {_COLUMNS}, j.attempt_no, a.provider_ref, a.started_at, a.ended_at "
                "FROM jobs j LEFT JOIN attempts a ON a.job_id = j.id AND a.number = j.attempt_no "
                "WHERE j.status = 'uncertain' AND j.run_at <= ? "
                "AND (j.lease_expires_at IS NULL OR j.lease_expires_at <= ?) "
                f"ORDER BY j.id LIMIT ?{self._locking(of='j', skip=True)}",
                (now, now, limit),
            ).fetchall()
            c.executemany(
                "UPDATE jobs SET worker_id = ?, lease_expires_at = ? WHERE id = ?",
                [(worker_id, now + lease, row[0]) for row in rows],
            )
        width = len(JOB_COLUMNS.split(","))
        out = []
        for row in rows:
            job: Job = job_from_row(row[:width])
            number, ref, started, ended = row[width:]
            out.append(
                Uncertain(
                    job=job,
                    number=int(number),
                    provider_ref=ref or job.provider_ref,
                    started_at=float(started)
                    if started is not None
                    else job.updated_at.timestamp(),
                    ended_at=None if ended is None else float(ended),
                )
            )
        return out

    def settle_uncertain(
        self,
        job_id: int,
        number: int,
        worker_id: str,
        now: float,
        *,
        decision: Decision | None = None,
        retry_at: float | None = None,
        ref: str | None = None,
        note: str | None = None,
    ) -> bool:
        """What a look-up decided for a claimed ``uncertain`` job (False if it is no longer
        this reconciler's, or no longer in doubt: a person retried or canceled it):

        * ``decision``: the job moves on (``queued`` again when the attempt provably never
          reached the provider, which then does not count; ``held`` when it cannot be
          told); the attempt keeps its ``unknown`` outcome and gets ``note``;
        * no decision: it stays ``uncertain``, to be looked up again at ``retry_at``;
        * ``ref``: the provider's record of the attempt, found by listing, kept for the
          next look-up.
        """
        with self._write() as c:
            row = c.execute(
                "SELECT status, attempt_no, worker_id FROM jobs WHERE id = ?" + self._locking(),
                (job_id,),
            ).fetchone()
            if row is None or row[0] != Status.UNCERTAIN or row[1] != number or row[2] != worker_id:
                return False
            if ref is not None:
                c.execute(
                    "UPDATE attempts SET provider_ref = ? WHERE job_id = ? AND number = ?",
                    (ref, job_id, number),
                )
                c.execute("UPDATE jobs SET provider_ref = ? WHERE id = ?", (ref, job_id))
            if note is not None:
                c.execute(
                    "UPDATE attempts SET error_message = ?, ended_at = coalesce(ended_at, ?) "
                    "WHERE job_id = ? AND number = ?",
                    (note, now, job_id, number),
                )
            if decision is None:
                c.execute(
                    "UPDATE jobs SET run_at = ?, worker_id = NULL, lease_expires_at = NULL "
                    "WHERE id = ?",
                    (retry_at if retry_at is not None else now, job_id),
                )
                return True
            if not decision.count_attempt:
                c.execute(
                    "UPDATE attempts SET counted = 0, state = 'done' "
                    "WHERE job_id = ? AND number = ?",
                    (job_id, number),
                )
                uncount(c, job_id, number)
            apply(c, job_id, decision, now)
            if decision.status in (Status.QUEUED, Status.RETRYING):
                self._notify(c)
            return True
