"""The distributed store: one PostgreSQL database shared by every callgate process.

The queue operations are :class:`~callgate.store.sql.SQLStore`'s portable SQL; this
module adds what PostgreSQL needs for many writers at once: a connection pool
(``psycopg_pool``), row locks (the meter row serialises claims, ``FOR UPDATE SKIP
LOCKED`` keeps workers off rows another transaction holds), an advisory lock around
migrations and the webhook fan-out, and LISTEN/NOTIFY so an idle worker hears of new
work at once instead of polling.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool

from callgate.domain import AttemptResult, Job, Outcome
from callgate.exceptions import StoreError
from callgate.store.base import StatusCallback, Write
from callgate.store.postgres_tx import PgBatch
from callgate.store.sql import SQLStore, migrations
from callgate.store.sql_tx import JOB_COLUMNS, Conn, Cursor, claimable_jobs

log = logging.getLogger("callgate.store")

#: the channel workers LISTEN on; a NOTIFY means "something may be claimable"
CHANNEL = "callgate_jobs"
#: verified provider status callbacks, for the worker tracking the attempt (JSON payload)
STATUS_CHANNEL = "callgate_status"
#: advisory lock keys (arbitrary, fixed): migrations; the webhook fan-out
MIGRATE_LOCK = 0x63_67_6D_69  # "cgmi"
FANOUT_LOCK = 0x63_67_66_6F  # "cgfo"
#: new queued jobs and their events, in one statement (one trigger call for all)
INSERT_JOBS_SQL = """
WITH made AS (
    INSERT INTO jobs (id, kind, to_number, group_key, status, payload, max_attempts, run_at,
                      not_before, expires_at, strict_order, idempotency_key, callback_url,
                      metadata, created_at, updated_at, api_key_id, batch_id, line_no)
    SELECT r.id, r.kind, r.to_number, r.group_key, 'queued', r.payload, r.max_attempts,
           r.run_at, r.not_before, r.expires_at, r.strict_order, r.idempotency_key,
           r.callback_url, r.metadata, r.created_at, r.updated_at, r.api_key_id, r.batch_id,
           r.line_no
    FROM unnest(:c0::bigint[], :c1::text[], :c2::text[], :c3::text[], :c4::text[], :c5::int[],
                :c6::float8[], :c7::float8[], :c8::float8[], :c9::int[], :c10::text[],
                :c11::text[], :c12::text[], :c13::float8[], :c14::float8[], :c15::text[],
                :c16::bigint[], :c17::int[])
        WITH ORDINALITY AS r(id, kind, to_number, group_key, payload, max_attempts, run_at,
                             not_before, expires_at, strict_order, idempotency_key,
                             callback_url, metadata, created_at, updated_at, api_key_id,
                             batch_id, line_no, n)
    ORDER BY r.n
    RETURNING id
)
INSERT INTO events (job_id, type, status, created_at, fanout, attempts)
SELECT id, 'job.queued', 'queued', :now, 0, 0 FROM made
"""
#: the claim's heads, still claimable, locked (with their groups) in group order
TAKE_SQL = f"""
WITH heads AS (
    SELECT {", ".join("j." + c.strip() for c in JOB_COLUMNS.split(","))}
    FROM jobs j
    WHERE j.id = ANY(:ids::bigint[]) AND j.status IN ('queued', 'retrying')
      AND j.run_at <= :now
    ORDER BY j.group_key FOR UPDATE OF j SKIP LOCKED
), locked AS (
    SELECT group_key FROM groups WHERE group_key IN (SELECT group_key FROM heads)
    ORDER BY group_key FOR UPDATE
)
SELECT heads.* FROM heads JOIN locked USING (group_key)
"""
#: mark the claimed jobs in flight, set their groups' order keys, write their events
MARK_SQL = """
WITH claimed AS (
    UPDATE jobs j SET status = 'in_flight', worker_id = :worker, lease_expires_at = :lease,
                      updated_at = :now
    WHERE j.id = ANY(:ids::bigint[])
    RETURNING j.id
), seq AS (
    UPDATE groups g SET seq = r.id
    FROM unnest(:groups::text[], :ids::bigint[]) AS r(group_key, id)
    WHERE g.group_key = r.group_key
)
INSERT INTO events (job_id, type, status, created_at, fanout)
SELECT id, 'job.in_flight', 'in_flight', :now, 0 FROM claimed
"""
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=4096)
def to_psycopg(sql: str) -> str:
    """Translate the shared SQL's ``?`` and ``:name`` parameters into psycopg's."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%")).replace("?", "%s")


