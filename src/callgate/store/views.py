"""The store's part for a person watching the gateway (the dashboard's reads): see
:mod:`callgate.store.sql_views`."""

from __future__ import annotations

from typing import Any, Protocol


class ViewsPart(Protocol):
    def line_queues(self, *, number: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Destinations with work, by number: ``number``, ``waiting``, ``retrying``,
        ``next_retry`` (when there is one) and ``in_flight`` (the job, when there is one)."""
        ...

    def active_counts(self) -> list[tuple[str, str, int]]:
        """(status, kind, jobs) for the jobs not yet finished."""
        ...

    def oldest_queued_at(self) -> float | None: ...

    def sends_by_minute(self, since: float) -> list[tuple[int, int]]:
        """(minute: unix seconds // 60, attempts started in it) from ``since`` on."""
        ...

    def outcomes_since(self, since: float) -> list[tuple[str, str, int]]:
        """(kind, outcome, attempts) of the attempts started since ``since``."""
        ...

    def list_batches(
        self, *, limit: int = 50, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Batches, newest first, as dicts with ``active`` (jobs not yet finished)."""
        ...

    def batch_sends(
        self, batch_id: int, start: float, end: float, step: int
    ) -> list[tuple[int, int]]:
        """(bucket, attempts) of a batch's jobs started from ``start`` to ``end``, per
        ``step`` seconds from ``start``."""
        ...
