"""The worker's writes in one transaction, and the row ↔ record mapping.

Portable SQL shared by both backends (see :mod:`callgate.store.sql`); every status
change goes through :func:`move`, which writes the outbox event in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from callgate.domain import (
    WEBHOOK_EVENT_TYPES,
    AttemptResult,
    Decision,
    Job,
    Kind,
    Reason,
    Status,
    event_type,
    from_ts,
    to_datetime,
)
from callgate.store.base import (
    Abandon,
    Accepted,
    Finish,
    SettleUnsent,
    StartAttempt,
    Write,
    chunks,
)


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Any: ...


class Conn(Protocol):
    """What the shared SQL needs of a connection in a transaction (``?`` and ``:name``
    parameters, as :mod:`sqlite3` takes them; the PostgreSQL backend translates)."""

    def execute(self, sql: str, params: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, params: Iterable[Any], /) -> Cursor: ...


class SQLParts:
    """What the store's parts (the webhook outbox, reconciliation, guardrails, batches:
    mixins of :class:`~callgate.store.sql.SQLStore`) use of the store; the store and its
    backends provide it."""

    def _write(self) -> AbstractContextManager[Conn]:
        """One write transaction (committed on success, rolled back on error); database
        errors come out as :class:`~callgate.exceptions.StoreError`."""
        raise NotImplementedError

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        """Rows of one read-only statement."""
        raise NotImplementedError

    def _next_ids(self, c: Conn, n: int) -> list[int]:
        """``n`` fresh job ids, ascending (the FIFO key)."""
        raise NotImplementedError

    #: row locks for "read, decide, write" in a transaction, where writers run
    #: concurrently (PostgreSQL: ``FOR UPDATE``); SQLite serialises writers already
    ROW_LOCKS = False

    def _locking(self, *, of: str | None = None, skip: bool = False) -> str:
        """The clause that locks the rows a SELECT reads (empty without row locks)."""
        if not self.ROW_LOCKS:
            return ""
        return " FOR UPDATE" + (f" OF {of}" if of else "") + (" SKIP LOCKED" if skip else "")

    def _notify(self, c: Conn) -> None:
        """Tell idle workers elsewhere that something became claimable (on commit)."""
        raise NotImplementedError


def marks(items: Sequence[Any]) -> str:
    """``?`` placeholders for ``items``."""
    return ",".join("?" * len(items))


def reached_again(job: str, number: str) -> str:
    """SQL for a job's ``reached_at`` once attempt ``number`` turned out not to count (a
    429, never sent, proven absent): the start of its first other counted attempt."""
    return (
        f"(SELECT min(a.started_at) FROM attempts a WHERE a.job_id = {job} "
        f"AND a.counted = 1 AND a.number <> {number})"
    )


JOB_COLUMNS = (
    "id, kind, to_number, group_key, status, payload, attempts, reason, created_at, "
    "updated_at, run_at, not_before, expires_at, strict_order, idempotency_key, "
    "callback_url, metadata, max_attempts, cancel_requested, provider_ref, detail, batch_id"
)


def seen_keys(c: Conn, keys: Sequence[str], scope: str) -> dict[str, tuple[int, str]]:
    """The idempotency keys of ``keys`` used before in ``scope``: key → (its job, the
    fingerprint of the request it was used for)."""
    seen: dict[str, tuple[int, str]] = {}
    for part in chunks(keys):
        rows = c.execute(
            "SELECT key, job_id, fingerprint FROM idempotency_keys "
            f"WHERE scope = ? AND key IN ({','.join('?' * len(part))})",
            (scope, *part),
        ).fetchall()
        seen.update({key: (int(job_id), fingerprint) for key, job_id, fingerprint in rows})
    return seen


#: the reason on a job whose stored row cannot be read (edited by hand, or by a bug)
UNREADABLE = "unreadable"


def claimable_jobs(c: Conn, rows: Iterable[Sequence[Any]], now: float) -> list[Job]:
    """A claim's rows as jobs. One that cannot be read is that job's error, never the
    claim's (a worker that died of it would send nothing else): it fails, reason
    ``unreadable``, in the claim's transaction, and is never sent."""
    jobs: list[Job] = []
    for row in rows:
        try:
            jobs.append(job_from_row(row, Status.IN_FLIGHT))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            why = f"its stored row cannot be read ({type(exc).__name__}: {exc}); not sent"
            move(c, int(row[0]), Status.FAILED, now, reason=UNREADABLE, detail=why[:500])
    return jobs


