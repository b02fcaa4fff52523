"""The outbox's one claim path, portable SQL for both backends.

Two tables feed it: ``webhook_deliveries`` (a job's events, one row per endpoint, made by
the fan-out in :mod:`callgate.store.sql_webhooks`) and ``system_webhooks`` (events about
callgate itself, which belong to no job, written by :func:`add_system_webhook` in the
transaction of the change they report). Both are claimed, settled and timed by the same
four methods here: a claim moves ``next_attempt_at`` past the request's timeout, which is
the item's lease, so two sender processes never post the same item at once, and a sender
that dies leaves it due again when the lease runs out. A job's deliveries go out in order
per (job, endpoint): only the head of each chain is due; system events have no order.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callgate.domain import Delivery, SystemWebhook
from callgate.store.sql_tx import Conn, SQLParts
from callgate.store.sql_webhooks import DELIVERY_COLUMNS, delivery_from_row

#: what the outbox hands the sender: a job event's delivery, or a job-less event
OutboxItem = Delivery | SystemWebhook


def add_system_webhook(c: Conn, type_: str, data: Mapping[str, Any], now: float) -> None:
    """Queue a job-less webhook event in the caller's transaction."""
    c.execute(
        "INSERT INTO system_webhooks (type, data, next_attempt_at, created_at) VALUES (?, ?, ?, ?)",
        (type_, json.dumps(dict(data), default=str), now, now),
    )


def _system_from_row(r: Sequence[Any]) -> SystemWebhook:
    return SystemWebhook(r[0], r[1], json.loads(r[2]), r[3], float(r[4]))


@dataclass(frozen=True)
class Box:
    """One table of the outbox: its due and next-due queries, its row mapper, and
    whether its rows keep ``updated_at``."""

    table: str
    due: str  # :now, :limit
    next_due: str
    record: Callable[[Sequence[Any]], OutboxItem]
    touch: str  # extra SET clause on every settle


@functools.cache
def boxes(indexed_by: bool, skip_locked: bool) -> tuple[Box, Box]:
    """(job deliveries, system events), with SQLite's index hints or PostgreSQL's row
    locks.

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
    jobs = Box(
        "webhook_deliveries",
        f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d{due} "
        "WHERE d.status = 'pending' AND d.next_attempt_at <= :now"
        + head
        + f"ORDER BY d.next_attempt_at LIMIT :limit{lock}",
        f"SELECT d.next_attempt_at FROM webhook_deliveries d{due} "
        "WHERE d.status = 'pending'" + head + "ORDER BY d.next_attempt_at LIMIT 1",
        delivery_from_row,
        ", updated_at = :now",
    )
    system = Box(
        "system_webhooks",
        "SELECT id, type, data, attempts, created_at FROM system_webhooks "
        "WHERE status = 'pending' AND next_attempt_at <= :now ORDER BY id LIMIT :limit"
        + (" FOR UPDATE SKIP LOCKED" if skip_locked else ""),
        "SELECT min(next_attempt_at) FROM system_webhooks WHERE status = 'pending'",
        _system_from_row,
        "",
    )
    return jobs, system


class SQLOutbox(SQLParts):
    """Claiming and settling the outbox's items (mixed into the SQL store)."""

    #: SQLite: planner hints; PostgreSQL: row locks so two senders never share an item
    INDEXED_BY = False
    SKIP_LOCKED = False

    def _boxes(self, system: bool) -> tuple[Box, ...]:
        jobs, events = boxes(self.INDEXED_BY, self.SKIP_LOCKED)
        return (jobs, events) if system else (jobs,)

    def _box(self, item: OutboxItem) -> Box:
        jobs, events = boxes(self.INDEXED_BY, self.SKIP_LOCKED)
        return jobs if isinstance(item, Delivery) else events

    def claim_outbox(
        self, now: float, limit: int, lease: float, *, jobs: bool = True, system: bool = True
    ) -> list[OutboxItem]:
        """Due items, the oldest first: job deliveries (at most one per job and
        endpoint), then, in the room left, job-less events (``system``: a default
        endpoint is set to send them to)."""
        claimed: list[OutboxItem] = []
        with self._write() as c:
            for box in self._boxes(system)[0 if jobs else 1 :]:
                room = limit - len(claimed)
                if room <= 0:
                    break
                rows = c.execute(box.due, {"now": now, "limit": room}).fetchall()
                c.executemany(
                    f"UPDATE {box.table} SET next_attempt_at = ? WHERE id = ?",
                    [(now + lease, r[0]) for r in rows],
                )
                claimed += [box.record(r) for r in rows]
        return claimed

    def next_outbox_at(self, *, system: bool = True) -> float | None:
        """When the next claimable item is due (of a job's deliveries only the head of
        each (job, endpoint) chain counts: the ones behind it wait for it)."""
        due = [r[0][0] for box in self._boxes(system) if (r := self._read(box.next_due))]
        times = [float(t) for t in due if t is not None]
        return min(times) if times else None

    def outbox_done(self, item: OutboxItem, now: float, status_code: int) -> None:
        box = self._box(item)
        with self._write() as c:
            c.execute(
                f"UPDATE {box.table} SET status = 'delivered', attempts = attempts + 1, "
                f"last_status_code = :code, last_error = NULL, delivered_at = :now{box.touch} "
                "WHERE id = :id",
                {"code": status_code, "now": now, "id": item.id},
            )

    def outbox_failed(
        self,
        item: OutboxItem,
        now: float,
        status_code: int | None,
        error: str,
        retry_at: float | None,
    ) -> None:
        """One failed attempt: due again at ``retry_at``, or dead-lettered (``None``)."""
        box = self._box(item)
        with self._write() as c:
            c.execute(
                f"UPDATE {box.table} SET attempts = attempts + 1, last_status_code = :code, "
                f"last_error = :error, status = :status{box.touch}, "
                "next_attempt_at = coalesce(:retry_at, next_attempt_at) WHERE id = :id",
                {
                    "code": status_code,
                    "error": error[:500],
                    "now": now,
                    "status": "pending" if retry_at else "failed",
                    "retry_at": retry_at,
                    "id": item.id,
                },
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
