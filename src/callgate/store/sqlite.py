"""The embedded store: one SQLite file in WAL mode, safe for several processes.

SQLite serialises writers itself (``BEGIN IMMEDIATE``); every write is one short
transaction, and the worker batches its writes (group commit) to amortise the commit.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from callgate.domain import (
    CANCELABLE_NOW,
    EXPIRED,
    RELEASED,
    ApiKey,
    Attempt,
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
from callgate.exceptions import (
    ConfigurationError,
    IdempotencyConflict,
    InvalidTransition,
    NotFound,
    StoreError,
)
from callgate.store.base import Claimed, MeterPolicy, MeterState, SubmitResult, chunks
from callgate.store.sqlite_tx import (
    JOB_COLUMNS,
    SQLiteTx,
    apply,
    event,
    job_from_row,
    move,
)
from callgate.store.sqlite_webhooks import SQLiteWebhooks

log = logging.getLogger("callgate.store")
CLAIMABLE_SQL = "('queued', 'retrying')"
ACTIVE_SQL = "('queued', 'in_flight', 'retrying', 'held', 'uncertain')"

# The oldest claimable job of each free, awake group, oldest groups first; and whether a
# strict-order job waiting ahead of that head blocks the group.
HEADS_SQL = f"""
SELECT gk, head,
       head IS NOT NULL AND EXISTS (
           SELECT 1 FROM jobs s
           WHERE s.group_key = gk AND s.strict_order = 1 AND s.status IN {CLAIMABLE_SQL}
             AND s.run_at > :now AND s.id < head)
FROM (
    SELECT g.group_key AS gk,
           (SELECT j.id FROM jobs j
            WHERE j.group_key = g.group_key AND j.status IN {CLAIMABLE_SQL}
              AND j.run_at <= :now
            ORDER BY j.id LIMIT 1) AS head
    FROM groups g
    WHERE g.pending > 0 AND g.busy = 0 AND g.wake_at <= :now
    ORDER BY g.seq
    LIMIT :scan OFFSET :skip
)
"""

SNOOZE_SQL = f"""
UPDATE groups SET wake_at = coalesce(
    (SELECT min(run_at) FROM jobs
     WHERE group_key = :gk AND status IN {CLAIMABLE_SQL} AND run_at > :now),
    :now + 1.0)
WHERE group_key = :gk
"""


def _ts(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration, in order."""
    folder = resources.files("callgate.store") / "migrations" / "sqlite"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text()))
    return sorted(found)


def parse_url(url: str) -> str:
    """``sqlite:///rel.db`` → ``rel.db``; ``sqlite:////abs.db`` → ``/abs.db``."""
    rest = url.removeprefix("sqlite:")
    if rest in ("", "//", "///:memory:", "//:memory:", ":memory:"):
        return ":memory:"
    if not rest.startswith("///"):
        raise ConfigurationError(
            f"invalid SQLite URL {url!r}: expected sqlite:///PATH", field="database_url"
        )
    return rest[3:]


