"""The webhook outbox, portable SQL for both backends: events fan out into deliveries,
which are claimed in order per (job, endpoint), retried on a schedule, dead-lettered, and
replayed.

An event of a webhook type is written with ``fanout = 1``; the fan-out turns it into
deliveries and clears the flag in one transaction, so no event is skipped however the
writers' commits interleave. A claim moves ``next_attempt_at`` past the request's
timeout: that is the delivery's lease, so two sender processes never post the same
delivery at once, and a sender that dies leaves it due again when the lease runs out.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from callgate.domain import Delivery, from_ts, to_datetime
from callgate.store.sql_tx import Conn, SQLParts

DELIVERY_COLUMNS = (
    "id, event_id, job_id, url, format, status, attempts, next_attempt_at, last_status_code, "
    "last_error, created_at, delivered_at"
)
#: events turned into deliveries per fan-out transaction
FAN_OUT_CHUNK = 1000

FAN_OUT_SQL = """
INSERT INTO webhook_deliveries
    (event_id, job_id, url, format, next_attempt_at, created_at, updated_at)
SELECT e.id, e.job_id, {url},
       CASE WHEN {url_is_callback} AND {compat} = 'fax_gateway'
            THEN 'fax_gateway' ELSE 'standard' END,
       :now, :now, :now
FROM events e JOIN jobs j ON j.id = e.job_id
WHERE e.id IN ({ids})
  AND {url} IS NOT NULL AND {url} NOT IN (SELECT url FROM webhook_gone)
ORDER BY e.id
ON CONFLICT DO NOTHING
"""


@functools.cache
def _queries(indexed_by: bool, skip_locked: bool) -> dict[str, str]:
    """The claim queries, with SQLite's index hints or PostgreSQL's row locks.

    (INDEXED BY: left to itself SQLite's planner takes the (status, id) index, and the
    head check becomes a scan of every pending delivery for each one.)
    """
    order = " INDEXED BY webhook_deliveries_order" if indexed_by else ""
    due = " INDEXED BY webhook_deliveries_due" if indexed_by else ""
    head = (
        f" AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p{order}"
        " WHERE p.job_id = d.job_id AND p.url = d.url AND p.status = 'pending' AND p.id < d.id) "
    )
    lock = " FOR UPDATE OF d SKIP LOCKED" if skip_locked else ""
    return {
        "due": f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d{due} "
        "WHERE d.status = 'pending' AND d.next_attempt_at <= :now"
        + head
        + f"ORDER BY d.next_attempt_at LIMIT :limit{lock}",
        "next_due": f"SELECT d.next_attempt_at FROM webhook_deliveries d{due} "
        "WHERE d.status = 'pending'" + head + "ORDER BY d.next_attempt_at LIMIT 1",
    }


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


class SQLWebhooks(SQLParts):
    """Mixed into :class:`~callgate.store.sql.SQLStore`."""

    #: SQLite: planner hints; PostgreSQL: row locks so two senders never share a delivery
    INDEXED_BY = False
    SKIP_LOCKED = False

    def _fanout_lock(self, c: Conn) -> bool:
        """Serialise fan-outs (so deliveries are made in event order); False: another
        process is fanning out right now."""
        return True

    def _json_text(self, column: str, key: str) -> str:
        """SQL for the text of ``key`` in the JSON object in ``column``."""
        return f"json_extract({column}, '$.{key}')"

    def fan_out(self, now: float, default_url: str | None) -> int:
        """Turn new webhook-worthy events into deliveries (each job's callback_url, and
        the default endpoint); return how many deliveries were created."""
        if not self._read("SELECT 1 FROM events WHERE fanout = 1 LIMIT 1"):
            return 0  # the usual case: no write lock taken just to find nothing new
        with self._write() as c:
            if not self._fanout_lock(c):
                return 0
            ids = [
                r[0]
                for r in c.execute(
                    "SELECT id FROM events WHERE fanout = 1 ORDER BY id LIMIT ?", (FAN_OUT_CHUNK,)
                )
            ]
            if not ids:
                return 0
            marks = ",".join(str(int(i)) for i in ids)
            compat = self._json_text("j.metadata", "compat")
            made = c.execute(
                FAN_OUT_SQL.format(
                    url="j.callback_url", url_is_callback="1 = 1", compat=compat, ids=marks
                ),
                {"now": now},
            ).rowcount
            if default_url:
                made += c.execute(
                    FAN_OUT_SQL.format(
                        url="CAST(:default AS TEXT)",
                        url_is_callback="1 = 0",
                        compat=compat,
                        ids=marks,
                    ),
                    {"now": now, "default": default_url},
                ).rowcount
            c.execute(f"UPDATE events SET fanout = 0 WHERE id IN ({marks})")
        return made

    def claim_deliveries(self, now: float, limit: int, lease: float) -> list[Delivery]:
        """Due deliveries, at most one per (job, endpoint), the oldest first."""
        with self._write() as c:
            due = _queries(self.INDEXED_BY, self.SKIP_LOCKED)["due"]
            rows = c.execute(due, {"now": now, "limit": limit}).fetchall()
            c.executemany(
                "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?",
                [(now + lease, r[0]) for r in rows],
            )
        return [delivery_from_row(r) for r in rows]

    def next_delivery_at(self) -> float | None:
        """When the next claimable delivery is due (only the head of each (job, endpoint)
        chain counts: the ones behind it wait for it, whatever their own time)."""
        rows = self._read(_queries(self.INDEXED_BY, self.SKIP_LOCKED)["next_due"])
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
            c.execute(
                "INSERT INTO webhook_gone VALUES (?, ?) "
                "ON CONFLICT (url) DO UPDATE SET at = excluded.at",
                (url, now),
            )
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
