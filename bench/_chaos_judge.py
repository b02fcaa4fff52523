"""bench/chaos.py's verdicts, from what the other processes left behind: the jobs table
(nothing lost, every job explainable), the simulator's call log (nothing sent twice,
never two calls to one number at once, throughput per second) and the claim events
(claim latency, in a histogram of fixed size).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import psycopg

TERMINAL = {"delivered", "failed", "canceled", "expired", "blocked"}
#: waiting where a person (or the reconciler) can see it and why
VISIBLE = {"held", "uncertain"}


class Histogram:
    """Latencies in log-spaced buckets (24 a decade, 10 µs to 1,000 s): memory does not
    grow with the number of jobs; a percentile is its bucket's upper edge (≤ 10 % high)."""

    EDGES: ClassVar[list[float]] = [10 ** (k / 24) * 1e-5 for k in range(24 * 8 + 1)]

    def __init__(self) -> None:
        self.counts = [0] * (len(self.EDGES) + 1)
        self.n = 0

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.EDGES, seconds)] += 1
        self.n += 1

    def percentile(self, p: float) -> float | None:
        if not self.n:
            return None
        rank = math.ceil(self.n * p / 100)
        for i, running in enumerate(itertools.accumulate(self.counts)):
            if running >= rank:
                return self.EDGES[min(i, len(self.EDGES) - 1)]
        return self.EDGES[-1]

    def summary_ms(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for p in (50, 95, 99):
            value = self.percentile(p)
            out[f"p{p}"] = None if value is None else round(value * 1000, 2)
        return out


def read_calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    with log.open() as f:
        return [json.loads(line) for line in f if line.endswith("\n") and line.strip()]


def overlaps(calls: Iterable[dict[str, Any]]) -> int:
    by_number: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        by_number[call["to"]].append(call)
    found = 0
    for mine in by_number.values():
        mine.sort(key=lambda c: c["started_at"])
        found += sum(b["started_at"] < a["ended_at"] for a, b in itertools.pairwise(mine))
    return found


def judge_jobs(conn: psycopg.Connection[Any], accepted: set[int]) -> dict[str, Any]:
    """Lost jobs (accepted, then missing or still active after the drain) and the
    explanation of every job that did not end delivered."""
    rows = conn.execute("SELECT id, status, reason FROM jobs").fetchall()
    status = {int(r[0]): (r[1], r[2]) for r in rows}
    lost = [i for i in accepted if i not in status or status[i][0] not in TERMINAL | VISIBLE]
    unexplained = [i for i, (s, why) in status.items() if s != "delivered" and not why]
    reasons = Counter(f"{s}:{why}" for s, why in status.values() if s != "delivered")
    held = conn.execute(
        "SELECT id, reason, detail FROM jobs WHERE status = 'held' ORDER BY id LIMIT 10"
    ).fetchall()
    return {
        "accepted": len(accepted),
        "jobs_lost": len(lost),
        "lost_ids": sorted(lost)[:20],
        "statuses": dict(Counter(s for s, _ in status.values())),
        "not_delivered": dict(reasons),
        "unexplained": len(unexplained),
        "held": [{"id": r[0], "reason": r[1], "detail": r[2]} for r in held],
    }


def double_sends(conn: psycopg.Connection[Any], calls: list[dict[str, Any]]) -> dict[str, int]:
    """Jobs the provider delivered more than once. A call the log names no job for (the
    HTTP simulator cannot know it) is the job's whose attempt recorded its reference; a
    call no attempt recorded (its worker died before the answer) is explained by a job
    to that number held or uncertain without a delivery of its own; any other is a
    second send of some job to that number."""
    ref_job = {
        r[0]: int(r[1])
        for r in conn.execute(
            "SELECT provider_ref, job_id FROM attempts WHERE provider_ref IS NOT NULL"
        )
    }
    per_job: Counter[int] = Counter()
    orphans: Counter[str] = Counter()
    for call in calls:
        if call["outcome"] != "delivered":
            continue
        job = call.get("job_id")
        job = int(job) if job is not None else ref_job.get(call.get("ref") or "")
        if job is None:
            orphans[call["to"]] += 1
        else:
            per_job[job] += 1
    twice = sum(1 for n in per_job.values() if n > 1)
    in_doubt: Counter[str] = Counter()
    for job_id, to in conn.execute(
        "SELECT id, to_number FROM jobs WHERE status IN ('held', 'uncertain')"
    ):
        if not per_job[int(job_id)]:
            in_doubt[to] += 1
    unexplained = sum(max(0, n - in_doubt[to]) for to, n in orphans.items())
    return {
        "double_sends": twice + unexplained,
        "calls_without_attempt": sum(orphans.values()),
    }


def claim_latency(conn: psycopg.Connection[Any], since: float, until: float) -> dict[str, Any]:
    """Submit → claimed (the job's first ``job.in_flight`` event) of the jobs submitted
    in [since, until), streamed through a server-side cursor into a Histogram."""
    hist = Histogram()
    with conn.transaction(), conn.cursor(name="chaos_latency") as cur:
        cur.itersize = 5000
        cur.execute(
            "SELECT min(e.created_at) - j.created_at FROM jobs j JOIN events e "
            "ON e.job_id = j.id AND e.type = 'job.in_flight' "
            "WHERE j.created_at >= %s AND j.created_at < %s GROUP BY j.id, j.created_at",
            (since, until),
        )
        for (seconds,) in cur:
            hist.add(max(0.0, float(seconds)))
    return {"jobs": hist.n, **hist.summary_ms()}


def per_second(calls: list[dict[str, Any]], start: float, end: float) -> list[int]:
    """Deliveries the provider saw in each second of [start, end)."""
    buckets = [0] * max(0, int(end - start))
    for call in calls:
        if call["outcome"] == "delivered":
            k = int(call["ended_at"] - start)
            if 0 <= k < len(buckets):
                buckets[k] += 1
    return buckets


def throughput(
    calls: list[dict[str, Any]], phases: dict[str, tuple[float, float]]
) -> dict[str, dict[str, float]]:
    out = {}
    for name, (start, end) in phases.items():
        buckets = per_second(calls, start, end)
        out[name] = {
            "jobs_per_s": round(sum(buckets) / max(end - start, 1e-9), 1),
            "median_per_s": float(statistics.median(buckets)) if buckets else 0.0,
        }
    return out


def recovery_s(
    calls: list[dict[str, Any]], fault_end: float, end: float, baseline: float
) -> float | None:
    """Seconds from the fault's end to the first whole second with deliveries at 90 % of
    the baseline median (None: not back by ``end``)."""
    for k, n in enumerate(per_second(calls, fault_end, end)):
        if n >= 0.9 * baseline:
            return float(k)
    return None
