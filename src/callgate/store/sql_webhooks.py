"""A job's webhook deliveries, portable SQL for both backends: events fan out into
deliveries (claimed and settled by the outbox, :mod:`callgate.store.sql_outbox`, in order
per (job, endpoint)), an endpoint that answers 410 is stopped, and deliveries are listed
and replayed.

An event of a webhook type is written with ``fanout = 1``; the fan-out turns it into
deliveries and clears the flag in one transaction, so no event is skipped however the
writers' commits interleave.
"""

from __future__ import annotations

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
