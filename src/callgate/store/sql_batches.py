"""Batches in the SQL stores: the batch row, its rows queued chunk by chunk through the
set-based submit, the report of rows that are not jobs, and the results by input line.

Mixed into :class:`~callgate.store.sql.SQLStore`; portable SQL for SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from callgate.domain import (
    CANCELABLE_NOW,
    Batch,
    BatchRowError,
    BatchStatus,
    Decision,
    JobSpec,
    Kind,
    Reason,
    Status,
    from_ts,
    iso,
    to_datetime,
    usable_rate,
)
from callgate.exceptions import InvalidTransition, NotFound
from callgate.store.sql_keys import key_is_live
from callgate.store.sql_lanes import current_rate
from callgate.store.sql_outbox import add_system_webhook
from callgate.store.sql_tx import Conn, SQLParts, move, move_matching, seen_keys

#: the reason on a job held because its batch is paused
BATCH_PAUSED = "batch_paused"
#: the reason on a job held because its batch's rate cannot be used
INVALID_RATE = "invalid_rate"
#: the reason on a job blocked because its number is suppressed (as the guardrails say)
SUPPRESSED = "suppressed"

BATCH_COLUMNS = (
    "id, name, kind, status, rate, strict, total_rows, queued_rows, invalid_rows, "
    "duplicate_rows, created_at, updated_at, completed_at, ingested_at"
)
#: a batch's jobs per status
COUNTS_SQL = "SELECT status, COUNT(*) FROM jobs WHERE batch_id = ? GROUP BY status"
#: the achieved rate is measured over this many seconds
RATE_WINDOW = 10.0
ACTIVE_SQL = "('queued', 'in_flight', 'retrying', 'held', 'uncertain')"
RESULTS_SQL = """
SELECT j.line_no, j.id, j.status, j.provider_ref, a.error_code, a.error_message, j.attempts
FROM jobs j
LEFT JOIN attempts a ON a.job_id = j.id AND a.number = j.attempt_no
WHERE j.batch_id = ? AND j.line_no > ?
ORDER BY j.line_no LIMIT ?
"""
ERRORS_SQL = """
SELECT e.line, e.column_name, e.code, e.message, e.duplicate_of,
       COALESCE(e.job_id, d.id, f.job_id)
