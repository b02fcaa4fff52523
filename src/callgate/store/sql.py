"""The store's queue operations in portable SQL, shared by the SQLite and PostgreSQL
backends; each backend supplies connections, transactions, locking and its schema.

The SQL here uses ``?`` and ``:name`` parameters (as :mod:`sqlite3` takes them); the
PostgreSQL backend translates them once per statement. Where the two databases differ
(row locks, index hints, JSON), a backend overrides one small hook.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from callgate.domain import (
    CANCELABLE_NOW,
    RETRYABLE,
    Attempt,
    AttemptResult,
    AttemptState,
    Decision,
    Event,
    Job,
    JobSpec,
    Outcome,
    Reason,
    Status,
    from_ts,
    to_datetime,
)
from callgate.exceptions import IdempotencyConflict, InvalidTransition, NotFound
from callgate.store.base import (
    StatusCallback,
    SubmitResult,
    chunks,
)
from callgate.store.sql_batches import SQLBatches
from callgate.store.sql_circuits import SQLCircuits
from callgate.store.sql_claims import SQLClaims
from callgate.store.sql_guardrails import SQLGuardrails
from callgate.store.sql_keys import SQLKeys, key_is_live
from callgate.store.sql_lanes import SQLLanes
from callgate.store.sql_observe import SQLObserve
from callgate.store.sql_outbox import SQLOutbox
from callgate.store.sql_reconcile import SQLReconcile
from callgate.store.sql_tx import (
    JOB_COLUMNS,
    Conn,
    apply,
    job_from_row,
    marks,
    move,
    move_matching,
    seen_keys,
)
from callgate.store.sql_views import SQLViews
from callgate.store.sql_webhooks import SQLWebhooks

log = logging.getLogger("callgate.store")
ACTIVE_SQL = "('queued', 'in_flight', 'retrying', 'held', 'uncertain')"

INSERT_JOB_SQL = (
    "INSERT INTO jobs (id, kind, to_number, group_key, status, payload, max_attempts, "
    "run_at, not_before, expires_at, strict_order, idempotency_key, callback_url, "
    "metadata, created_at, updated_at, api_key_id, batch_id, line_no) "
    "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_QUEUED_EVENT_SQL = (
    "INSERT INTO events (job_id, type, status, created_at, fanout, attempts) "
    "VALUES (?, 'job.queued', 'queued', ?, 0, 0)"
)


def migrations(backend: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration of ``backend``, in order."""
    folder = resources.files("callgate.store") / "migrations" / backend
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text()))
    return sorted(found)


