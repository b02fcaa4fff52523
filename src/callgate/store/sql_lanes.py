"""Lanes: how one claim shares the meter between jobs from the API and running batches.

Every group (destination) is looked for in one *lane*: ``0`` for jobs from the API, else
the id of the batch its head belongs to (kept by the triggers on ``jobs``, best effort;
lane ``0`` also holds groups to sort out, such as one just freed by a claim). A claim

1. takes the heads of the API's lane first, so an urgent job waits for no batch;
2. shares what the global meter allows beyond them among the running batches,
   round-robin (least recently served first), each within its own GCRA allowance
   (``batch_meters``); a batch that has fewer free groups than its share leaves the rest
   to the others;
3. gives each batch job a slot that is both the batch's and the global meter's: the
   earliest batch goes next, so batches at their own rates interleave in the global slots.

A group found in a lane whose job it no longer holds is moved to the lane of its oldest
due job (and one with nothing due is snoozed), the way snoozing already worked.
Mixed into :class:`~callgate.store.sql.SQLStore`; portable SQL.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, overload

from callgate.domain import Job, usable_rate
from callgate.store.base import Claimed, MeterPolicy, MeterState
from callgate.store.sql_tx import Conn, SQLParts

CLAIMABLE_SQL = "('queued', 'retrying')"


@functools.lru_cache(maxsize=8)
def heads_sql(lane: int, indexed_by: bool = False) -> str:
    """The oldest due job of ``lane`` in each free, awake group of that lane, oldest
    groups first; whether a strict-order job waiting ahead of it blocks the group; and,
    where the lane has nothing due in the group, the lane of the group's oldest due job.

    Every lookup is one descent of an index made for it, whatever the history of
    finished jobs and whatever the planner's statistics say: a head of the API's lane is
    the group's first entry in ``jobs_api_heads`` (group_key, id; claimable jobs of no
    batch), a batch lane's its first in ``jobs_claimable`` for (group_key, batch_id);
    ``id + 0`` keeps a planner from walking the primary key in id order through the
    finished jobs to find the group's oldest due job of any lane (it sorts the group's
    claimable entries instead). SQLite is told the indexes (``INDEXED BY``: left to
    itself its planner walked a lane's groups by ``wake_at`` and sorted them all)."""

    def hint(index: str) -> str:
        return f" INDEXED BY {index}" if indexed_by else ""

    if lane == 0:
        mine, index = "j.batch_id IS NULL", "jobs_api_heads"
    else:
        mine, index = "j.batch_id = :lane", "jobs_claimable"
    return f"""
SELECT gk, head,
       head IS NOT NULL AND EXISTS (
           SELECT 1 FROM jobs s{hint("jobs_strict")}
           WHERE s.group_key = gk AND s.strict_order = 1 AND s.status IN {CLAIMABLE_SQL}
             AND s.run_at > :now AND s.id < head),
       CASE WHEN head IS NULL THEN (
           SELECT coalesce(o.batch_id, 0) FROM jobs o{hint("jobs_claimable")}
           WHERE o.group_key = gk AND o.status IN {CLAIMABLE_SQL} AND o.run_at <= :now
           ORDER BY o.id + 0 LIMIT 1) END
FROM (
    SELECT g.group_key AS gk,
           (SELECT j.id FROM jobs j{hint(index)}
            WHERE j.group_key = g.group_key AND {mine} AND j.status IN {CLAIMABLE_SQL}
              AND j.run_at <= :now
            ORDER BY j.id LIMIT 1) AS head
    FROM groups g{hint("groups_ready")}
    WHERE g.lane = :lane AND g.pending > 0 AND g.busy = 0 AND g.wake_at <= :now
    ORDER BY g.seq
    LIMIT :scan OFFSET :skip
) heads
"""


SNOOZE_SQL = f"""
UPDATE groups SET wake_at = coalesce(
    (SELECT min(run_at) FROM jobs
     WHERE group_key = :gk AND status IN {CLAIMABLE_SQL} AND run_at > :now),
    :now + 1.0)
WHERE group_key = :gk
"""
RELANE_SQL = "UPDATE groups SET lane = :lane WHERE group_key = :gk"
LANE_SQL = (
    "SELECT b.id, b.rate, m.tat, m.rate, m.changed_at, m.served "
    "FROM batches b JOIN batch_meters m ON m.batch_id = b.id"
)
RUNNING_SQL = f"{LANE_SQL} WHERE b.status = 'running' ORDER BY m.served, b.id"
LANE_WAKE_SQL = "SELECT min(wake_at) FROM groups WHERE lane = ? AND pending > 0 AND busy = 0"


@overload
def current_rate(rate: float, lowered: float | None) -> float: ...
@overload
def current_rate(rate: float | None, lowered: float | None) -> float | None: ...
def current_rate(rate: float | None, lowered: float | None) -> float | None:
    """A batch's rate now: its own ``rate`` (None: it has none), or lower if the 429
    rule ``lowered`` it."""
    if rate is None or lowered is None:
        return rate
    return min(rate, lowered)


def lanes_of(rows: Sequence[Sequence[Any]]) -> list[Lane]:
    """Batches as claims see them, from rows of ``LANE_SQL``; one whose rate no meter can
    run at is left out (the sweep holds it: ``hold_unusable_batches``)."""
    return [
        Lane(int(r[0]), r[1], MeterState(float(r[2]), r[3], float(r[4])), int(r[5]))
        for r in rows
        if usable_rate(r[1])
    ]


def next_lane_slot(
    meter: MeterPolicy, policy: MeterPolicy, state: MeterState, lane: MeterState, now: float
) -> tuple[float, MeterState, MeterState]:
    """A batch's next slot that is the global meter's too (the later of the two), and
    both meters after it: (slot, global, batch)."""
    first, _ = policy.take_at(lane, now, -math.inf)
    slot, state = meter.take_at(state, now, first)
    _, lane = policy.take_at(lane, now, slot)
    return slot, state, lane


@dataclass(slots=True)
class Lane:
    """A running batch as a claim sees it."""

    batch_id: int
    rate: float | None  # its own rate (None: only the global meter)
    state: MeterState  # its GCRA row
    served: int  # its last round-robin turn

    @property
    def current_rate(self) -> float | None:
        """The rate it runs at now (lowered after repeated 429s)."""
        return current_rate(self.rate, self.state.rate)


class SQLLanes(SQLParts):
    """Mixed into :class:`~callgate.store.sql.SQLStore`."""

    INDEXED_BY = False

    def _lane_heads(self, c: Conn, now: float, want: int, lane: int, skip: int = 0) -> list[int]:
        """Ids of the oldest due job of ``lane`` in up to ``want`` free groups of the lane
        (after the first ``skip`` of them, found by this claim already)."""
        found: list[int] = []
        scan = max(2 * want, 32)
        sql = heads_sql(0 if lane == 0 else 1, self.INDEXED_BY)
        while want > 0:
            rows = c.execute(
                sql, {"now": now, "scan": scan, "skip": skip + len(found), "lane": lane}
            ).fetchall()
            snooze, relane = [], []
            for gk, head, blocked, other in rows:
                if head is not None and not blocked:
                    found.append(int(head))
                elif head is None and other is not None:
                    relane.append({"gk": gk, "lane": int(other)})
                else:  # nothing due in this group yet: skip it until something is
                    snooze.append({"gk": gk, "now": now})
            for params, statement in ((snooze, SNOOZE_SQL), (relane, RELANE_SQL)):
                if params:
                    c.executemany(statement, sorted(params, key=lambda p: str(p["gk"])))
            if len(found) >= want or len(rows) < scan:
                break
        return found[:want]

    @staticmethod
    def _lanes(c: Conn) -> list[Lane]:
        """The running batches, least recently served first."""
        return lanes_of(c.execute(RUNNING_SQL).fetchall())

    def _batch_heads(
        self, c: Conn, now: float, room: int, lanes: list[Lane], meter: MeterPolicy
    ) -> dict[int, list[int]]:
        """Up to ``room`` heads from the running batches: shared round-robin, each batch
        within its own allowance; what one cannot use goes to the others."""
        cap = {
            lane.batch_id: meter.for_rate(lane.current_rate).allowance(lane.state, now, room)
            for lane in lanes
        }
        found: dict[int, list[int]] = {lane.batch_id: [] for lane in lanes}
        open_ = [lane.batch_id for lane in lanes if cap[lane.batch_id] > 0]
        while room > 0 and open_:
            share = _round_robin(room, [(b, cap[b] - len(found[b])) for b in open_])
            still = []
            for b in open_:
                if not share[b]:
                    continue
                ids = self._lane_heads(c, now, share[b], b, skip=len(found[b]))
                found[b].extend(ids)
                room -= len(ids)
                if len(ids) == share[b] and len(found[b]) < cap[b]:
                    still.append(b)  # it may have more
            open_ = still
        return found

    def _lane_slots(
        self,
        jobs: list[Job],
        lanes: list[Lane],
        now: float,
        meter: MeterPolicy,
        state: MeterState,
    ) -> tuple[list[Claimed], MeterState, dict[int, Lane]]:
        """Slots for a claim's batch jobs: each the later of its batch's next slot and the
        global meter's, the batch whose slot comes first going next (ties: the least
        recently served). Jobs whose slot would fall past the meters' horizon are left
        for a later claim. Returns the claimed, the global meter after them, and the
        batches served (with their new state and turn)."""
        by_id = {lane.batch_id: lane for lane in lanes}
        queues: dict[int, deque[Job]] = {}
        for job in sorted(jobs, key=lambda j: j.id):
            assert job.batch_id is not None
            queues.setdefault(job.batch_id, deque()).append(job)
        turn = max((lane.served for lane in lanes), default=0) + 1
        policies = {b: meter.for_rate(by_id[b].current_rate) for b in queues}
        served: dict[int, Lane] = {}
        out: list[Claimed] = []
        horizon = meter.horizon(now)
        while queues:
            b = min(
                queues,
                key=lambda b: (
                    policies[b].take_at(by_id[b].state, now, -math.inf)[0],
                    by_id[b].served,
                    b,
                ),
            )
            lane, policy = by_id[b], policies[b]
            slot, after, lane_after = next_lane_slot(meter, policy, state, lane.state, now)
            if slot > min(horizon, policy.horizon(now)):
                del queues[b]  # the rest of this batch waits for a later claim
                continue
            state = after
            lane = served[b] = by_id[b] = replace(lane, state=lane_after, served=turn)
            turn += 1
            out.append(Claimed(queues[b].popleft(), slot, lane.current_rate))
            if not queues[b]:
                del queues[b]
        return out, state, served

    def _reserve_lane_slots(
        self, c: Conn, now: float, meter: MeterPolicy, state: MeterState, n: int, batch_id: int
    ) -> tuple[list[float], MeterState]:
        """``n`` more slots of a batch's lane (each its batch's and the global meter's),
        for jobs whose own slot went by before they were ready."""
        rows = c.execute(f"{LANE_SQL} WHERE b.id = ?", (batch_id,)).fetchall()
        if not rows:
            return [], state
        if not (found := lanes_of(rows)):
            return [], state
        [lane] = found
        policy = meter.for_rate(lane.current_rate)
        slots, tat = [], lane.state
        for _ in range(n):
            slot, state, tat = next_lane_slot(meter, policy, state, tat, now)
            slots.append(slot)
        c.execute("UPDATE batch_meters SET tat = ? WHERE batch_id = ?", (tat.tat, batch_id))
        return slots, state

    @staticmethod
    def _save_lanes(c: Conn, served: dict[int, Lane]) -> None:
        c.executemany(
            "UPDATE batch_meters SET tat = ?, served = ? WHERE batch_id = ?",
            [(lane.state.tat, lane.served, b) for b, lane in sorted(served.items())],
        )

    def _lane_wakeup(
        self, now: float, meter: MeterPolicy, state: MeterState, lanes: Sequence[Lane]
    ) -> float | None:
        """The earliest a claim could find something: per lane, the later of its first
        group's wake-up and what its meters allow."""
        first = meter.next_allowed(state, now)
        found: list[float] = []
        allowed_at = [(0, first)] + [
            (lane.batch_id, meter.for_rate(lane.current_rate).next_allowed(lane.state, now))
            for lane in lanes
        ]
        for lane_id, allowed in allowed_at:
            allowed = max(first, allowed)
            rows = self._read(LANE_WAKE_SQL, (lane_id,))
            if rows and rows[0][0] is not None:
                found.append(max(float(rows[0][0]), allowed))
        return min(found) if found else None


def _round_robin(n: int, caps: list[tuple[int, int]]) -> dict[int, int]:
    """Deal ``n`` places one at a time to the keys in order, each up to its cap."""
    share = {k: 0 for k, _ in caps}
    left = [(k, cap) for k, cap in caps if cap > 0]
    while n > 0 and left:
        for k, _ in left:
            if n == 0:
                break
            share[k] += 1
            n -= 1
        left = [(k, cap) for k, cap in left if share[k] < cap]
    return share
