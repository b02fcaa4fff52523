"""The worker's writes on PostgreSQL, set-based: a group commit of N writes costs one
statement per kind of write, not several per job.

Each statement takes its rows as arrays (``unnest``) and does in one round trip what
:class:`~callgate.store.sql_tx.SQLTx` does row by row on SQLite: the same guards (the
job is still in flight, still this worker's, still on this attempt), the same status
changes, the same outbox events. Rows whose guard fails are left alone and answer
``None``, exactly as there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from callgate.domain import WEBHOOK_EVENT_TYPES, Reason, Status
from callgate.store.base import Abandon, Accepted, Finish, SettleUnsent, StartAttempt, Write
from callgate.store.sql_tx import Conn, reached_again

_WEBHOOKS = "(" + ", ".join(f"'{t}'" for t in sorted(WEBHOOK_EVENT_TYPES)) + ")"

#: a status change from a ``req`` row (as :func:`callgate.store.sql_tx.move` does it)
_MOVE = """status = req.status, reason = req.reason, detail = req.detail,
        run_at = coalesce(req.run_at, j.run_at),
        worker_id = CASE WHEN req.status = 'in_flight' THEN j.worker_id END,
        lease_expires_at = CASE WHEN req.status = 'in_flight' THEN j.lease_expires_at END,
        updated_at = req.now"""
_RETURNING = "RETURNING j.id, j.status, j.reason, j.detail, j.attempts, req.now"
#: the outbox rows for the jobs a CTE named ``moved`` changed
_EVENTS = f"""events AS (
    INSERT INTO events (job_id, type, status, reason, detail, created_at, fanout, attempts)
    SELECT id, 'job.' || status, status, reason, detail, now,
           CASE WHEN 'job.' || status IN {_WEBHOOKS} THEN 1 ELSE 0 END, attempts
    FROM moved
)"""
_DECISION = (
    ":statuses::text[], :reasons::text[], :details::text[], :run_ats::float8[], :nows::float8[]"
)
_DECISION_COLS = "status, reason, detail, run_at, now"

START_SQL = """
WITH req AS (
    SELECT * FROM unnest(:ids::bigint[], :workers::text[], :nows::float8[]) AS r(id, worker, now)
), started AS (
    UPDATE jobs j SET attempt_no = j.attempt_no + 1, attempts = j.attempts + 1,
                      reached_at = coalesce(j.reached_at, req.now), updated_at = req.now
    FROM req
    WHERE j.id = ANY(:ids::bigint[]) AND j.id = req.id
      AND j.status = 'in_flight' AND j.worker_id = req.worker
      AND j.cancel_requested = 0
    RETURNING j.id, j.attempt_no, req.worker, req.now
), rows AS (
    INSERT INTO attempts (job_id, number, state, worker_id, started_at)
    SELECT id, attempt_no, 'sending', worker, now FROM started
)
SELECT id, attempt_no FROM started
"""

# a job canceled after it was claimed, before it was sent: it is not sent
CANCEL_UNSENT_SQL = f"""
WITH req AS (
    SELECT * FROM unnest(:ids::bigint[], :workers::text[], :nows::float8[]) AS r(id, worker, now)
), moved AS (
    UPDATE jobs j SET status = 'canceled', reason = :reason, detail = :detail,
                      worker_id = NULL, lease_expires_at = NULL, updated_at = req.now
    FROM req
    WHERE j.id = ANY(:ids::bigint[]) AND j.id = req.id
      AND j.status = 'in_flight' AND j.worker_id = req.worker
      AND j.cancel_requested = 1
    {_RETURNING}
), {_EVENTS}
SELECT id FROM moved
"""

ACCEPTED_SQL = """
WITH req AS (
    SELECT * FROM unnest(:ids::bigint[], :numbers::int[], :refs::text[]) AS r(id, number, ref)
), attempt AS (
    UPDATE attempts a SET state = 'pending', provider_ref = req.ref
    FROM req WHERE a.job_id = ANY(:ids::bigint[]) AND a.job_id = req.id
      AND a.number = req.number AND a.state = 'sending'
)
UPDATE jobs j SET provider_ref = req.ref
FROM req WHERE j.id = ANY(:ids::bigint[]) AND j.id = req.id
"""

FINISH_SQL = f"""
WITH req AS (
    SELECT * FROM unnest(
        :ids::bigint[], :numbers::int[], :outcomes::text[], :refs::text[], :codes::text[],
        :messages::text[], :counted::int[], :terminal::int[], {_DECISION}
    ) AS r(id, number, outcome, ref, code, message, counted, terminal, {_DECISION_COLS})
), moved AS (
    UPDATE jobs j SET
        attempts = j.attempts - (1 - req.counted),
        reached_at = CASE WHEN req.counted = 1 THEN j.reached_at
                          ELSE {reached_again("j.id", "req.number")} END,
        provider_ref = coalesce(req.ref, j.provider_ref),
        status = CASE WHEN j.cancel_requested = 1 AND req.terminal = 0
                      THEN 'canceled' ELSE req.status END,
        reason = CASE WHEN j.cancel_requested = 1 AND req.terminal = 0
                      THEN :canceled_reason ELSE req.reason END,
        detail = CASE WHEN j.cancel_requested = 1 AND req.terminal = 0
                      THEN :canceled_detail ELSE req.detail END,
        run_at = coalesce(req.run_at, j.run_at),
        worker_id = NULL, lease_expires_at = NULL, updated_at = req.now
    FROM req
    WHERE j.id = ANY(:ids::bigint[]) AND j.id = req.id AND j.attempt_no = req.number
      AND j.status IN ('in_flight', 'uncertain')
    {_RETURNING}
), attempt AS (
    UPDATE attempts a SET state = 'done', ended_at = req.now, outcome = req.outcome,
                          provider_ref = coalesce(req.ref, a.provider_ref),
                          error_code = req.code, error_message = req.message,
                          counted = req.counted
    FROM req JOIN moved ON moved.id = req.id
    WHERE a.job_id = ANY(:ids::bigint[]) AND a.job_id = req.id AND a.number = req.number
), {_EVENTS}
SELECT id, status FROM moved
"""

ABANDON_SQL = f"""
WITH req AS (
    SELECT * FROM unnest(:ids::bigint[], :numbers::int[], :messages::text[], {_DECISION})
        AS r(id, number, message, {_DECISION_COLS})
), moved AS (
    UPDATE jobs j SET attempts = j.attempts - 1,
                      reached_at = {reached_again("j.id", "req.number")}, {_MOVE}
    FROM req WHERE j.id = ANY(:ids::bigint[]) AND j.id = req.id
      AND j.status = 'in_flight' AND j.attempt_no = req.number
    {_RETURNING}
), attempt AS (
    UPDATE attempts a SET state = 'done', ended_at = req.now, counted = 0,
                          error_message = req.message
    FROM req JOIN moved ON moved.id = req.id
    WHERE a.job_id = ANY(:ids::bigint[]) AND a.job_id = req.id AND a.number = req.number
), {_EVENTS}
SELECT id, status FROM moved
"""

SETTLE_SQL = f"""
WITH req AS (
    SELECT * FROM unnest(:ids::bigint[], {_DECISION}) AS r(id, {_DECISION_COLS})
), moved AS (
    UPDATE jobs j SET {_MOVE}
    FROM req WHERE j.id = ANY(:ids::bigint[]) AND j.id = req.id AND j.status = 'in_flight'
    {_RETURNING}
), {_EVENTS}
SELECT id, status FROM moved
"""


#: lock the groups of these jobs in group order first: whatever order an UPDATE then
#: visits the jobs in, claims, finishes and submits take group rows in one order
LOCK_GROUPS_SQL = """
SELECT 1 FROM groups
WHERE group_key IN (SELECT group_key FROM jobs WHERE id = ANY(:ids::bigint[]))
ORDER BY group_key FOR UPDATE
"""


def _decisions(writes: Sequence[Finish | Abandon | SettleUnsent]) -> dict[str, list[Any]]:
    return {
        "statuses": [str(w.decision.status) for w in writes],
        "reasons": [None if w.decision.reason is None else str(w.decision.reason) for w in writes],
        "details": [w.decision.detail for w in writes],
        "run_ats": [w.decision.run_at for w in writes],
        "nows": [w.now for w in writes],
    }


def _statuses(c: Conn, sql: str, params: dict[str, Any]) -> dict[int, Status]:
    return {int(r[0]): Status(r[1]) for r in c.execute(sql, params)}


class PgBatch:
    """Applies a batch of writes (at most one per job) with one statement per kind."""

    def __init__(self, c: Conn) -> None:
        self._c = c

    def run(self, writes: Sequence[Write]) -> list[Any]:
        kinds: dict[type, list[int]] = defaultdict(list)
        for i, write in enumerate(writes):
            kinds[type(write)].append(i)
        results: list[Any] = [None] * len(writes)
        handlers: dict[type, Callable[[list[Any]], dict[int, Any]]] = {
            StartAttempt: self._start,
            Accepted: self._accepted,
            Finish: self._finish,
            Abandon: self._abandon,
            SettleUnsent: self._settle,
        }
        for kind, positions in kinds.items():
            found = handlers[kind]([writes[i] for i in positions])
            for i in positions:
                results[i] = found.get(writes[i].job_id)
        return results

    def _lock_groups(self, writes: Sequence[Write]) -> None:
        self._c.execute(LOCK_GROUPS_SQL, {"ids": [w.job_id for w in writes]})

    def _start(self, writes: list[StartAttempt]) -> dict[int, Any]:
        params = {
            "ids": [w.job_id for w in writes],
            "workers": [w.worker_id for w in writes],
            "nows": [w.now for w in writes],
        }
        numbers = {int(r[0]): int(r[1]) for r in self._c.execute(START_SQL, params)}
        refused = [w for w in writes if w.job_id not in numbers]
        if refused:  # canceled meanwhile, or not ours any more: not sent either way
            self._lock_groups(refused)
            self._c.execute(
                CANCEL_UNSENT_SQL,
                {
                    "ids": [w.job_id for w in refused],
                    "workers": [w.worker_id for w in refused],
                    "nows": [w.now for w in refused],
                    "reason": str(Reason.CANCELED),
                    "detail": "canceled on request before it was sent",
                },
            ).fetchall()
        return dict(numbers)

    def _accepted(self, writes: list[Accepted]) -> dict[int, Any]:
        self._c.execute(
            ACCEPTED_SQL,
            {
                "ids": [w.job_id for w in writes],
                "numbers": [w.number for w in writes],
                "refs": [w.ref for w in writes],
            },
        )
        return {}

    def _finish(self, writes: list[Finish]) -> dict[int, Any]:
        params = _decisions(writes) | {
            "ids": [w.job_id for w in writes],
            "numbers": [w.number for w in writes],
            "outcomes": [
                None if w.result.outcome is None else str(w.result.outcome) for w in writes
            ],
            "refs": [w.result.provider_ref for w in writes],
            "codes": [w.result.error_code for w in writes],
            "messages": [w.result.error_message for w in writes],
            "counted": [int(w.decision.count_attempt) for w in writes],
            "terminal": [int(w.decision.status.terminal) for w in writes],
            "canceled_reason": str(Reason.CANCELED),
            "canceled_detail": "canceled on request",
        }
        self._lock_groups(writes)
        return dict(_statuses(self._c, FINISH_SQL, params))

    def _abandon(self, writes: list[Abandon]) -> dict[int, Any]:
        params = _decisions(writes) | {
            "ids": [w.job_id for w in writes],
            "numbers": [w.number for w in writes],
            "messages": [f"not sent: {w.decision.detail}" for w in writes],
        }
        self._lock_groups(writes)
        return dict(_statuses(self._c, ABANDON_SQL, params))

    def _settle(self, writes: list[SettleUnsent]) -> dict[int, Any]:
        params = _decisions(writes) | {"ids": [w.job_id for w in writes]}
        self._lock_groups(writes)
        return dict(_statuses(self._c, SETTLE_SQL, params))