class SQLiteStore(SQLiteWebhooks):
    """The Store on one SQLite file (see :class:`callgate.store.base.Store`)."""

    def __init__(self, path: str, *, migrate: bool = True, synchronous: str = "NORMAL") -> None:
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute(f"PRAGMA synchronous = {synchronous}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute("PRAGMA busy_timeout = 30000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {path!r}: {exc}") from exc
        self._lock = threading.RLock()
        self._checkpointer: _Checkpointer | None = None
        if migrate:
            self.migrate()

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True) -> SQLiteStore:
        return cls(parse_url(url), migrate=migrate)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self._conn.close()

    def prepare_worker(self) -> None:
        """Tune for a long-running worker: a bigger page cache, and WAL checkpoints on a
        thread of their own instead of inside the worker's commits, where their fsync
        would stall the event loop (and with it the meter's timing)."""
        if self._checkpointer is not None or self.path == ":memory:":
            return
        with self._lock:
            self._conn.execute("PRAGMA cache_size = -65536")
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._checkpointer = _Checkpointer(self.path)

    # -- plumbing -----------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot start a transaction: {exc}") from exc
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"database error: {exc}") from exc
                raise

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"database error: {exc}") from exc

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied; return their names."""
        applied: list[str] = []
        with self._write() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            done = {r[0] for r in c.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in migrations():
                if version in done:
                    continue
                for statement in _split_sql(sql):
                    c.execute(statement)
                c.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (version, name, time.time()),
                )
                applied.append(name)
        return applied

    # -- submit and read ----------------------------------------------------------------

    def submit(
        self, specs: Sequence[JobSpec], now: float, *, scope: str = ""
    ) -> list[SubmitResult]:
        entries: list[tuple[int, bool]] = []  # (job id, created)
        with self._write() as c:
            for spec in specs:
                existing = self._known_key(c, spec, scope)
                if existing is not None:
                    entries.append((existing, False))
                else:
                    entries.append((self._insert(c, spec, now, scope), True))
            jobs = {j.id: j for j in self._get_many(c, [i for i, _ in entries])}
        return [SubmitResult(jobs[i], created) for i, created in entries]

    @staticmethod
    def _known_key(c: sqlite3.Connection, spec: JobSpec, scope: str) -> int | None:
        if spec.idempotency_key is None:
            return None
        row = c.execute(
            "SELECT job_id, fingerprint FROM idempotency_keys WHERE scope = ? AND key = ?",
            (scope, spec.idempotency_key),
        ).fetchone()
        if row is None:
            return None
        if row[1] != spec.fingerprint():
            raise IdempotencyConflict(
                f"idempotency key {spec.idempotency_key!r} was used for job {row[0]} "
                "with a different request",
                field="idempotency_key",
            )
        return int(row[0])

    @staticmethod
    def _insert(c: sqlite3.Connection, spec: JobSpec, now: float, scope: str) -> int:
        not_before, expires_at = _ts(spec.not_before), _ts(spec.expires_at)
        run_at = max(now, not_before) if not_before is not None else now
        cur = c.execute(
            "INSERT INTO jobs (kind, to_number, group_key, status, payload, max_attempts, "
            "run_at, not_before, expires_at, strict_order, idempotency_key, callback_url, "
            "metadata, created_at, updated_at, api_key_id) "
            "VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(spec.kind),
                spec.to,
                spec.group_key or spec.to or f"{spec.kind}:{now}:{id(spec)}",
                json.dumps(spec.payload, separators=(",", ":")),
                spec.max_attempts,
                run_at,
                not_before,
                expires_at,
                int(spec.strict_order),
                spec.idempotency_key,
                spec.callback_url,
                json.dumps(spec.metadata, separators=(",", ":")) if spec.metadata else None,
                now,
                now,
                scope or None,
            ),
        )
        job_id = int(cur.lastrowid)  # type: ignore[arg-type]
        if spec.idempotency_key is not None:
            c.execute(
                "INSERT INTO idempotency_keys VALUES (?, ?, ?, ?, ?)",
                (scope, spec.idempotency_key, job_id, spec.fingerprint(), now),
            )
        event(c, job_id, Status.QUEUED, None, None, now)
        return job_id

    def _get(self, c: sqlite3.Connection, job_id: int) -> Job:
        row = c.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id}", field="id")
        return job_from_row(row)

    def _get_many(
        self, c: sqlite3.Connection, ids: Sequence[int], status: Status | None = None
    ) -> list[Job]:
        out: list[Job] = []
        for part in chunks(ids):
            marks = ",".join("?" * len(part))
            rows = c.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({marks})", part)
            out.extend(job_from_row(r, status) for r in rows)
        return out

    def get_job(self, job_id: int) -> Job:
        with self._lock:
            return self._get(self._conn, job_id)

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
            else:  # lets SQLite use the partial index on active jobs
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
        return {str(s): 0 for s in Status} | {r[0]: r[1] for r in rows}

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
            "(SELECT DISTINCT group_key FROM jobs ORDER BY id LIMIT ?) "
            "GROUP BY group_key, status ORDER BY min(id)",
            (limit,),
        )
        out: dict[str, dict[str, int]] = {}
        for gk, status, n in rows:
            out.setdefault(gk, {})[status] = n
        return list(out.items())

    # -- the meter ----------------------------------------------------------------------

    @staticmethod
    def _meter(c: sqlite3.Connection, now: float) -> MeterState:
        row = c.execute("SELECT tat, rate, changed_at FROM meter WHERE name = 'global'").fetchone()
        if row is None:
            c.execute("INSERT INTO meter VALUES ('global', ?, NULL, ?)", (now, now))
            return MeterState(tat=now, rate=None, changed_at=now)
        return MeterState(tat=row[0], rate=row[1], changed_at=row[2])

    @staticmethod
    def _save_meter(c: sqlite3.Connection, state: MeterState) -> None:
        c.execute(
            "UPDATE meter SET tat = ?, rate = ?, changed_at = ? WHERE name = 'global'",
            (state.tat, state.rate, state.changed_at),
        )

    def reserve_slot(self, now: float, meter: MeterPolicy) -> float:
        with self._write() as c:
            slots, state = meter.take(self._meter(c, now), now, 1)
            self._save_meter(c, state)
        return slots[0]

    def lower_rate(self, now: float, meter: MeterPolicy) -> float | None:
        with self._write() as c:
            state = meter.lowered(self._meter(c, now), now)
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
        with self._write() as c:
            state = self._meter(c, now)
            in_flight = c.execute("SELECT count(*) FROM jobs WHERE status = 'in_flight'")
            want = min(limit, max_concurrency - in_flight.fetchone()[0])
            want = meter.allowance(state, now, want) if want > 0 else 0
            if want <= 0:
                return []
            jobs = self._get_many(c, self._heads(c, now, want), status=Status.IN_FLIGHT)
            jobs.sort(key=lambda j: j.id)
            live = [j for j in jobs if not j.expired(now)]
            for job in jobs:
                if job.expired(now):
                    apply(c, job.id, EXPIRED, now)
            if not live:
                return []
            slots, state = meter.take(state, now, len(live))
            self._save_meter(c, state)
            c.executemany(
                "UPDATE jobs SET status = 'in_flight', worker_id = ?, lease_expires_at = ?, "
                "updated_at = ? WHERE id = ?",
                [(worker_id, now + lease, now, j.id) for j in live],
            )
            c.executemany(
                "UPDATE groups SET seq = ? WHERE group_key = ?",
                [(j.id, j.group_key) for j in live],
            )
            c.executemany(
                "INSERT INTO events (job_id, type, status, created_at) "
                "VALUES (?, 'job.in_flight', 'in_flight', ?)",
                [(j.id, now) for j in live],
            )
        return [Claimed(j, slot) for j, slot in zip(live, slots, strict=True)]

    @staticmethod
    def _heads(c: sqlite3.Connection, now: float, want: int) -> list[int]:
        """Ids of the oldest eligible job of up to ``want`` free groups."""
        found: list[int] = []
        scan = max(2 * want, 32)
        while True:
            rows = c.execute(HEADS_SQL, {"now": now, "scan": scan, "skip": len(found)}).fetchall()
            snooze = [gk for gk, head, blocked in rows if head is None or blocked]
            found.extend(head for _, head, blocked in rows if head is not None and not blocked)
            if snooze:  # nothing due in these groups yet: skip them until something is
                c.executemany(SNOOZE_SQL, [{"gk": gk, "now": now} for gk in snooze])
            if len(found) >= want or len(rows) < scan:
                return found[:want]

    def next_wakeup(self, now: float, meter: MeterPolicy) -> float | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT min(wake_at) FROM groups WHERE pending > 0 AND busy = 0"
            ).fetchone()
            if row[0] is None:
                return None
            state = self._meter_readonly(now)
        return max(float(row[0]), meter.next_allowed(state, now))

    def _meter_readonly(self, now: float) -> MeterState:
        row = self._conn.execute(
            "SELECT tat, rate, changed_at FROM meter WHERE name = 'global'"
        ).fetchone()
        return MeterState(now, None, now) if row is None else MeterState(*row)

    # -- worker writes ------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[SQLiteTx]:
        with self._write() as c:
            yield SQLiteTx(c)

    def heartbeat(
        self, worker_id: str, now: float, lease: float, job_ids: Sequence[int] = ()
    ) -> int:
        n = 0
        with self._write() as c:
            for part in chunks(list(job_ids)):
                marks = ",".join("?" * len(part))
                cur = c.execute(
                    f"UPDATE jobs SET lease_expires_at = ? WHERE id IN ({marks}) "
                    "AND status = 'in_flight' AND worker_id = ?",
                    (now + lease, *part, worker_id),
                )
                n += cur.rowcount
        return n

    def expire_leases(self, now: float) -> int:
        with self._write() as c:
            return _settle_lost(c, "j.lease_expires_at < ?", now, LEASE_LOST, now)

    def expire_overdue(self, now: float) -> int:
        with self._write() as c:
            ids = [
                r[0]
                for r in c.execute(
                    "SELECT id FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ? "
                    "AND status IN ('queued', 'retrying', 'held')",
                    (now,),
                )
            ]
            for job_id in ids:
                apply(c, job_id, EXPIRED, now)
        return len(ids)

    def release_worker(self, worker_id: str, now: float) -> int:
        with self._write() as c:
            return _settle_lost(c, "j.worker_id = ?", worker_id, WORKER_STOPPED, now)

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
        return cur.rowcount == 1

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
        allowed = {Status.FAILED, Status.CANCELED, Status.HELD, Status.UNCERTAIN, Status.BLOCKED}
        with self._write() as c:
            job = self._get(c, job_id)
            if job.status not in allowed:
                raise InvalidTransition(
                    f"job {job_id} is {job.status}; only a failed, canceled, held, "
                    "uncertain or blocked job can be retried"
                )
            c.execute("UPDATE jobs SET attempts = 0, cancel_requested = 0 WHERE id = ?", (job_id,))
            move(
                c,
                job_id,
                Status.QUEUED,
                now,
                reason="retry_requested",
                detail="queued again on request",
                run_at=now,
            )
            return self._get(c, job_id)


def _api_key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], from_ts(row[3]), to_datetime(row[4]))


class _Checkpointer:
    """Copies the WAL back into the database every second, from its own connection."""

    def __init__(self, path: str, interval: float = 1.0) -> None:
        self._stop = threading.Event()
        self._conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="callgate-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # busy or locked: the next round will do
                log.debug("checkpoint skipped: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self._conn.close()


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


def _settle_lost(
    c: sqlite3.Connection, where: str, param: Any, decisions: LostClaim, now: float
) -> int:
    """Settle in-flight jobs whose worker is gone: ``uncertain`` (attempt outcome
    ``unknown``) if an attempt may have reached the provider, else back to the queue."""
    rows = c.execute(
        "SELECT j.id, j.attempt_no, a.state FROM jobs j LEFT JOIN attempts a "
        f"ON a.job_id = j.id AND a.number = j.attempt_no "
        f"WHERE j.status = 'in_flight' AND {where}",
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


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (``sqlite3.complete_statement`` knows triggers)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not current.strip():
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
