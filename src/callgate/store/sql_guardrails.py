"""The guardrails' tables in portable SQL: the stored allowlist, the suppression list,
the anomaly breaker (with its history), the counts the caps and the breaker read, and
the release of held jobs. Shared by both backends (see :mod:`callgate.store.sql`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from callgate.domain import Decision, Status, from_ts, iso
from callgate.store.base import AuditRow, NumberFacts, SendCounts, chunks
from callgate.store.sql_outbox import add_system_webhook
from callgate.store.sql_tx import SQLParts, apply

#: the held reasons that release themselves when ``run_at`` comes (quiet hours, caps)
RELEASABLE_SQL = "('quiet_hours', 'over_cap')"
#: a suppression of every kind
ALL_KINDS = "*"
#: jobs to a number that reached the provider within a cap's window (see number_facts)
REACHED_SQL = """
SELECT coalesce(sum(CASE WHEN j.reached_at > :since THEN 1 ELSE 0 END), 0),
       min(CASE WHEN j.reached_at > :since THEN j.reached_at END),
       coalesce(sum(CASE WHEN j.reached_at > :same AND j.payload = own.payload
                         THEN 1 ELSE 0 END), 0),
       min(CASE WHEN j.reached_at > :same AND j.payload = own.payload THEN j.reached_at END)