def store_error(exc: psycopg.Error) -> StoreError:
    """The StoreError for a driver error; a lost connection may have lost the reply to a
    COMMIT the server carried out, and says so."""
    error = StoreError(describe(exc))
    error.maybe_committed = isinstance(exc, psycopg.OperationalError)
    return error


def describe(exc: psycopg.Error) -> str:
    """A one-line reason for a driver error, without the SQL."""
    if isinstance(exc, psycopg.OperationalError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"the database is unavailable ({first})"
    return f"database error: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"


class _PgCursor:
    """A cursor whose ``rowcount`` waits for the pipeline's results (fetching does so
    by itself)."""

    __slots__ = ("_cur", "_pipeline")

    def __init__(self, cur: psycopg.Cursor[Any], pipeline: psycopg.Pipeline | None) -> None:
        self._cur, self._pipeline = cur, pipeline

    @property
    def rowcount(self) -> int:
        if self._pipeline is not None and self._cur.connection.pgconn.pipeline_status:
            self._pipeline.sync()  # still in the transaction: wait for the results
        return self._cur.rowcount

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cur)


class _PgConn:
    """A psycopg connection as the shared SQL sees it (see :class:`~.sql_tx.Conn`)."""

    __slots__ = ("_c", "_pipeline")

    def __init__(self, conn: psycopg.Connection[Any], pipeline: psycopg.Pipeline | None) -> None:
        self._c, self._pipeline = conn, pipeline

    def execute(self, sql: str, params: Any = (), /) -> Cursor:
        return _PgCursor(self._c.execute(to_psycopg(sql), params), self._pipeline)

    def executemany(self, sql: str, params: Iterable[Any], /) -> Cursor:
        cur = self._c.cursor()
        cur.executemany(to_psycopg(sql), list(params))
        return _PgCursor(cur, self._pipeline)

    def script(self, sql: str) -> None:
        """Run a migration: several statements, no parameters."""
        self._c.execute(sql.encode(), prepare=False)


