"""The webhook outbox on SQLite: events fan out into deliveries, which are claimed in
order per (job, endpoint), retried on a schedule, dead-lettered, and replayed.

A claim moves ``next_attempt_at`` past the request's timeout: that is the delivery's
lease, so two sender processes never post the same delivery at once, and a sender that
dies leaves it due again when the lease runs out.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from callgate.domain import Delivery, from_ts, to_datetime

#: the event types that become webhooks
WEBHOOK_TYPES = (
    "job.delivered",
    "job.failed",
    "job.expired",
    "job.blocked",
    "job.canceled",
    "job.retrying",
)
_TYPES_SQL = "(" + ", ".join(f"'{t}'" for t in WEBHOOK_TYPES) + ")"
DELIVERY_COLUMNS = (
    "id, event_id, job_id, url, format, status, attempts, next_attempt_at, last_status_code, "
    "last_error, created_at, delivered_at"
)

FAN_OUT_SQL = f"""
INSERT OR IGNORE INTO webhook_deliveries
    (event_id, job_id, url, format, next_attempt_at, created_at, updated_at)
SELECT e.id, e.job_id, {{url}},
       CASE WHEN {{url_is_callback}} AND json_extract(j.metadata, '$.compat') = 'fax_gateway'
            THEN 'fax_gateway' ELSE 'standard' END,
       :now, :now, :now
FROM events e JOIN jobs j ON j.id = e.job_id
WHERE e.id > :after AND e.id <= :upto AND e.type IN {_TYPES_SQL}
  AND {{url}} IS NOT NULL AND {{url}} NOT IN (SELECT url FROM webhook_gone)
