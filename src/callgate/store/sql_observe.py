"""What the metrics and the alerts read, and the alerts' state, in portable SQL for both
backends (issue 17).

Every read is one descent or one range of an index made for it, so its work does not
grow with the history of finished jobs (``tests/integration/test_history.py``): the
non-terminal statuses are counted in ``jobs_active``, the oldest waiting job is the first
entry of ``jobs_waiting`` (the oldest whose line is free, the first whose group has
nothing in ``jobs_one_in_flight_per_group``), the dead letters of the last hour a range of
``jobs_failed_at``, the failing endpoints the pending deliveries (``webhook_deliveries_due``),
the running batches' jobs ``jobs_batch`` of ``batches_running``. Alerts are rows of
``alerts``: at most one open per rule and subject (a unique partial index), so of several
processes raising the same alert one wins, and it is raised (and later resolved) once,
with its system webhook (``alert.raised``, ``alert.resolved``) in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from callgate.domain import Alert, Observation
from callgate.store.sql_outbox import add_system_webhook
from callgate.store.sql_tx import SQLParts

ACTIVE = "('queued', 'in_flight', 'retrying', 'held', 'uncertain')"
#: a worker row this old belongs to a worker long gone (killed, never released)
WORKER_ROW_TTL = 86_400.0
ALERT_COLUMNS = "id, rule, subject, detail, raised_at, resolved_at"


def _alert(row: Any) -> Alert:
    detail = json.loads(row[3])
    message = str(detail.pop("message", row[1]))
    raised, resolved = float(row[4]), None if row[5] is None else float(row[5])
    return Alert(int(row[0]), row[1], row[2], message, detail, raised, resolved)


class SQLObserve(SQLParts):
    """The observation, worker heartbeats and alerts (mixed into the SQL store)."""

    #: SQLite is told its indexes (``INDEXED BY``), so a plan cannot change under it
    INDEXED_BY = False

    def _hint(self, index: str) -> str:
        return f" INDEXED BY {index}" if self.INDEXED_BY else ""

    def observe(self, now: float, *, dead_letter_window: float = 3600.0) -> Observation:
        jobs = dict.fromkeys(("queued", "in_flight", "retrying", "held", "uncertain"), 0)
        for status, n in self._read(
            f"SELECT status, count(*) FROM jobs{self._hint('jobs_active')} "
            f"WHERE status IN {ACTIVE} GROUP BY status"
        ):
            jobs[status] = int(n)
        # run_at + 0: the expression jobs_waiting is on (see the observability migration)
        first = self._read(
            f"SELECT run_at FROM jobs{self._hint('jobs_waiting')} "
            "WHERE status IN ('queued', 'retrying') AND run_at + 0 <= ? "
            "ORDER BY run_at + 0 LIMIT 1",
            (now,),
        )
        oldest = first[0][0] if first else None
        # the same, of the jobs whose line is free (nothing of their group in flight): a
        # job waiting behind its number's fax is serialised, not stuck. The walk stops at
        # the first one, so it visits the busy lines' waiting jobs at most, never history.
        free = self._read(
            f"SELECT j.run_at FROM jobs j{self._hint('jobs_waiting')} "
            "WHERE j.status IN ('queued', 'retrying') AND j.run_at + 0 <= ? AND NOT EXISTS ("
            f"SELECT 1 FROM jobs f{self._hint('jobs_one_in_flight_per_group')} "
            "WHERE f.group_key = j.group_key AND f.status = 'in_flight') "
            "ORDER BY j.run_at + 0 LIMIT 1",
            (now,),
        )
        [(beat,)] = self._read("SELECT max(heartbeat_at) FROM workers")
        [(dead,)] = self._read(
            f"SELECT count(*) FROM jobs{self._hint('jobs_failed_at')} "
            "WHERE status = 'failed' AND updated_at >= ?",
            (now - dead_letter_window,),
        )
        breaker = self._read("SELECT open FROM breaker WHERE name = 'global'")
        down = {
            r[0]: (r[1], r[2])
            for r in self._read("SELECT name, fault, detail FROM provider_circuits WHERE open = 1")
        }
        batches: dict[int, dict[str, int]] = {}
        for batch_id, status, n in self._read(
            f"SELECT j.batch_id, j.status, count(*) FROM batches b{self._hint('batches_running')} "
            f"JOIN jobs j{self._hint('jobs_batch')} ON j.batch_id = b.id "
            "WHERE b.status = 'running' GROUP BY j.batch_id, j.status"
        ):
            batches.setdefault(int(batch_id), {})[status] = int(n)
        for (batch_id,) in self._read(
            f"SELECT id FROM batches{self._hint('batches_running')} WHERE status = 'running'"
        ):
            batches.setdefault(int(batch_id), {})
        failing = {
            r[0]: float(r[1])
            for r in self._read(
                "SELECT url, min(created_at) FROM webhook_deliveries"
                f"{self._hint('webhook_deliveries_due')} "
                "WHERE status = 'pending' AND attempts > 0 GROUP BY url"
            )
        }
        alerts = {
            r[0]: int(r[1])
            for r in self._read(
                f"SELECT rule, count(*) FROM alerts{self._hint('alerts_open')} "
                "WHERE resolved_at IS NULL GROUP BY rule"
            )
        }
        return Observation(
            now=now,
            jobs=jobs,
            oldest_due=None if oldest is None else float(oldest),
            oldest_free=float(free[0][0]) if free else None,
            last_heartbeat=None if beat is None else float(beat),
            dead_letters=int(dead),
            breaker_open=bool(breaker and breaker[0][0]),
            providers_down=down,
            batches=batches,
            failing_endpoints=failing,
            alerts_open=alerts,
        )

    def prune_workers(self, now: float) -> int:
        """Forget the rows of workers gone a day without releasing (killed)."""
        with self._write() as c:
            cur = c.execute("DELETE FROM workers WHERE heartbeat_at < ?", (now - WORKER_ROW_TTL,))
            return int(cur.rowcount)

    def raise_alert(
        self, rule: str, subject: str, message: str, detail: Mapping[str, Any], now: float
    ) -> Alert | None:
        """Open the alert unless one of ``rule`` and ``subject`` is open already; the
        ``alert.raised`` system webhook is queued in the same transaction. The alert, or
        None if it was open (raised by this process or another)."""
        doc = {"message": message, **detail}
        with self._write() as c:
            cur = c.execute(
                "INSERT INTO alerts (rule, subject, detail, raised_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (rule, subject, json.dumps(doc, default=str), now),
            )
            if cur.rowcount != 1:
                return None
            row = c.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE rule = ? AND subject = ? "
                "AND resolved_at IS NULL",
                (rule, subject),
            ).fetchone()
            alert = _alert(row)
            add_system_webhook(c, "alert.raised", _payload(alert), now)
        return alert

    def resolve_alert(self, alert_id: int, now: float) -> Alert | None:
        """Close an open alert and queue its ``alert.resolved`` webhook; None if it was
        resolved already (by this process or another)."""
        with self._write() as c:
            cur = c.execute(
                "UPDATE alerts SET resolved_at = ? WHERE id = ? AND resolved_at IS NULL",
                (now, alert_id),
            )
            if cur.rowcount != 1:
                return None
            row = c.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)
            ).fetchone()
            alert = _alert(row)
            add_system_webhook(c, "alert.resolved", _payload(alert), now)
        return alert

    def alerts(
        self, *, open_only: bool = False, limit: int = 100, before_id: int | None = None
    ) -> list[Alert]:
        """Open alerts (``open_only``), or every alert, newest first."""
        if open_only:
            rows = self._read(
                f"SELECT {ALERT_COLUMNS} FROM alerts{self._hint('alerts_open')} "
                "WHERE resolved_at IS NULL ORDER BY raised_at DESC, id DESC LIMIT ?",
                (limit,),
            )
        else:
            rows = self._read(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id < ? ORDER BY id DESC LIMIT ?",
                (before_id if before_id is not None else 2**62, limit),
            )
        return [_alert(r) for r in rows]


def _payload(alert: Alert) -> dict[str, Any]:
    return alert.to_dict()
