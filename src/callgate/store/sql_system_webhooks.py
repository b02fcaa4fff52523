"""Webhook events that belong to no job (``breaker.tripped``), portable SQL for both
backends.

A job's events go through the job outbox (:mod:`callgate.store.sql_webhooks`), ordered
per job and endpoint. An event about callgate itself has no job: it is written to
``system_webhooks`` in the transaction of the change it reports (so it is sent if and
only if that change committed) and delivered to the default endpoint
(``CALLGATE_WEBHOOK_URL``) with the same signing and retry schedule. A claim moves
``next_attempt_at`` past the request's timeout, the delivery's lease.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from callgate.domain import SystemWebhook
from callgate.store.sql_tx import Conn, SQLParts


def add_system_webhook(c: Conn, type_: str, data: Mapping[str, Any], now: float) -> None:
    """Queue a job-less webhook event in the caller's transaction."""
    c.execute(
        "INSERT INTO system_webhooks (type, data, next_attempt_at, created_at) VALUES (?, ?, ?, ?)",
        (type_, json.dumps(dict(data), default=str), now, now),
    )


class SQLSystemWebhooks(SQLParts):
    """Claiming and settling job-less webhook events (mixed into the SQL store)."""

    def claim_system_webhooks(self, now: float, limit: int, lease: float) -> list[SystemWebhook]:
        with self._write() as c:
            rows = c.execute(
                "SELECT id, type, data, attempts, created_at FROM system_webhooks "
                "WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?"
                + self._locking(skip=True),
                (now, limit),
            ).fetchall()
            c.executemany(
                "UPDATE system_webhooks SET next_attempt_at = ? WHERE id = ?",
                [(now + lease, r[0]) for r in rows],
            )
        return [SystemWebhook(r[0], r[1], json.loads(r[2]), r[3], float(r[4])) for r in rows]

    def next_system_webhook_at(self) -> float | None:
        rows = self._read(
            "SELECT min(next_attempt_at) FROM system_webhooks WHERE status = 'pending'"
        )
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    def system_webhook_done(self, webhook_id: int, now: float, status_code: int) -> None:
        with self._write() as c:
            c.execute(
                "UPDATE system_webhooks SET status = 'delivered', attempts = attempts + 1, "
                "last_status_code = ?, last_error = NULL, delivered_at = ? WHERE id = ?",
                (status_code, now, webhook_id),
            )

    def system_webhook_failed(
        self,
        webhook_id: int,
        now: float,
        status_code: int | None,
        error: str,
        retry_at: float | None,
    ) -> None:
        """One failed attempt: due again at ``retry_at``, or dead-lettered (``None``)."""
        with self._write() as c:
            c.execute(
                "UPDATE system_webhooks SET attempts = attempts + 1, last_status_code = ?, "
                "last_error = ?, status = ?, next_attempt_at = coalesce(?, next_attempt_at) "
                "WHERE id = ?",
                (
                    status_code,
                    error[:500],
                    "pending" if retry_at else "failed",
                    retry_at,
                    webhook_id,
                ),
            )

    def system_webhooks(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest job-less webhook events and how their delivery went."""
        rows = self._read(
            "SELECT id, type, data, status, attempts, last_status_code, last_error, created_at, "
            "delivered_at FROM system_webhooks ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        keys = ("id", "type", "data", "status", "attempts", "last_status_code", "last_error",
                "created_at", "delivered_at")  # fmt: skip
        out = []
        for r in rows:
            doc = dict(zip(keys, r, strict=True))
            doc["data"] = json.loads(doc["data"])
            out.append(doc)
        return out