def _ts(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


class SQLStore(
    SQLClaims,
    SQLKeys,
    SQLReconcile,
    SQLWebhooks,
    SQLOutbox,
    SQLGuardrails,
    SQLCircuits,
    SQLBatches,
    SQLLanes,
    SQLViews,
    SQLObserve,
):
    """The Store (see :class:`callgate.store.parts.Store`) over a backend's connections:
    its parts are mixins (claims, keys, reconciliation, the outboxes, guardrails, circuits,
    batches, lanes), each in a module of its own; a backend supplies the hooks of
    :class:`~callgate.store.sql_tx.SQLParts`."""

    offload = False

    def _notify(self, c: Conn) -> None:
        """Tell idle workers elsewhere that something became claimable (on commit)."""

    def _is_conflict(self, exc: BaseException) -> bool:
        """Did a concurrent writer take the same unique key (worth one more try)?"""
        return False

    def listen(
        self, callback: Callable[[], None], on_status: StatusCallback | None = None
    ) -> Callable[[], None]:
        """Call ``callback`` (from any thread) when another process made work claimable,
        ``on_status`` for each status published; return the function that stops
        listening. Without cross-process notifications (SQLite) it does nothing: workers
        fall back on ``idle_poll`` and on polling the provider."""
        return lambda: None

    def publish_status(self, provider: str, ref: str, result: AttemptResult) -> None:
        """Tell other processes' workers of a provider status (nothing without
        cross-process notifications)."""

    def close(self) -> None:
        raise NotImplementedError

    def migrate(self) -> list[str]:
        raise NotImplementedError

    def prepare_worker(self) -> None:
        """Tune the store for a long-running worker in this process (called once)."""

    # -- submit and read ----------------------------------------------------------------

    def submit(
        self, specs: Sequence[JobSpec], now: float, *, scope: str = ""
    ) -> list[SubmitResult]:
        for attempt in range(3):
            try:
                return self._submit(specs, now, scope)
            except Exception as exc:
                if attempt == 2 or not self._is_conflict(exc):
                    raise
                # another process took one of these idempotency keys meanwhile: look again
        raise AssertionError("unreachable")

    def _submit(self, specs: Sequence[JobSpec], now: float, scope: str) -> list[SubmitResult]:
        with self._write() as c:
            if scope:
                key_is_live(c, scope)
            known = self._known_keys(c, specs, scope)
            new: list[JobSpec] = []
            first: dict[str, int] = {}  # a key new in this call → its spec's index in new
            plan: list[tuple[str, int]] = []  # (old | new | again, job id or index in new)
            for spec in specs:
                key = spec.idempotency_key
                if key is not None and key in known:
                    plan.append(("old", known[key]))
                elif key is not None and key in first:
                    plan.append(("again", first[key]))
                else:
                    if key is not None:
                        first[key] = len(new)
                    plan.append(("new", len(new)))
                    new.append(spec)
            ids = self._insert(c, new, now, scope)
            entries = [(v, False) if how == "old" else (ids[v], how == "new") for how, v in plan]
            if new:
                self._notify(c)
            jobs = {j.id: j for j in self._get_many(c, sorted({i for i, _ in entries}))}
        return [SubmitResult(jobs[i], created) for i, created in entries]

    @staticmethod
    def _known_keys(c: Conn, specs: Sequence[JobSpec], scope: str) -> dict[str, int]:
        """Job ids of the idempotency keys seen before; a key reused for another
        request is a conflict (and nothing of this submit is stored)."""
        asked = {s.idempotency_key: s for s in specs if s.idempotency_key is not None}
        known: dict[str, int] = {}
        for used, (job_id, fingerprint) in seen_keys(c, list(asked), scope).items():
            if fingerprint != asked[used].fingerprint():
                raise IdempotencyConflict(
                    f"idempotency key {used!r} was used for job {job_id} with a different request",
                    field="idempotency_key",
                )
            known[used] = job_id
        for spec in specs:  # the same key twice in one call must mean the same request
            key = spec.idempotency_key
            if key is not None and asked[key].fingerprint() != spec.fingerprint():
                raise IdempotencyConflict(
                    f"idempotency key {key!r} is used twice with different requests",
                    field="idempotency_key",
                )
        return known

    def _insert(
        self,
        c: Conn,
        specs: Sequence[JobSpec],
        now: float,
        scope: str,
        batch: tuple[int, Sequence[int]] | None = None,
    ) -> list[int]:
        """Insert ``specs`` as new queued jobs (with ``batch``: that batch's, one input
        line each); return their ids, in order."""
        if not specs:
            return []
        ids = self._next_ids(c, len(specs))
        batch_id, lines = batch if batch is not None else (None, [None] * len(specs))
        rows = []
        for job_id, spec, line in zip(ids, specs, lines, strict=True):
            not_before = _ts(spec.not_before)
            rows.append(
                (
                    job_id,
                    str(spec.kind),
                    spec.to,
                    spec.group_key or spec.to or f"{spec.kind}:{job_id}",
                    json.dumps(spec.payload, separators=(",", ":")),
                    spec.max_attempts,
                    max(now, not_before) if not_before is not None else now,
                    not_before,
                    _ts(spec.expires_at),
                    int(spec.strict_order),
                    spec.idempotency_key,
                    spec.callback_url,
                    json.dumps(spec.metadata, separators=(",", ":")) if spec.metadata else None,
                    now,
                    now,
                    scope or None,
                    batch_id,
                    line,
                )
            )
        rows.sort(key=lambda r: str(r[3]))  # group order: the lock order of every writer
        self._insert_jobs(c, rows, now)
        keyed = [
            (scope, s.idempotency_key, i, s.fingerprint(), now)
            for i, s in zip(ids, specs, strict=True)
            if s.idempotency_key is not None
        ]
        if keyed:
            c.executemany("INSERT INTO idempotency_keys VALUES (?, ?, ?, ?, ?)", keyed)
        return ids

    def _insert_jobs(self, c: Conn, rows: list[tuple[Any, ...]], now: float) -> None:
        """Insert new queued jobs (rows in ``INSERT_JOB_SQL``'s order) and their events."""
        c.executemany(INSERT_JOB_SQL, rows)
        c.executemany(INSERT_QUEUED_EVENT_SQL, [(r[0], now) for r in rows])

    def _get(self, c: Conn, job_id: int) -> Job:
        """One job, locked for the rest of the transaction."""
        row = c.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?{self._locking()}", (job_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id}", field="id")
        return job_from_row(row)

    def _get_many(self, c: Conn, ids: Sequence[int], status: Status | None = None) -> list[Job]:
        out: list[Job] = []
        for part in chunks(ids):
            rows = c.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({marks(part)})", part)
            out.extend(job_from_row(r, status) for r in rows)
        return out

    def get_job(self, job_id: int) -> Job:
        rows = self._read(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise NotFound(f"no job {job_id}", field="id")
        return job_from_row(rows[0])

    def list_jobs(
        self,
        *,
        status: Status | None = None,
        to: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        kind: str | None = None,
        batch_id: int | None = None,
    ) -> list[Job]:
        where = ["id < ?"]
        params: list[Any] = [before_id if before_id is not None else 2**62]
        if created_after is not None:
            where.append("created_at >= ?")
            params.append(created_after)
        if created_before is not None:
            where.append("created_at < ?")
            params.append(created_before)
        if status is not None:
            if status.terminal:
                where.append("status = ?")
            else:  # lets the planner use the partial index on active jobs
                where.append(f"status IN {ACTIVE_SQL} AND status = ?")
            params.append(str(status))
        if to is not None:
            where.append("to_number = ?")
            params.append(to)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if batch_id is not None:
            where.append("batch_id = ?")
            params.append(batch_id)
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
        return [job_from_row(r) for r in self._read(sql, [*params, limit])]

    def jobs_after(
        self, after_id: int, *, created_after: float | None = None, limit: int = 1000
    ) -> list[Job]:
        where = "id > ?"
        params: list[Any] = [after_id]
        if created_after is not None:
            where += " AND created_at >= ?"
            params.append(created_after)
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY id LIMIT ?"
        return [job_from_row(r) for r in self._read(sql, [*params, limit])]

    def attempts(self, job_id: int) -> list[Attempt]:
        rows = self._read(
            "SELECT job_id, number, state, started_at, ended_at, outcome, provider_ref, "
            "error_code, error_message, counted FROM attempts WHERE job_id = ? ORDER BY number",
            (job_id,),
        )
        return [
            Attempt(
                job_id=r[0],
                number=r[1],
                state=AttemptState(r[2]),
                started_at=from_ts(r[3]),
                ended_at=to_datetime(r[4]),
                outcome=None if r[5] is None else Outcome(r[5]),
                provider_ref=r[6],
                error_code=r[7],
                error_message=r[8],
                counted=bool(r[9]),
            )
            for r in rows
        ]

    def events(
        self, job_id: int | None = None, *, after_id: int = 0, limit: int = 1000
    ) -> list[Event]:
        sql = (
            "SELECT id, job_id, type, status, created_at, reason, detail, attempts "
            "FROM events WHERE id > ?"
        )
        params: list[Any] = [after_id]
        if job_id is not None:
            sql += " AND job_id = ?"
            params.append(job_id)
        rows = self._read(sql + " ORDER BY id LIMIT ?", [*params, limit])
        return [
            Event(
                id=r[0],
                job_id=r[1],
                type=r[2],
                status=Status(r[3]),
                created_at=from_ts(r[4]),
                reason=r[5],
                detail=r[6],
                attempts=r[7],
            )
            for r in rows
        ]

    def counts(self) -> dict[str, int]:
        rows = self._read("SELECT status, count(*) FROM jobs GROUP BY status")
        return {str(s): 0 for s in Status} | {r[0]: int(r[1]) for r in rows}

    def active_count(self) -> int:
        rows = self._read(
            f"SELECT count(*) FROM jobs WHERE status IN {ACTIVE_SQL} "
            "AND status IN ('queued', 'in_flight', 'retrying')"
        )
        return int(rows[0][0])

    def group_summary(self, limit: int = 50) -> list[tuple[str, dict[str, int]]]:
        """Per destination, jobs per status (for the demo's live view)."""
        rows = self._read(
            "SELECT group_key, status, count(*) FROM jobs WHERE group_key IN "
            "(SELECT group_key FROM jobs GROUP BY group_key ORDER BY min(id) LIMIT ?) "
            "GROUP BY group_key, status ORDER BY min(id)",
            (limit,),
        )
        out: dict[str, dict[str, int]] = {}
        for gk, status, n in rows:
            out.setdefault(gk, {})[status] = int(n)
        return list(out.items())

    def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        self._read("SELECT 1 FROM schema_migrations LIMIT 1")

    # -- a person's side ----------------------------------------------------------------

    def cancel(self, job_id: int, now: float) -> Job:
        with self._write() as c:
            job = self._get(c, job_id)
            if job.status in CANCELABLE_NOW:
                move(
                    c,
                    job_id,
                    Status.CANCELED,
                    now,
                    reason=Reason.CANCELED,
                    detail="canceled on request",
                )
            elif job.status is Status.IN_FLIGHT:
                c.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            else:
                raise InvalidTransition(
                    f"job {job_id} is {job.status}; only a job not yet ended can be canceled"
                )
            return self._get(c, job_id)

    def retry(self, job_id: int, now: float) -> Job:
        with self._write() as c:
            job = self._get(c, job_id)
            if job.status not in RETRYABLE:
                raise InvalidTransition(
                    f"job {job_id} is {job.status}; only a failed, canceled, held, "
                    "uncertain or blocked job can be retried"
                )
            c.execute("UPDATE jobs SET attempts = 0, cancel_requested = 0 WHERE id = ?", (job_id,))
            apply(c, job_id, retry_requested(now), now)
            self._notify(c)
            return self._get(c, job_id)

    def retry_matching(
        self,
        now: float,
        *,
        statuses: Sequence[Status],
        since: float | None = None,
        reason: str | None = None,
        batch_id: int | None = None,
    ) -> int:
        """Queue again, with a fresh attempt budget, every job in one of ``statuses``
        (retryable ones) that entered it at or after ``since``, with ``reason``, of
        ``batch_id``; how many."""
        if not statuses or not set(statuses) <= RETRYABLE:
            raise InvalidTransition(f"only {', '.join(sorted(RETRYABLE))} jobs can be retried")
        where = [f"status IN ({', '.join('?' * len(statuses))})"]
        params: list[Any] = [str(s) for s in statuses]
        for clause, value in (
            ("updated_at >= ?", since),
            ("reason = ?", reason),
            ("batch_id = ?", batch_id),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        moved = move_matching(
            self, " AND ".join(where), params, now, retry_requested(now), reset_attempts=True
        )
        return len(moved)


def retry_requested(now: float) -> Decision:
    return Decision(Status.QUEUED, "retry_requested", "queued again on request", run_at=now)