class PostgresStore(SQLStore):
    """The Store on PostgreSQL (see :class:`callgate.store.base.Store`)."""

    ROW_LOCKS = True
    SKIP_LOCKED = True
    offload = True  # a round trip per call, a flush per commit: keep it off the loop

    def __init__(
        self,
        url: str,
        *,
        migrate: bool = True,
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self._pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
            # keep trying through an outage of any length: callers get StoreError meanwhile
            reconnect_timeout=86400.0,
            open=False,
            name="callgate",
        )
        self._listeners: list[_Listener] = []
        try:
            self._pool.open(wait=True, timeout=timeout)
        except psycopg.Error as exc:
            self._pool.close()
            raise StoreError(f"cannot open {redact(url)}: {describe(exc)}") from exc
        if migrate:
            self.migrate()

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True) -> PostgresStore:
        return cls(url, migrate=migrate)

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"

    def close(self) -> None:
        for listener in self._listeners:
            listener.stop()
        self._listeners.clear()
        self._pool.close()

    # -- plumbing -----------------------------------------------------------------------

    def _write(self) -> AbstractContextManager[_PgConn]:
        return self._transaction(pipeline=True)

    @contextmanager
    def _transaction(self, *, pipeline: bool) -> Iterator[_PgConn]:
        """In pipeline mode, statements whose results nobody reads yet are sent without
        waiting: a transaction costs a round trip per read, not one per statement."""
        try:
            with (
                self._pool.connection() as conn,
                conn.pipeline() if pipeline else nullcontext() as batch,
                conn.transaction(),
            ):
                yield _PgConn(conn, batch)
        except psycopg.Error as exc:
            raise store_error(exc) from exc

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        try:
            with self._pool.connection() as conn:
                return conn.execute(to_psycopg(sql), params).fetchall()
        except psycopg.Error as exc:
            raise store_error(exc) from exc

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied (one process at a time); their names."""
        applied: list[str] = []
        with self._transaction(pipeline=False) as c:
            c.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATE_LOCK,))
            c.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            done = {r[0] for r in c.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in migrations("postgres"):
                if version in done:
                    continue
                c.script(sql)
                c.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time())
                )
                applied.append(name)
        return applied

    def _insert_jobs(self, c: Conn, rows: list[tuple[Any, ...]], now: float) -> None:
        columns = list(zip(*rows, strict=True))
        c.execute(
            INSERT_JOBS_SQL, {f"c{i}": list(col) for i, col in enumerate(columns)} | {"now": now}
        )

    def _take_claimable(self, c: Conn, ids: list[int], now: float) -> list[Job]:
        """Lock the heads (skipping any a person is changing right now) and their groups,
        each in group order, so claims, finishes and submits never deadlock."""
        if not ids:
            return []
        rows = c.execute(TAKE_SQL, {"ids": ids, "now": now}).fetchall()
        return claimable_jobs(c, rows, now)

    def _mark_in_flight(
        self, c: Conn, jobs: list[Job], worker_id: str, now: float, lease: float
    ) -> None:
        c.execute(
            MARK_SQL,
            {
                "ids": [j.id for j in jobs],
                "groups": [j.group_key for j in jobs],
                "worker": worker_id,
                "lease": now + lease,
                "now": now,
            },
        )

    def write_batch(self, writes: Sequence[Write]) -> list[Any]:
        with self._write() as c:
            return PgBatch(c).run(writes)

    def _next_ids(self, c: Conn, n: int) -> list[int]:
        rows = c.execute(
            "SELECT nextval(pg_get_serial_sequence('jobs', 'id')) FROM generate_series(1, ?)",
            (n,),
        ).fetchall()
        return sorted(int(r[0]) for r in rows)

    def _notify(self, c: Conn) -> None:
        c.execute(f"NOTIFY {CHANNEL}")

    def _is_conflict(self, exc: BaseException) -> bool:
        return isinstance(exc, StoreError) and isinstance(
            exc.__cause__, psycopg.errors.UniqueViolation
        )

    def _fanout_lock(self, c: Conn) -> bool:
        return bool(c.execute("SELECT pg_try_advisory_xact_lock(?)", (FANOUT_LOCK,)).fetchone()[0])

    def _json_text(self, column: str, key: str) -> str:
        return f"({column}::json ->> '{key}')"

    def listen(
        self, callback: Callable[[], None], on_status: StatusCallback | None = None
    ) -> Callable[[], None]:
        listener = _Listener(self.url, callback, on_status)
        self._listeners.append(listener)
        return listener.stop

    def publish_status(self, provider: str, ref: str, result: AttemptResult) -> None:
        payload = json.dumps(status_payload(provider, ref, result))
        if len(payload.encode()) >= 8000:  # NOTIFY's limit: the tracker's poll covers it
            payload = json.dumps(status_payload(provider, ref, replace(result, response=None)))
        with self._write() as c:
            c.execute("SELECT pg_notify(?, ?)", (STATUS_CHANNEL, payload))


def status_payload(provider: str, ref: str, result: AttemptResult) -> dict[str, Any]:
    return {
        "provider": provider,
        "ref": ref,
        "outcome": None if result.outcome is None else str(result.outcome),
        "error_code": result.error_code,
        "error_message": result.error_message,
        "retry_after": result.retry_after,
        "ended_at": result.ended_at,
        "response": None if result.response is None else dict(result.response),
    }


def status_from_payload(payload: str) -> tuple[str, str, AttemptResult]:
    doc = json.loads(payload)
    result = AttemptResult(
        None if doc["outcome"] is None else Outcome(doc["outcome"]),
        provider_ref=doc["ref"],
        error_code=doc.get("error_code"),
        error_message=doc.get("error_message"),
        retry_after=doc.get("retry_after"),
        ended_at=doc.get("ended_at"),
        response=doc.get("response"),
    )
    return str(doc["provider"]), str(doc["ref"]), result


class _Listener:
    """A thread with its own connection, LISTENing: it calls ``callback`` on every
    notification, and once after each (re)connect, since a NOTIFY sent while it was
    disconnected is lost. A lost connection is retried with backoff, never raised."""

    def __init__(
        self,
        url: str,
        callback: Callable[[], None],
        on_status: StatusCallback | None = None,
        poll: float = 0.25,
    ) -> None:
        self._url, self._callback, self._poll = url, callback, poll
        self._on_status = on_status
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="callgate-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if self._on_status is not None:
                        conn.execute(f"LISTEN {STATUS_CHANNEL}")
                    self._callback()
                    backoff = 0.5
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=self._poll):
                            if notice.channel == STATUS_CHANNEL:
                                self._status(notice.payload)
                            else:
                                self._callback()
            except psycopg.Error as exc:
                log.warning("listening for new jobs failed (%s); retrying in %.1f s", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _status(self, payload: str) -> None:
        assert self._on_status is not None
        try:
            self._on_status(*status_from_payload(payload))
        except Exception:  # a bad payload must not stop the listener
            log.exception("could not pass on a provider status notification")


def redact(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