FROM batch_errors e
LEFT JOIN jobs d ON d.batch_id = e.batch_id AND d.line_no = e.duplicate_of
LEFT JOIN batch_errors f ON f.batch_id = e.batch_id AND f.line = e.duplicate_of
WHERE e.batch_id = ? AND e.line > ?
ORDER BY e.line LIMIT ?
"""


def _text(value: str | None) -> str | None:
    """Text as PostgreSQL can store it (a file may name a column with a NUL in it)."""
    return None if value is None else value.replace("\x00", "\ufffd")


def _batch(row: Sequence[Any], counts: Sequence[Sequence[Any]] = ()) -> Batch:
    """A batch from a row of ``BATCH_COLUMNS`` and rows of ``COUNTS_SQL``."""
    return Batch(
        id=int(row[0]),
        name=row[1],
        kind=Kind(row[2]),
        status=BatchStatus(row[3]),
        rate=None if row[4] is None else float(row[4]),
        strict=bool(row[5]),
        total_rows=int(row[6]),
        queued_rows=int(row[7]),
        invalid_rows=int(row[8]),
        duplicate_rows=int(row[9]),
        created_at=from_ts(row[10]),
        updated_at=from_ts(row[11]),
        completed_at=to_datetime(row[12]),
        ingested_at=to_datetime(row[13]),
        counts={str(status): int(n) for status, n in counts},
    )


def _completed_event(batch: Batch) -> dict[str, Any]:
    """The ``data`` of a ``batch.completed`` event."""
    return {
        "batch_id": batch.id,
        "name": batch.name,
        "status": str(batch.status),
        "total_rows": batch.total_rows,
        "queued_rows": batch.queued_rows,
        "invalid_rows": batch.invalid_rows,
        "duplicate_rows": batch.duplicate_rows,
        "counts": dict(batch.counts),
        "created_at": iso(batch.created_at),
        "completed_at": iso(batch.completed_at),
    }


class SQLBatches(SQLParts):
    """Mixed into :class:`~callgate.store.sql.SQLStore`."""

    def _insert(
        self,
        c: Conn,
        specs: Sequence[JobSpec],
        now: float,
        scope: str,
        batch: tuple[int, Sequence[int]] | None = None,
    ) -> list[int]:
        raise NotImplementedError  # provided by SQLStore

    def create_batch(
        self,
        *,
        kind: Kind,
        now: float,
        name: str | None = None,
        rate: float | None = None,
        strict: bool = False,
        scope: str = "",
    ) -> Batch:
        """A new, empty batch, ``running`` (rows are added with :meth:`add_batch_rows`)."""
        with self._write() as c:
            if scope:
                key_is_live(c, scope)
            row = c.execute(
                "INSERT INTO batches (name, kind, status, rate, strict, created_at, updated_at, "
                f"api_key_id) VALUES (?, ?, 'running', ?, ?, ?, ?, ?) RETURNING {BATCH_COLUMNS}",
                (name, str(kind), rate, int(strict), now, now, scope or None),
            ).fetchone()
            c.execute("INSERT INTO batch_meters (batch_id) VALUES (?)", (row[0],))
        return _batch(row)

    def add_batch_rows(
        self,
        batch_id: int,
        rows: Sequence[tuple[int, JobSpec]],
        errors: Sequence[BatchRowError],
        now: float,
        *,
        scope: str = "",
        block_suppressed: bool = True,
    ) -> int:
        """Queue one chunk of valid ``(line, spec)`` rows as the batch's jobs and keep
        ``errors``, in one transaction; return how many rows became new jobs.

        With ``block_suppressed``, a row to a number on the suppression list for its kind
        (say after a 21610 answer to an earlier row) is ``blocked`` at once.

        A row whose idempotency key was used before (outside this batch) is not queued
        again: it is reported as a duplicate of that job (or, if the key was used for
        another request, as ``idempotency_conflict``).
        """
        report = list(errors)
        with self._write() as c:
            keys = [s.idempotency_key for _, s in rows if s.idempotency_key is not None]
            known = seen_keys(c, keys, scope)
            new: list[tuple[int, JobSpec]] = []
            for line, spec in rows:
                seen = known.get(spec.idempotency_key or "")
                if seen is None:
                    new.append((line, spec))
                elif seen[1] == spec.fingerprint():
                    report.append(
                        BatchRowError(
                            line,
                            "idempotency_key",
                            "duplicate",
                            f"idempotency key already used for job {seen[0]}",
                            job_id=seen[0],
                        )
                    )
                else:
                    report.append(
                        BatchRowError(
                            line,
                            "idempotency_key",
                            "idempotency_conflict",
                            f"idempotency key was used for job {seen[0]} with a different request",
                        )
                    )
            status = c.execute(
                f"SELECT status FROM batches WHERE id = ?{self._locking()}", (batch_id,)
            ).fetchone()[0]
            ids = self._insert(
                c, [s for _, s in new], now, scope, batch=(batch_id, [line for line, _ in new])
            )
            if ids:
                blocked = (
                    self._block_suppressed(c, batch_id, ids, now) if block_suppressed else set()
                )
                rest = sorted(set(ids) - blocked)
                self._follow_batch(c, BatchStatus(status), rest, now)
                self._notify(c)
            if report:
                c.executemany(
                    "INSERT INTO batch_errors (batch_id, line, column_name, code, message, "
                    "duplicate_of, job_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            batch_id,
                            e.line,
                            _text(e.column),
                            e.code,
                            _text(e.message),
                            e.duplicate_of,
                            e.job_id,
                        )
                        for e in report
                    ],
                )
            dups = sum(1 for e in report if e.code == "duplicate")
            c.execute(
                "UPDATE batches SET total_rows = total_rows + ?, queued_rows = queued_rows + ?, "
                "invalid_rows = invalid_rows + ?, duplicate_rows = duplicate_rows + ?, "
                "updated_at = ? WHERE id = ?",
                (len(rows) + len(errors), len(ids), len(report) - dups, dups, now, batch_id),
            )
        return len(ids)

    @staticmethod
    def _block_suppressed(c: Conn, batch_id: int, ids: list[int], now: float) -> set[int]:
        """Block the new jobs (ids) whose number is suppressed for their kind."""
        rows = c.execute(
            "SELECT j.id, j.to_number, j.kind, min(s.reason) FROM jobs j "
            "JOIN suppressions s ON s.number = j.to_number AND s.kind IN (j.kind, '*') "
            "WHERE j.batch_id = ? AND j.id BETWEEN ? AND ? GROUP BY j.id, j.to_number, j.kind "
            "ORDER BY j.group_key",
            (batch_id, min(ids), max(ids)),
        ).fetchall()
        for job_id, number, kind, why in rows:
            move(
                c,
                int(job_id),
                Status.BLOCKED,
                now,
                reason=SUPPRESSED,
                detail=f"{number} is on the suppression list for {kind} ({why})",
            )
        return {int(r[0]) for r in rows}

    @staticmethod
    def _follow_batch(c: Conn, status: BatchStatus, ids: list[int], now: float) -> None:
        """Rows that arrive while their batch is paused are held; canceled, canceled."""
        if status is BatchStatus.PAUSED:
            for job_id in ids:
                move(c, job_id, Status.HELD, now, reason=BATCH_PAUSED, detail="the batch is paused")
        elif status is BatchStatus.CANCELED:
            for job_id in ids:
                move(
                    c,
                    job_id,
                    Status.CANCELED,
                    now,
                    reason=Reason.CANCELED,
                    detail="the batch was canceled",
                )

    def pause_batch(self, batch_id: int, now: float, *, reason: str = BATCH_PAUSED) -> Batch:
        """Hold the batch's queued jobs (``held``, reason ``batch_paused``) until resumed;
        jobs in flight finish their attempt."""
        self._set_batch_status(batch_id, {BatchStatus.RUNNING}, BatchStatus.PAUSED, now)
        self._steer(batch_id, "status IN ('queued', 'retrying')", now, Status.HELD, reason)
        self._unlane(batch_id)
        return self.get_batch(batch_id)

    def hold_unusable_batches(self, now: float) -> list[Batch]:
        """Running batches whose stored rate no meter can run at (``inf``, ``0``, ...:
        written before rates were checked, or by hand) are paused, their jobs held with
        reason ``invalid_rate``: that batch's error, never the worker's. Returns them."""
        rows = self._read("SELECT id, rate FROM batches WHERE status = 'running'")
        bad = [int(b) for b, rate in rows if not usable_rate(None if rate is None else rate)]
        return [self.pause_batch(b, now, reason=INVALID_RATE) for b in bad]

    def resume_batch(self, batch_id: int, now: float) -> Batch:
        """Queue the jobs a pause held again (a retry delay still counts: run_at is kept)."""
        self._set_batch_status(batch_id, {BatchStatus.PAUSED}, BatchStatus.RUNNING, now)
        self._steer(
            batch_id, f"status = 'held' AND reason = '{BATCH_PAUSED}'", now, Status.QUEUED, None
        )
        return self.get_batch(batch_id)

    def cancel_batch(self, batch_id: int, now: float) -> Batch:
        """Cancel every job of the batch not yet ended (one in flight: after its attempt)."""
        self._set_batch_status(
            batch_id, {BatchStatus.RUNNING, BatchStatus.PAUSED}, BatchStatus.CANCELED, now
        )
        cancelable = ", ".join(f"'{s}'" for s in sorted(CANCELABLE_NOW))
        self._steer(batch_id, f"status IN ({cancelable})", now, Status.CANCELED, Reason.CANCELED)
        with self._write() as c:
            c.execute(
                "UPDATE jobs SET cancel_requested = 1 WHERE batch_id = ? AND status = 'in_flight'",
                (batch_id,),
            )
        self._unlane(batch_id)
        return self.get_batch(batch_id)

    def _unlane(self, batch_id: int) -> None:
        """Groups still waiting in a batch's lane that no claim will look in any more (the
        batch paused or ended) go back to lane 0, where a claim sorts each out (their
        jobs from other batches or the API must not wait for this one)."""
        with self._write() as c:
            c.execute(
                "UPDATE groups SET lane = 0 WHERE lane = ? AND pending > 0 AND busy = 0",
                (batch_id,),
            )

    def _set_batch_status(
        self, batch_id: int, allowed: set[BatchStatus], status: BatchStatus, now: float
    ) -> None:
        with self._write() as c:
            row = c.execute(
                f"SELECT status FROM batches WHERE id = ?{self._locking()}", (batch_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no batch {batch_id}", field="id")
            if BatchStatus(row[0]) not in allowed:
                raise InvalidTransition(f"batch {batch_id} is {row[0]}; it cannot be {status}")
            c.execute(
                "UPDATE batches SET status = ?, updated_at = ? WHERE id = ?",
                (str(status), now, batch_id),
            )

    def _steer(
        self, batch_id: int, where: str, now: float, status: Status, reason: str | None
    ) -> None:
        """Move the batch's jobs matching ``where`` to ``status``, each with its event."""
        detail = {
            Status.HELD: "the batch's rate cannot be used"
            if reason == INVALID_RATE
            else "the batch is paused",
            Status.QUEUED: "the batch was resumed",
            Status.CANCELED: "the batch was canceled",
        }[status]
        move_matching(
            self, f"batch_id = ? AND {where}", (batch_id,), now, Decision(status, reason, detail)
        )

    def get_batch(self, batch_id: int, now: float | None = None) -> Batch:
        """The batch with its jobs per status and its rate now; given ``now``, also the
        rate achieved over the last ten seconds and the time left at that rate."""
        rows = self._read(
            f"SELECT {', '.join('b.' + c.strip() for c in BATCH_COLUMNS.split(','))}, m.rate "
            "FROM batches b LEFT JOIN batch_meters m ON m.batch_id = b.id WHERE b.id = ?",
            (batch_id,),
        )
        if not rows:
            raise NotFound(f"no batch {batch_id}", field="id")
        batch = _batch(rows[0], self._read(COUNTS_SQL, (batch_id,)))
        lowered = rows[0][len(BATCH_COLUMNS.split(","))]
        batch = replace(batch, current_rate=current_rate(batch.rate, lowered))
        if now is None:
            return batch
        since = max(now - RATE_WINDOW, batch.created_at.timestamp())
        [(sent,)] = self._read(
            "SELECT count(*) FROM attempts a JOIN jobs j ON j.id = a.job_id "
            "WHERE a.started_at >= ? AND a.started_at <= ? AND j.batch_id = ?",
            (since, now, batch_id),
        )
        achieved = int(sent) / max(now - since, 1.0)
        pace = achieved or batch.current_rate
        left = batch.remaining
        eta = None
        if batch.status is BatchStatus.RUNNING and left == 0:
            eta = 0.0
        elif batch.status is BatchStatus.RUNNING and pace:
            eta = round(left / pace, 1)
        return replace(batch, achieved_rate=round(achieved, 3), eta_seconds=eta)

    def finish_batch_ingest(self, batch_id: int, now: float) -> None:
        """Every row of the batch is in: from now on it completes when its jobs end."""
        with self._write() as c:
            c.execute("UPDATE batches SET ingested_at = ? WHERE id = ?", (now, batch_id))
        self.complete_batches(now)

    def complete_batches(self, now: float) -> list[int]:
        """Complete the batches whose rows are all in and whose jobs have all ended:
        a running one becomes ``completed``, a canceled one stays ``canceled``; either
        way ``completed_at`` is set and a ``batch.completed`` webhook event is queued
        in the same transaction. Returns their ids."""
        done: list[int] = []
        candidates = self._read(
            "SELECT id FROM batches WHERE status IN ('running', 'canceled') "
            "AND ingested_at IS NOT NULL AND completed_at IS NULL ORDER BY id"
        )
        for (batch_id,) in candidates:
            with self._write() as c:
                busy = c.execute(
                    f"SELECT 1 FROM jobs WHERE batch_id = ? AND status IN {ACTIVE_SQL} LIMIT 1",
                    (batch_id,),
                ).fetchone()
                if busy is not None:
                    continue
                row = c.execute(
                    "UPDATE batches SET completed_at = ?, updated_at = ?, status = CASE "
                    "WHEN status = 'running' THEN 'completed' ELSE status END "
                    "WHERE id = ? AND completed_at IS NULL AND status IN ('running', 'canceled') "
                    "RETURNING id",
                    (now, now, batch_id),
                ).fetchone()
                if row is None:  # another worker completed it meanwhile
                    continue
                counts = c.execute(COUNTS_SQL, (batch_id,)).fetchall()
                info = c.execute(
                    f"SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?", (batch_id,)
                ).fetchone()
                batch = _batch(info, counts)
                add_system_webhook(c, "batch.completed", _completed_event(batch), now)
            done.append(int(batch_id))
        return done

    def batch_throttled(
        self,
        batch_id: int,
        now: float,
        *,
        after: int,
        window: float,
        factor: float,
        min_rate: float = 0.1,
    ) -> float | None:
        """A 429 answer to one of the batch's jobs; the ``after``-th within ``window``
        seconds lowers the batch's rate by ``factor`` (for the rest of the batch). Returns
        the new rate when it was lowered."""
        with self._write() as c:
            row = c.execute(
                "SELECT b.rate, m.rate, m.throttled, m.throttled_at FROM batches b "
                f"JOIN batch_meters m ON m.batch_id = b.id WHERE b.id = ?{self._locking(of='m')}",
                (batch_id,),
            ).fetchone()
            if row is None or row[0] is None:
                return None  # no rate of its own: the global meter's AIMD covers it
            rate, lowered, hits, since = row
            if since is None or now - float(since) > window:
                hits, since = 0, now
            hits = int(hits) + 1
            new_rate = None
            if hits >= after:
                new_rate = max(min_rate, current_rate(float(rate), lowered) * factor)
                hits, since = 0, None
            c.execute(
                "UPDATE batch_meters SET throttled = ?, throttled_at = ?, "
                "rate = coalesce(?, rate), changed_at = coalesce(?, changed_at) "
                "WHERE batch_id = ?",
                (hits, since, new_rate, now if new_rate is not None else None, batch_id),
            )
        return new_rate

    def batch_errors(
        self, batch_id: int, *, after_line: int = 0, limit: int = 1000
    ) -> list[BatchRowError]:
        """The batch's rows that are not jobs of their own, by line."""
        rows = self._read(ERRORS_SQL, (batch_id, after_line, limit))
        return [
            BatchRowError(int(r[0]), r[1], r[2], r[3], r[4], None if r[5] is None else int(r[5]))
            for r in rows
        ]

    def batch_results(
        self, batch_id: int, *, after_line: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """One result per input row from ``after_line`` on, by line: the job's final (or
        current) status, or ``invalid``/``duplicate`` for a row that is not a job of its own."""
        jobs = [
            {
                "line": int(r[0]),
                "job_id": int(r[1]),
                "status": r[2],
                "provider_sid": r[3],
                "error_code": r[4],
                "error_message": r[5],
                "attempts": int(r[6]),
            }
            for r in self._read(RESULTS_SQL, (batch_id, after_line, limit))
        ]
        skipped = [
            {
                "line": e.line,
                "job_id": e.job_id,
                "status": "duplicate" if e.code == "duplicate" else "invalid",
                "provider_sid": None,
                "error_code": e.code,
                "error_message": e.message,
                "attempts": None,
            }
            for e in self.batch_errors(batch_id, after_line=after_line, limit=limit)
        ]
        return sorted(jobs + skipped, key=lambda r: int(r["line"]))[:limit]
