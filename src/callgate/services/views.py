"""What a person watching the gateway reads (the dashboard): the lines with work, the
jobs waiting, the activity of the last day, the batches and a batch's rate over time.

Every read is bounded by the work waiting or a recent window, not by the history. The
activity is remembered between refreshes, since a busy gateway starts thousands of
attempts a minute: the sends of a minute that is over are counted once (the first
overview after a start reads the day; later ones only the last two minutes), and the
attempts by outcome are read at most every ``OUTCOMES_TTL`` seconds."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from callgate.clock import Clock
from callgate.domain import Batch
from callgate.services.base import Service
from callgate.store.views import ViewsPart

#: the overview's window: sends per minute over the last day
DAY_MINUTES = 24 * 60
#: the attempts by outcome and kind: over the last 15 minutes, read again after this long
#: (each read looks at every attempt of the window: 180,000 at 200 calls/s)
OUTCOMES_WINDOW, OUTCOMES_TTL = 900.0, 30.0
#: a batch's rate is plotted in at most this many points
RATE_POINTS = 60


class ViewsService(Service[ViewsPart]):
    def __init__(self, store: ViewsPart, clock: Clock, changed: Callable[[], None]) -> None:
        super().__init__(store, clock, changed)
        self._lock = threading.Lock()
        self._minutes: dict[int, int] = {}  # sends of minutes that are over
        self._through: int | None = None  # every minute up to this one is in _minutes
        self._outcomes: tuple[float, list[tuple[str, str, int]]] | None = None

    def lines(self, *, number: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Each destination with work: ``number``, ``waiting`` (jobs queued or waiting
        out a retry), ``retrying``, ``next_retry`` (unix seconds), ``in_flight`` (the
        job, when one is); ``number`` filters by prefix."""
        return self._store.line_queues(number=number, limit=limit)

    def overview(self, *, minutes: int = DAY_MINUTES) -> dict[str, Any]:
        """Jobs not yet finished per status and kind, the oldest queued job's age
        (seconds), sends per minute over the last ``minutes`` (oldest first, the current
        minute last) and the attempts of the last 15 minutes per kind and outcome."""
        now = self._clock.now()
        oldest = self._store.oldest_queued_at()
        return {
            "now": now,
            "active": self._store.active_counts(),
            "oldest_queued_age": None if oldest is None else max(0.0, now - oldest),
            "sends_per_minute": self.sends_per_minute(now, minutes),
            "outcomes": self.outcomes(now),
        }

    def sends_per_minute(self, now: float, minutes: int) -> list[int]:
        """Attempts started in each of the last ``minutes`` minutes, the current last.
        A minute is counted once it is two minutes old (an attempt row is written just
        before its send); until then, on every call."""
        current = int(now) // 60
        first = current - minutes + 1
        with self._lock:
            through = self._through if self._through is not None else first - 1
        fresh = dict(self._store.sends_by_minute(max(first, through + 1) * 60))
        settled = current - 2
        with self._lock:
            for minute in range(max(first, through + 1), settled + 1):
                self._minutes[minute] = fresh.get(minute, 0)
            self._through = max(settled, self._through or settled)
            for minute in [m for m in self._minutes if m < first]:
                del self._minutes[minute]
            known = dict(self._minutes)
        return [known[m] if m in known else fresh.get(m, 0) for m in range(first, current + 1)]

    def outcomes(self, now: float) -> list[tuple[str, str, int]]:
        """(kind, outcome, attempts) of the last 15 minutes, read at most every
        ``OUTCOMES_TTL`` seconds."""
        with self._lock:
            cached = self._outcomes
        if cached is not None and 0 <= now - cached[0] < OUTCOMES_TTL:
            return cached[1]
        rows = self._store.outcomes_since(now - OUTCOMES_WINDOW)
        with self._lock:
            self._outcomes = (now, rows)
        return rows

    def batches(self, *, limit: int = 50, before_id: int | None = None) -> list[dict[str, Any]]:
        """Batches, newest first, with their jobs not yet finished (``active``)."""
        return self._store.list_batches(limit=limit, before_id=before_id)

    def batch_rate(self, batch: Batch) -> tuple[int, list[tuple[float, float]]]:
        """The rate a batch achieved over time: the step (seconds) and (seconds since its
        creation, calls per second) per step, up to now or its completion."""
        start = batch.created_at.timestamp()
        end = batch.completed_at.timestamp() if batch.completed_at else self._clock.now()
        step = max(1, int((end - start) / RATE_POINTS) + 1)
        sends = dict(self._store.batch_sends(batch.id, start, end, step))
        buckets = int((end - start) // step) + 1
        return step, [(i * step, sends.get(i, 0) / step) for i in range(buckets)]
