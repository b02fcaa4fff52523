"""Reading the simulator's call log: the tests' independent witness of what was sent."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any


def read_log(path: Path) -> list[dict[str, Any]]:
    """One JSON object per provider call; a line still being appended does not count."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1] if line.strip()]


def overlaps(calls: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(number, job, job) for two calls to one number whose [started_at, ended_at] overlap."""
    by_number: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        by_number[call["to"]].append(call)
    found = []
    for number, mine in by_number.items():
        mine.sort(key=lambda c: c["started_at"])
        for a, b in itertools.pairwise(mine):
            if b["started_at"] < a["ended_at"]:
                found.append((number, a["job_id"], b["job_id"]))
    return found


def max_in_window(starts: list[float], window: float = 1.0) -> int:
    """The most calls starting in any half-open window [t, t + window)."""
    starts = sorted(starts)
    best, j = 0, 0
    for i, t in enumerate(starts):
        while starts[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def max_concurrent(calls: list[dict[str, Any]]) -> int:
    """The most calls under way at one instant (a call ending as another starts: not both)."""
    edges = sorted(
        [(c["started_at"], 1) for c in calls] + [(c["ended_at"], -1) for c in calls],
        key=lambda e: (e[0], e[1]),
    )
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best
