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
from contextlib import AbstractContextManager
from importlib import resources
from typing import Any

from callgate.domain import (
    CANCELABLE_NOW,
    EXPIRED,
    RELEASED,
    RETRYABLE,
    ApiKey,
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
    Claimed,
    MeterPolicy,
    MeterState,
    StatusCallback,
    SubmitResult,
    Write,
    chunks,
)
from callgate.store.sql_batches import SQLBatches
from callgate.store.sql_circuits import SQLCircuits
from callgate.store.sql_guardrails import SQLGuardrails
from callgate.store.sql_lanes import RUNNING_SQL, SQLLanes, lanes_of
from callgate.store.sql_reconcile import SQLReconcile
from callgate.store.sql_system_webhooks import SQLSystemWebhooks
from callgate.store.sql_tx import (
    JOB_COLUMNS,
    Conn,
    SQLTx,
    apply,
    claimable_jobs,
    job_from_row,
    move,
    move_matching,
    seen_keys,
)
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


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


class SQLStore(
    SQLReconcile,
    SQLWebhooks,
    SQLSystemWebhooks,
    SQLGuardrails,
    SQLCircuits,
    SQLBatches,
    SQLLanes,
):
    """The Store (see :class:`callgate.store.base.Store`) over a backend's connections."""

    # -- what a backend provides ----------------------------------------------------------

    offload = False

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

    def _take_claimable(self, c: Conn, ids: list[int], now: float) -> list[Job]:
        """The jobs of ``ids`` (heads found by this claim), to be marked in flight."""
        rows: list[Any] = []
        for part in chunks(ids):
            rows += c.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({_marks(part)})", part
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
            rows = c.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({_marks(part)})", part)
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
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
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
            for part in chunks(sorted(job_ids)):
                # a job this worker is writing right now (its attempt, its end) is skipped,
                # not waited for (PostgreSQL: SKIP LOCKED): the next beat renews it, and a
                # heartbeat never takes part in a deadlock with the worker's own writes
                cur = c.execute(
                    "UPDATE jobs SET lease_expires_at = ? WHERE id IN "
                    f"(SELECT id FROM jobs WHERE id IN ({_marks(part)}){self._locking(skip=True)}) "
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
            n = self._settle_lost(c, "j.worker_id = ?", worker_id, WORKER_STOPPED, now)
            if n:
                self._notify(c)
            return n

    # -- API keys and webhook secrets ---------------------------------------------------

    def add_api_key(
        self, key_id: str, name: str, token_hash: str, prefix: str, now: float
    ) -> ApiKey:
        with self._write() as c:
            c.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)",
                (key_id, name, token_hash, prefix, now),
            )
        return ApiKey(key_id, name, prefix, from_ts(now))

    def api_key_by_hash(self, token_hash: str) -> ApiKey | None:
        rows = self._read(
            "SELECT id, name, prefix, created_at, revoked_at FROM api_keys "
            "WHERE token_hash = ? AND revoked_at IS NULL",
            (token_hash,),
        )
        return _api_key(rows[0]) if rows else None

    def api_keys(self) -> list[ApiKey]:
        rows = self._read(
            "SELECT id, name, prefix, created_at, revoked_at FROM api_keys ORDER BY created_at"
        )
        return [_api_key(r) for r in rows]

    def revoke_api_key(self, key_id: str, now: float) -> bool:
        with self._write() as c:
            cur = c.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, key_id),
            )
            return int(cur.rowcount) == 1

    def webhook_secrets(self) -> list[str]:
        return [r[0] for r in self._read("SELECT secret FROM webhook_secrets ORDER BY id")]

    def add_webhook_secret(self, secret: str, now: float) -> None:
        with self._write() as c:
            c.execute(
                "INSERT INTO webhook_secrets (secret, created_at) VALUES (?, ?)", (secret, now)
            )

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


def retry_requested(now: float) -> Decision:
    return Decision(Status.QUEUED, "retry_requested", "queued again on request", run_at=now)


def _api_key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], from_ts(row[3]), to_datetime(row[4]))


#: (if an attempt may have reached the provider, else if nothing was sent)
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
