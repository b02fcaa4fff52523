"""A deployment's history, written straight into the tables: finished jobs (delivered and
failed, each with its attempt and events) and the groups of numbers sent to once, as a
gateway accumulates them over months. For the tests and benchmarks that check a hot
query's work does not grow with history (100,000 jobs in about a second, not minutes of
submits). Never used by the gateway itself.
"""

from __future__ import annotations

from typing import Any

_HISTORY_PG = """
INSERT INTO jobs (kind, to_number, group_key, status, payload, attempts, attempt_no,
                  run_at, created_at, updated_at, reached_at, batch_id)
SELECT 'sms', n, n, CASE WHEN mod(i, 10) = 0 THEN 'failed' ELSE 'delivered' END,
       '{"body": "reminder"}', 1, 1, %(at)s + i * 0.01, %(at)s + i * 0.01,
       %(at)s + i * 0.01 + 1, %(at)s + i * 0.01, CASE WHEN mod(i, 2) = 0 THEN %(batch)s::bigint END
FROM (SELECT i, '+1212555' || lpad(mod(i, %(numbers)s)::text, 4, '0') AS n
      FROM generate_series(1, %(n)s) AS i) s
"""
_HISTORY_SQLITE = """
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n)
INSERT INTO jobs (kind, to_number, group_key, status, payload, attempts, attempt_no,
                  run_at, created_at, updated_at, reached_at, batch_id)
SELECT 'sms', n, n, CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'delivered' END,
       '{"body": "reminder"}', 1, 1, :at + i * 0.01, :at + i * 0.01, :at + i * 0.01 + 1,
       :at + i * 0.01, CASE WHEN i % 2 = 0 THEN :batch END
FROM (SELECT i, '+1212555' || substr('0000' || (i % :numbers), -4) AS n FROM s)
"""

_PAST_GROUPS_PG = """
INSERT INTO groups (group_key, pending, busy, wake_at, seq, lane)
SELECT '+1213' || lpad(i::text, 7, '0'), 0, 0, NULL, i, 0 FROM generate_series(1, :past) AS i
"""
_PAST_GROUPS_SQLITE = """
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :past)
INSERT INTO groups (group_key, pending, busy, wake_at, seq, lane)
SELECT '+1213' || substr('0000000' || i, -7), 0, 0, NULL, i, 0 FROM s
"""


def write_history(
    store: Any, n: int, *, numbers: int, at: float, batch: int | None, past: int = 50_000
) -> None:
    """``n`` finished jobs to ``numbers`` numbers (``+12125550000`` on), every other one of
    batch ``batch``, each with its attempt and events, ids below whatever comes next; and
    the groups of ``past`` other numbers sent to once (``+1213...``), nothing pending."""
    params = {"n": n, "numbers": numbers, "at": at, "batch": batch, "past": past}
    with store._write() as c:
        if hasattr(store, "_conn"):
            c.execute(_HISTORY_SQLITE, params)
        else:
            c._c.execute(_HISTORY_PG, params)
        c.execute(
            "INSERT INTO attempts (job_id, number, state, counted, worker_id, started_at, "
            "ended_at, outcome) SELECT id, 1, 'done', 1, 'w0', created_at, updated_at, "
            "CASE status WHEN 'failed' THEN 'rejected' ELSE 'delivered' END FROM jobs "
            "WHERE status IN ('delivered', 'failed')"
        )
        c.execute(_PAST_GROUPS_SQLITE if hasattr(store, "_conn") else _PAST_GROUPS_PG, params)
        c.execute(
            "INSERT INTO events (job_id, type, status, created_at, fanout, attempts) "
            "SELECT id, 'job.' || status, status, updated_at, 0, 1 FROM jobs "
            "WHERE status IN ('delivered', 'failed')"
        )