def job_from_row(row: Sequence[Any], status: Status | None = None) -> Job:
    return Job(
        id=row[0],
        kind=Kind(row[1]),
        to=row[2],
        group_key=row[3],
        status=status or Status(row[4]),
        payload=json.loads(row[5]),
        attempts=row[6],
        reason=row[7],
        created_at=from_ts(row[8]),
        updated_at=from_ts(row[9]),
        run_at=from_ts(row[10]),
        not_before=to_datetime(row[11]),
        expires_at=to_datetime(row[12]),
        strict_order=bool(row[13]),
        idempotency_key=row[14],
        callback_url=row[15],
        metadata=json.loads(row[16]) if row[16] else {},
        max_attempts=row[17],
        cancel_requested=bool(row[18]),
        provider_ref=row[19],
        detail=row[20],
        batch_id=None if row[21] is None else int(row[21]),
    )


class SQLTx:
    """The worker's writes inside one transaction, one at a time (see the write
    requests in :mod:`callgate.store.base`)."""

    def __init__(self, conn: Conn, lock: str = "") -> None:
        self._c = conn
        self._lock = lock  # " FOR UPDATE" where writers run concurrently (PostgreSQL)

    def apply(self, write: Write) -> Any:
        match write:
            case StartAttempt(job_id, worker_id, now):
                return self.start_attempt(job_id, worker_id, now)
            case Accepted(job_id, number, ref, now):
                return self.attempt_accepted(job_id, number, ref, now)
            case Finish(job_id, number, result, decision, now):
                return self.finish(job_id, number, result, decision, now)
            case Abandon(job_id, number, decision, now):
                return self.abandon_attempt(job_id, number, decision, now)
            case SettleUnsent(job_id, decision, now):
                return self.settle_unsent(job_id, decision, now)
        raise TypeError(f"not a write: {write!r}")

    def start_attempt(self, job_id: int, worker_id: str, now: float) -> int | None:
        row = self._c.execute(
            "SELECT status, worker_id, cancel_requested, attempt_no FROM jobs WHERE id = ?"
            + self._lock,
            (job_id,),
        ).fetchone()
        if row is None or row[0] != Status.IN_FLIGHT or row[1] != worker_id:
            return None
        if row[2]:
            move(
                self._c,
                job_id,
                Status.CANCELED,
                now,
                reason=Reason.CANCELED,
                detail="canceled on request before it was sent",
            )
            return None
        number = int(row[3]) + 1
        self._c.execute(
            "UPDATE jobs SET attempt_no = ?, attempts = attempts + 1, "
            "reached_at = coalesce(reached_at, ?), updated_at = ? WHERE id = ?",
            (number, now, now, job_id),
        )
        self._c.execute(
            "INSERT INTO attempts (job_id, number, state, worker_id, started_at) "
            "VALUES (?, ?, 'sending', ?, ?)",
            (job_id, number, worker_id, now),
        )
        return number

    def attempt_accepted(self, job_id: int, number: int, ref: str | None, now: float) -> None:
        self._c.execute(
            "UPDATE attempts SET state = 'pending', provider_ref = ? "
            "WHERE job_id = ? AND number = ? AND state = 'sending'",
            (ref, job_id, number),
        )
        self._c.execute("UPDATE jobs SET provider_ref = ? WHERE id = ?", (ref, job_id))

    def finish(
        self, job_id: int, number: int, result: AttemptResult, decision: Decision, now: float
    ) -> Status | None:
        row = self._c.execute(
            "SELECT status, attempt_no, cancel_requested FROM jobs WHERE id = ?" + self._lock,
            (job_id,),
        ).fetchone()
        if row is None or row[1] != number or row[0] not in (Status.IN_FLIGHT, Status.UNCERTAIN):
            return None  # stale: the attempt was settled elsewhere meanwhile
        self._c.execute(
            "UPDATE attempts SET state = 'done', ended_at = ?, outcome = ?, "
            "provider_ref = coalesce(?, provider_ref), error_code = ?, error_message = ?, "
            "counted = ? WHERE job_id = ? AND number = ?",
            (
                now,
                None if result.outcome is None else str(result.outcome),
                result.provider_ref,
                result.error_code,
                result.error_message,
                int(decision.count_attempt),
                job_id,
                number,
            ),
        )
        if not decision.count_attempt:
            uncount(self._c, job_id, number)
        if result.provider_ref is not None:
            self._c.execute(
                "UPDATE jobs SET provider_ref = ? WHERE id = ?", (result.provider_ref, job_id)
            )
        status, reason, detail = decision.status, decision.reason, decision.detail
        if row[2] and not status.terminal:
            status, reason, detail = Status.CANCELED, Reason.CANCELED, "canceled on request"
        move(self._c, job_id, status, now, reason=reason, detail=detail, run_at=decision.run_at)
        return status

    def abandon_attempt(
        self, job_id: int, number: int, decision: Decision, now: float
    ) -> Status | None:
        row = self._c.execute(
            "SELECT status, attempt_no FROM jobs WHERE id = ?" + self._lock, (job_id,)
        ).fetchone()
        if row is None or row[0] != Status.IN_FLIGHT or row[1] != number:
            return None
        self._c.execute(
            "UPDATE attempts SET state = 'done', ended_at = ?, counted = 0, error_message = ? "
            "WHERE job_id = ? AND number = ?",
            (now, f"not sent: {decision.detail}", job_id, number),
        )
        uncount(self._c, job_id, number)
        apply(self._c, job_id, decision, now)
        return decision.status

    def settle_unsent(self, job_id: int, decision: Decision, now: float) -> Status | None:
        row = self._c.execute(
            "SELECT status FROM jobs WHERE id = ?" + self._lock, (job_id,)
        ).fetchone()
        if row is None or row[0] != Status.IN_FLIGHT:
            return None
        apply(self._c, job_id, decision, now)
        return decision.status