FROM jobs j LEFT JOIN jobs own ON own.id = :job
WHERE j.to_number = :number AND j.kind = :kind AND j.reached_at > :low AND j.id <> :job
"""


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


class SQLGuardrails(SQLParts):
    """Mixed into :class:`~callgate.store.sql.SQLStore`."""

    # -- the allowlist ------------------------------------------------------------------

    def allowlist_add(self, entry: str, now: float, note: str | None = None) -> bool:
        """Add a number or pattern; False if it was there already."""
        with self._write() as c:
            cur = c.execute(
                "INSERT INTO allowlist (number, note, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (entry, note, now),
            )
            return int(cur.rowcount) == 1

    def allowlist_remove(self, entry: str) -> bool:
        with self._write() as c:
            return int(c.execute("DELETE FROM allowlist WHERE number = ?", (entry,)).rowcount) > 0

    def allowlist(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT number, note, created_at FROM allowlist ORDER BY number")
        return [{"number": r[0], "note": r[1], "created_at": iso(from_ts(r[2]))} for r in rows]

    # -- suppressions -------------------------------------------------------------------

    def suppress(
        self,
        number: str,
        kind: str | None,
        reason: str,
        now: float,
        *,
        source: str = "manual",
        detail: str | None = None,
    ) -> bool:
        """Suppress ``number`` for ``kind`` (``None``: every kind); False if it was."""
        with self._write() as c:
            cur = c.execute(
                "INSERT INTO suppressions (number, kind, reason, source, detail, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (number, kind or ALL_KINDS, reason, source, detail, now),
            )
            return int(cur.rowcount) == 1

    def unsuppress(self, number: str, kind: str | None = None) -> int:
        """Lift the suppression of ``kind`` (``None``: every suppression of the number)."""
        with self._write() as c:
            if kind is None:
                cur = c.execute("DELETE FROM suppressions WHERE number = ?", (number,))
            else:
                cur = c.execute(
                    "DELETE FROM suppressions WHERE number = ? AND kind = ?", (number, kind)
                )
            return int(cur.rowcount)

    def inbound_sms(
        self, number: str, action: str | None, event: Mapping[str, Any], now: float
    ) -> None:
        with self._write() as c:
            if action == "opt_out":
                c.execute(
                    "INSERT INTO suppressions (number, kind, reason, source, detail, created_at) "
                    "VALUES (?, 'sms', 'unsubscribed', 'keyword', ?, ?) ON CONFLICT DO NOTHING",
                    (number, f"replied {event.get('keyword')}", now),
                )
            elif action == "opt_in":
                c.execute(
                    "DELETE FROM suppressions WHERE number = ? AND kind = 'sms' "
                    "AND reason = 'unsubscribed'",
                    (number,),
                )
            add_system_webhook(c, "message.received", event, now)

    def suppressions(self, number: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT number, kind, reason, source, detail, created_at FROM suppressions"
        params: tuple[Any, ...] = ()
        if number is not None:
            sql, params = sql + " WHERE number = ?", (number,)
        rows = self._read(sql + " ORDER BY number, kind", params)
        return [
            {
                "number": r[0],
                "kind": None if r[1] == ALL_KINDS else r[1],
                "reason": r[2],
                "source": r[3],
                "detail": r[4],
                "created_at": iso(from_ts(r[5])),
            }
            for r in rows
        ]

    def suppressed(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Of the (number, kind) pairs, the suppressed ones, each with the reason
        :meth:`number_facts` gives (one read for many numbers: a submit's group)."""
        numbers = sorted({number for number, _ in pairs})
        rows: list[Any] = []
        for part in chunks(numbers):
            rows += self._read(
                "SELECT number, kind, reason, detail FROM suppressions "
                f"WHERE number IN ({','.join('?' * len(part))}) ORDER BY number, kind",
                part,
            )
        listed: dict[str, list[tuple[str, str]]] = {}  # number -> (kind, why), in order
        for number, kind, reason, detail in rows:
            listed.setdefault(number, []).append(
                (kind, f"{reason}: {detail}" if detail else reason)
            )
        found: dict[tuple[str, str], str] = {}
        for number, kind in pairs:  # the first in the database's order, as number_facts
            why = next((w for k, w in listed.get(number, ()) if k in (kind, ALL_KINDS)), None)
            if why is not None:
                found[(number, kind)] = why
        return found

    # -- facts for one job ----------------------------------------------------------------

    def number_facts(
        self,
        number: str,
        kind: str,
        since: float | None,
        *,
        job_id: int | None = None,
        same_since: float | None = None,
    ) -> NumberFacts:
        """The stored allowlist, the number's suppression for ``kind``, and for the caps
        the jobs of ``kind`` to the number other than ``job_id`` that reached the
        provider after ``since``, and those of them after ``same_since`` with the very
        content of ``job_id``. A job counts once, from its first counted attempt (a
        retry is not a new message); a window is half-open, so a job held until the
        oldest counted one leaves the window is under the cap then. The caps' reads walk
        ``jobs_reached`` within the window only, however long the number's history."""
        allow = tuple(r[0] for r in self._read("SELECT number FROM allowlist"))
        sup = self._read(
            "SELECT reason, detail FROM suppressions WHERE number = ? AND kind IN (?, ?) "
            "ORDER BY kind LIMIT 1",
            (number, kind, ALL_KINDS),
        )
        why = None
        if sup:
            why = sup[0][0] if not sup[0][1] else f"{sup[0][0]}: {sup[0][1]}"
        counts = self.cap_counts(number, kind, since, job_id=job_id, same_since=same_since)
        return NumberFacts(allow, bool(sup), why, *counts)

    def cap_counts(
        self,
        number: str,
        kind: str,
        since: float | None,
        *,
        job_id: int | None = None,
        same_since: float | None = None,
    ) -> tuple[int, float | None, int, float | None]:
        """The caps' part of :meth:`number_facts`: (sent, oldest, same, same_oldest)."""
        if since is None and (same_since is None or job_id is None):
            return 0, None, 0, None
        far = 1e300  # a window that holds nothing
        kind_since = since if since is not None else far
        same = same_since if same_since is not None and job_id is not None else far
        params = {
            "number": number,
            "kind": kind,
            "job": job_id if job_id is not None else -1,
            "since": kind_since,
            "same": same,
            "low": min(kind_since, same),
        }
        row = self._read(REACHED_SQL, params)[0]
        return int(row[0] or 0), _float(row[1]), int(row[2] or 0), _float(row[3])

    # -- holding, refusing, releasing ----------------------------------------------------

    def refuse(self, job_id: int, decision: Decision, now: float) -> bool:
        """Move a queued job (just submitted) to ``decision`` (blocked); False if it is
        not queued any more."""
        with self._write() as c:
            row = c.execute(
                f"SELECT status FROM jobs WHERE id = ?{self._locking()}", (job_id,)
            ).fetchone()
            if row is None or row[0] != Status.QUEUED:
                return False
            apply(c, job_id, decision, now)
            return True

    def release_held(self, now: float) -> int:
        """Held jobs whose hold (quiet hours, a cap) has run out go back to the queue."""
        with self._write() as c:
            rows = c.execute(
                f"SELECT id FROM jobs WHERE status = 'held' AND reason IN {RELEASABLE_SQL} "
                f"AND run_at <= ? ORDER BY group_key{self._locking(skip=True)}",
                (now,),
            ).fetchall()
            for (job_id,) in rows:
                apply(
                    c,
                    job_id,
                    Decision(Status.QUEUED, "released", "the hold ended; queued again"),
                    now,
                )
            if rows:
                self._notify(c)
        return len(rows)

    # -- the breaker --------------------------------------------------------------------

    def send_counts(self, now: float, minutes: int) -> SendCounts:
        """Attempts started in the last minute (all, and those not of a batch), those not
        of a batch in the ``minutes`` before it, and when the first attempt started."""
        last = now - 60
        rows = self._read(
            "SELECT coalesce(sum(CASE WHEN a.started_at > ? THEN 1 ELSE 0 END), 0), "
            "coalesce(sum(CASE WHEN a.started_at > ? AND j.batch_id IS NULL "
            "THEN 1 ELSE 0 END), 0), "
            "coalesce(sum(CASE WHEN a.started_at <= ? AND j.batch_id IS NULL "
            "THEN 1 ELSE 0 END), 0) "
            "FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE a.started_at > ?",
            (last, last, last, last - 60 * minutes),
        )
        first = self._read("SELECT min(started_at) FROM attempts")
        return SendCounts(int(rows[0][0]), int(rows[0][1]), int(rows[0][2]), _float(first[0][0]))

    def breaker_state(
        self,
    ) -> tuple[bool, str | None, str | None, float | None, str | None, str | None]:
        """(open, reason, detail, changed_at, changed_by, rule)."""
        rows = self._read(
            "SELECT open, reason, detail, changed_at, changed_by, rule FROM breaker "
            "WHERE name = 'global'"
        )
        if not rows:
            return (False, None, None, None, None, None)
        r = rows[0]
        return (bool(r[0]), r[1], r[2], r[3], r[4], r[5])

    def set_breaker(
        self,
        open_: bool,
        now: float,
        *,
        reason: str,
        detail: str | None,
        actor: str,
        rule: str | None = None,
    ) -> bool:
        """Trip (``open_``) or reset the breaker and log it; False if it already was.
        ``rule``: which rule tripped it (see :class:`~callgate.engine.guardrails.
        BreakerPolicy`; ``manual`` for the kill switch)."""
        with self._write() as c:
            c.execute(
                "INSERT INTO breaker (name, open) VALUES ('global', 0) ON CONFLICT DO NOTHING"
            )
            row = c.execute(
                f"SELECT open FROM breaker WHERE name = 'global'{self._locking()}"
            ).fetchone()
            if bool(row[0]) == open_:
                return False
            c.execute(
                "UPDATE breaker SET open = ?, reason = ?, detail = ?, changed_at = ?, "
                "changed_by = ?, rule = ? WHERE name = 'global'",
                (int(open_), reason, detail, now, actor, rule),
            )
            c.execute(
                "INSERT INTO breaker_log (action, reason, detail, actor, at, rule) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                ("tripped" if open_ else "reset", reason, detail, actor, now, rule),
            )
            if open_:  # the webhook, in the same transaction as the trip
                data = {"reason": reason, "rule": rule, "detail": detail, "by": actor}
                add_system_webhook(c, "breaker.tripped", data | {"at": iso(from_ts(now))}, now)
            if not open_:
                self._notify(c)
            return True

    def breaker_log(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT action, reason, detail, actor, at, rule FROM breaker_log "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        keys = ("action", "reason", "detail", "by", "at", "rule")
        out = [dict(zip(keys, r, strict=True)) for r in rows]
        for entry in out:
            entry["at"] = iso(from_ts(entry["at"]))
        return out

    # -- the audit log --------------------------------------------------------------------

    def add_audit(
        self, job_id: int, attempt: int | None, rows: Sequence[AuditRow], now: float
    ) -> None:
        """File provider exchanges (already redacted) under a job's attempt."""
        if not rows:
            return
        with self._write() as c:
            c.executemany(
                "INSERT INTO audit_log (job_id, attempt, at, method, url, status, request, "
                "response, duration, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(job_id, attempt, now, *row) for row in rows],
            )

    def audit(
        self, job_id: int | None = None, *, since: float | None = None, after_id: int = 0,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Audit rows, oldest first: one job's, or every job's since ``since`` (export)."""
        where: list[str] = ["id > ?"]
        params: list[Any] = [after_id]
        if job_id is not None:
            where.append("job_id = ?")
            params.append(job_id)
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        rows = self._read(
            "SELECT id, job_id, attempt, at, method, url, status, request, response, duration, "
            f"error FROM audit_log WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            [*params, limit],
        )
        keys = ("id", "job_id", "attempt", "at", "method", "url", "status", "request",
                "response", "duration", "error")  # fmt: skip
        out = [dict(zip(keys, r, strict=True)) for r in rows]
        for row in out:
            row["at"] = iso(from_ts(row["at"]))
        return out

    def prune_audit(self, before: float) -> int:
        """Delete audit rows older than ``before`` (the retention setting)."""
        with self._write() as c:
            return int(c.execute("DELETE FROM audit_log WHERE at < ?", (before,)).rowcount)
