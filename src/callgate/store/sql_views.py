"""What a person watching the gateway reads (the dashboard): the lines with work, the
jobs waiting per status and kind, the sends per minute, the batches.

Each read is bounded by the work waiting or by a recent window, never by the history
of finished jobs: the lines come from the groups with work (``groups_ready``) and the
jobs in flight (``jobs_lease``), the counts from the active jobs (``jobs_active``), the
activity from the attempts of the window (``attempts_started``), a batch's progress
from its active jobs (``jobs_batch_active``). ``tests/integration/test_history.py``
holds this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from callgate.store.sql_batches import BATCH_COLUMNS, _batch
from callgate.store.sql_tx import SQLParts

ACTIVE_SQL = "('queued', 'in_flight', 'retrying', 'held', 'uncertain')"
WAITING_SQL = "('queued', 'retrying')"


def _in(values: Sequence[Any]) -> str:
    return "(" + ", ".join("?" for _ in values) + ")"


class SQLViews(SQLParts):
    INDEXED_BY = False

    def line_queues(self, *, number: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """The destinations with work (jobs waiting or one in flight), by number: how
        many wait, how many of them wait out a retry and the next retry's time, and the
        job in flight. ``number``: only numbers that start with it."""
        ready = " INDEXED BY groups_ready" if self.INDEXED_BY else ""
        flying = " INDEXED BY jobs_one_in_flight_per_group" if self.INDEXED_BY else ""
        like, params = "", []
        if number:
            like = " AND g.group_key LIKE ?"
            params = [number.replace("%", "").replace("_", "") + "%"]
        rows = self._read(
            f"SELECT g.group_key, g.pending FROM groups g{ready} "
            f"WHERE g.pending > 0 AND g.busy = 0{like} "
            "UNION ALL "
            # the jobs in flight first (CROSS JOIN: SQLite keeps that order), then their groups
            f"SELECT g.group_key, g.pending FROM jobs j{flying} CROSS JOIN groups g "
            f"WHERE g.group_key = j.group_key AND j.status = 'in_flight'{like.replace('g.', 'j.')} "
            "ORDER BY 1 LIMIT ?",
            [*params, *params, limit],
        )
        lines = {r[0]: {"number": r[0], "waiting": int(r[1]), "retrying": 0} for r in rows}
        if not lines:
            return []
        keys = list(lines)
        for r in self._read(
            "SELECT group_key, id, kind, attempt_no, worker_id, batch_id FROM jobs "
            f"WHERE status = 'in_flight' AND group_key IN {_in(keys)}",
            keys,
        ):
            lines[r[0]]["in_flight"] = {
                "id": int(r[1]),
                "kind": r[2],
                "attempt": int(r[3]),
                "worker": r[4],
                "batch_id": r[5],
            }
        for r in self._read(
            f"SELECT group_key, count(*), min(run_at) FROM jobs WHERE status IN {WAITING_SQL} "
            f"AND status = 'retrying' AND group_key IN {_in(keys)} GROUP BY group_key",
            keys,
        ):
            lines[r[0]] |= {"retrying": int(r[1]), "next_retry": float(r[2])}
        return list(lines.values())

    def active_counts(self) -> list[tuple[str, str, int]]:
        """(status, kind, jobs) for the jobs not yet finished."""
        rows = self._read(
            f"SELECT status, kind, count(*) FROM jobs WHERE status IN {ACTIVE_SQL} "
            "GROUP BY status, kind"
        )
        return [(r[0], r[1], int(r[2])) for r in rows]

    def oldest_queued_at(self) -> float | None:
        """When the oldest job still ``queued`` was submitted (None: nothing queued)."""
        rows = self._read(
            f"SELECT created_at FROM jobs WHERE status IN {ACTIVE_SQL} AND status = 'queued' "
            "ORDER BY id LIMIT 1"
        )
        return float(rows[0][0]) if rows else None

    def sends_by_minute(self, since: float) -> list[tuple[int, int]]:
        """(minute, attempts started in it) from ``since`` on; a minute is unix seconds
        // 60 (minutes without attempts are left out)."""
        rows = self._read(
            "SELECT CAST(started_at AS BIGINT) / 60, count(*) FROM attempts "
            "WHERE started_at >= ? GROUP BY 1",
            (since,),
        )
        return [(int(r[0]), int(r[1])) for r in rows]

    def outcomes_since(self, since: float) -> list[tuple[str, str, int]]:
        """(kind, outcome, attempts) of the attempts started since ``since``
        (outcome ``sending`` while one is under way)."""
        rows = self._read(
            "SELECT j.kind, coalesce(a.outcome, 'sending'), count(*) FROM attempts a "
            "JOIN jobs j ON j.id = a.job_id WHERE a.started_at >= ? "
            "GROUP BY 1, 2",
            (since,),
        )
        return [(r[0], r[1], int(r[2])) for r in rows]

    def list_batches(
        self, *, limit: int = 50, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Batches, newest first, each with its jobs not yet finished (``active``)."""
        rows = self._read(
            f"SELECT {BATCH_COLUMNS} FROM batches WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before_id if before_id is not None else 2**62, limit),
        )
        batches = [_batch(r).to_dict() | {"active": 0} for r in rows]
        ids = [b["id"] for b in batches]
        if ids:
            active = dict(
                self._read(
                    f"SELECT batch_id, count(*) FROM jobs WHERE batch_id IN {_in(ids)} "
                    f"AND status IN {ACTIVE_SQL} GROUP BY batch_id",
                    ids,
                )
            )
            for b in batches:
                b["active"] = int(active.get(b["id"], 0))
        return batches

    def batch_sends(
        self, batch_id: int, start: float, end: float, step: int
    ) -> list[tuple[int, int]]:
        """(bucket, attempts) of a batch's jobs started between ``start`` and ``end``, in
        buckets of ``step`` seconds from ``start`` (the attempts of that window, by
        ``attempts_started``, as the batch's achieved rate is read)."""
        rows = self._read(
            "SELECT (CAST(a.started_at AS BIGINT) - ?) / ?, count(*) FROM attempts a "
            "JOIN jobs j ON j.id = a.job_id WHERE a.started_at >= ? AND a.started_at <= ? "
            "AND j.batch_id = ? GROUP BY 1",
            (int(start), step, start, end, batch_id),
        )
        return sorted((int(r[0]), int(r[1])) for r in rows)


__all__ = ["SQLViews"]