#: jobs moved per transaction by :func:`move_matching`
MOVE_CHUNK = 1000


def move_matching(
    parts: SQLParts,
    where: str,
    params: Sequence[Any],
    now: float,
    decision: Decision,
    *,
    limit: int | None = None,
    reset_attempts: bool = False,
) -> list[int]:
    """Move the jobs matching ``where`` (which the move must make them leave) to
    ``decision``, a chunk per transaction in group order (the lock order of every
    writer), each with its event; return their ids. ``limit``: at most that many, the
    oldest first; ``reset_attempts``: a fresh attempt budget, as for a retry."""
    moved: list[int] = []
    order = "id" if limit is not None else "group_key, id"
    while limit is None or len(moved) < limit:
        size = MOVE_CHUNK if limit is None else min(MOVE_CHUNK, limit - len(moved))
        with parts._write() as c:
            rows = c.execute(
                f"SELECT id FROM jobs WHERE {where} ORDER BY {order} LIMIT {size}"
                + parts._locking(),
                params,
            ).fetchall()
            ids = [int(r[0]) for r in rows]
            for part in chunks(ids) if reset_attempts else ():
                c.execute(
                    "UPDATE jobs SET attempts = 0, cancel_requested = 0 "
                    f"WHERE id IN ({','.join('?' * len(part))})",
                    part,
                )
            for job_id in ids:
                apply(c, job_id, decision, now)
            if ids and decision.status in (Status.QUEUED, Status.RETRYING):
                parts._notify(c)
        moved += ids
        if len(ids) < size:
            break
    return moved


def uncount(c: Conn, job_id: int, number: int) -> None:
    """Attempt ``number`` is not an attempt after all: one fewer, and the job reached the
    provider only if another attempt did (the caps count jobs that reached it)."""
    c.execute(
        f"UPDATE jobs SET attempts = attempts - 1, reached_at = {reached_again('?', '?')} "
        "WHERE id = ?",
        (job_id, number, job_id),
    )


def apply(c: Conn, job_id: int, decision: Decision, now: float) -> None:
    move(
        c,
        job_id,
        decision.status,
        now,
        reason=decision.reason,
        detail=decision.detail,
        run_at=decision.run_at,
    )


def move(
    c: Conn,
    job_id: int,
    status: Status,
    now: float,
    *,
    reason: str | None = None,
    detail: str | None = None,
    run_at: float | None = None,
) -> None:
    """Change a job's status and write the event, in the caller's transaction."""
    c.execute(
        "UPDATE jobs SET status = ?, reason = ?, detail = ?, run_at = coalesce(?, run_at), "
        "worker_id = CASE WHEN ? = 'in_flight' THEN worker_id END, "
        "lease_expires_at = CASE WHEN ? = 'in_flight' THEN lease_expires_at END, "
        "updated_at = ? WHERE id = ?",
        (str(status), reason, detail, run_at, str(status), str(status), now, job_id),
    )
    event(c, job_id, status, reason, detail, now)


def event(
    c: Conn,
    job_id: int,
    status: Status,
    reason: str | None,
    detail: str | None,
    now: float,
) -> None:
    kind = event_type(status)
    c.execute(
        "INSERT INTO events (job_id, type, status, reason, detail, created_at, fanout, attempts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT attempts FROM jobs WHERE id = ?))",
        (job_id, kind, str(status), reason, detail, now, int(kind in WEBHOOK_EVENT_TYPES), job_id),
    )