ORDER BY e.id
"""

#: a pending delivery with no earlier pending one for the same job and endpoint.
#: (INDEXED BY: left to itself the planner takes the (status, id) index, and this check
#: becomes a scan of every pending delivery for each one.)
_HEAD = (
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p INDEXED BY webhook_deliveries_order"
    " WHERE p.job_id = d.job_id AND p.url = d.url AND p.status = 'pending' AND p.id < d.id) "
)
NEW_EVENTS_SQL = (
    "SELECT coalesce(max(id), 0) > coalesce("
    "(SELECT event_id FROM outbox_cursor WHERE name = 'webhooks'), 0) FROM events"
)
DUE_SQL = (
    "SELECT {cols} FROM webhook_deliveries d INDEXED BY webhook_deliveries_due "
    "WHERE d.status = 'pending' AND d.next_attempt_at <= :now"
    + _HEAD
    + "ORDER BY d.next_attempt_at LIMIT :limit"
)
NEXT_DUE_SQL = (
    "SELECT d.next_attempt_at FROM webhook_deliveries d INDEXED BY webhook_deliveries_due "
    "WHERE d.status = 'pending'" + _HEAD + "ORDER BY d.next_attempt_at LIMIT 1"
)


def delivery_from_row(r: Sequence[Any]) -> Delivery:
    return Delivery(
        id=r[0],
        event_id=r[1],
        job_id=r[2],
        url=r[3],
        format=r[4],
        status=r[5],
        attempts=r[6],
        next_attempt_at=from_ts(r[7]),
        last_status_code=r[8],
        last_error=r[9],
        created_at=from_ts(r[10]),
        delivered_at=to_datetime(r[11]),
    )


class SQLiteWebhooks:
    """Mixed into :class:`~callgate.store.sqlite.SQLiteStore`."""

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # provided by SQLiteStore

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        raise NotImplementedError  # provided by SQLiteStore

    def fan_out(self, now: float, default_url: str | None) -> int:
        """Turn new webhook-worthy events into deliveries (each job's callback_url, and
        the default endpoint); return how many deliveries were created."""
        if not self._read(NEW_EVENTS_SQL)[0][0]:
            return 0  # the usual case: no write lock taken just to find nothing new
        with self._write() as c:
            row = c.execute("SELECT event_id FROM outbox_cursor WHERE name = 'webhooks'").fetchone()
            after = row[0] if row else 0
            upto = c.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
            if upto <= after:
                return 0
            params = {"now": now, "after": after, "upto": upto}
            made = c.execute(
                FAN_OUT_SQL.format(url="j.callback_url", url_is_callback="1"), params
            ).rowcount
            if default_url:
                made += c.execute(
                    FAN_OUT_SQL.format(url=":default", url_is_callback="0"),
                    params | {"default": default_url},
                ).rowcount
            c.execute(
                "INSERT INTO outbox_cursor VALUES ('webhooks', ?) "
                "ON CONFLICT (name) DO UPDATE SET event_id = excluded.event_id",
                (upto,),
            )
        return made

    def claim_deliveries(self, now: float, limit: int, lease: float) -> list[Delivery]:
        """Due deliveries, at most one per (job, endpoint), the oldest first."""
        with self._write() as c:
            rows = c.execute(
                DUE_SQL.format(cols=DELIVERY_COLUMNS), {"now": now, "limit": limit}
            ).fetchall()
            c.executemany(
                "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?",
                [(now + lease, r[0]) for r in rows],
            )
        return [delivery_from_row(r) for r in rows]

    def next_delivery_at(self) -> float | None:
        """When the next claimable delivery is due (only the head of each (job, endpoint)
        chain counts: the ones behind it wait for it, whatever their own time)."""
        rows = self._read(NEXT_DUE_SQL)
        return float(rows[0][0]) if rows else None

    def delivery_done(self, delivery_id: int, now: float, status_code: int) -> None:
        with self._write() as c:
            c.execute(
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, "
                "last_status_code = ?, last_error = NULL, delivered_at = ?, updated_at = ? "
                "WHERE id = ?",
                (status_code, now, now, delivery_id),
            )

    def delivery_failed(
        self,
        delivery_id: int,
        now: float,
        status_code: int | None,
        error: str,
        retry_at: float | None,
    ) -> None:
        """One failed attempt: due again at ``retry_at``, or dead-lettered (``None``)."""
        with self._write() as c:
            c.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status_code = ?, "
                "last_error = ?, updated_at = ?, status = ?, next_attempt_at = coalesce(?, "
                "next_attempt_at) WHERE id = ?",
                (
                    status_code,
                    error[:500],
                    now,
                    "pending" if retry_at else "failed",
                    retry_at,
                    delivery_id,
                ),
            )

    def endpoint_gone(self, url: str, now: float) -> int:
        """410 Gone: stop every pending delivery to ``url`` and send it nothing more."""
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO webhook_gone VALUES (?, ?)", (url, now))
            cur = c.execute(
                "UPDATE webhook_deliveries SET status = 'stopped', updated_at = ?, "
                "last_status_code = 410, last_error = 'the endpoint answered 410 Gone' "
                "WHERE url = ? AND status = 'pending'",
                (now, url),
            )
        return int(cur.rowcount)

    def list_deliveries(
        self,
        *,
        status: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
        job_id: int | None = None,
    ) -> list[Delivery]:
        where = ["id < ?"]
        params: list[Any] = [before_id if before_id is not None else 2**62]
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if job_id is not None:
            where.append("job_id = ?")
            params.append(job_id)
        rows = self._read(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [delivery_from_row(r) for r in rows]

    def replay_deliveries(
        self, now: float, *, delivery_id: int | None = None, since: float | None = None
    ) -> int:
        """Send again: one delivery (whatever its status), or every failed or stopped one
        created since ``since``. An endpoint that had answered 410 is trusted again."""
        with self._write() as c:
            params: list[Any]
            if delivery_id is not None:
                where, params = "id = ? AND status != 'pending'", [delivery_id]
            else:
                where, params = "status IN ('failed', 'stopped') AND created_at >= ?", [since]
            urls = [
                r[0]
                for r in c.execute(
                    f"SELECT DISTINCT url FROM webhook_deliveries WHERE {where}", params
                )
            ]
            c.executemany("DELETE FROM webhook_gone WHERE url = ?", [(u,) for u in urls])
            cur = c.execute(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, "
                f"next_attempt_at = ?, updated_at = ? WHERE {where}",
                [now, now, *params],
            )
        return int(cur.rowcount)

    def delivery(self, delivery_id: int) -> Delivery | None:
        rows = self._read(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?", (delivery_id,)
        )
        return delivery_from_row(rows[0]) if rows else None
