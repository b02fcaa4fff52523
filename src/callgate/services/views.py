"""What a person watching the gateway reads (the dashboard): the lines with work, the
jobs waiting, the activity of the last day, the batches and a batch's rate over time.
Every read is bounded by the work waiting or a recent window, not by the history."""

from __future__ import annotations

from typing import Any

from callgate.domain import Batch
from callgate.services.base import Service
from callgate.store.views import ViewsPart

#: the overview's window: sends per minute over the last day
DAY_MINUTES = 24 * 60
#: a batch's rate is plotted in at most this many points
RATE_POINTS = 60


class ViewsService(Service[ViewsPart]):
    def lines(self, *, number: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Each destination with work: ``number``, ``waiting`` (jobs queued or waiting
        out a retry), ``retrying``, ``next_retry`` (unix seconds), ``in_flight`` (the
        job, when one is); ``number`` filters by prefix."""
        return self._store.line_queues(number=number, limit=limit)

    def overview(self, *, minutes: int = DAY_MINUTES) -> dict[str, Any]:
        """Jobs not yet finished per status and kind, the oldest queued job's age
        (seconds), sends per minute over the last ``minutes`` (oldest first) and the
        attempts of that window per kind and outcome."""
        now = self._clock.now()
        oldest = self._store.oldest_queued_at()
        return {
            "now": now,
            "active": self._store.active_counts(),
            "oldest_queued_age": None if oldest is None else max(0.0, now - oldest),
            "sends_per_minute": self._store.sends_per_minute(now, minutes),
            "outcomes": self._store.outcomes_since(now - 60 * minutes),
        }

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
