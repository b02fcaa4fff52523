"""A batch after it was submitted: its progress, steering it, and its reports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from callgate.domain import Batch
from callgate.services.base import Service
from callgate.store.parts import BatchesPart

#: rows per page of a batch's reports
PAGE = 1000


class BatchesService(Service[BatchesPart]):
    def get(self, batch_id: int) -> Batch:
        """The batch, with its counts and rates now (NotFound: no such batch)."""
        return self._store.get_batch(batch_id, self._clock.now())

    def exists(self, batch_id: int) -> None:
        """NotFound unless the batch exists (cheaper than :meth:`get`)."""
        self._store.get_batch(batch_id)

    def pause(self, batch_id: int) -> Batch:
        batch = self._store.pause_batch(batch_id, self._clock.now())
        self._changed()  # its groups go back to the API's lane
        return batch

    def resume(self, batch_id: int) -> Batch:
        batch = self._store.resume_batch(batch_id, self._clock.now())
        self._changed()
        return batch

    def cancel(self, batch_id: int) -> Batch:
        batch = self._store.cancel_batch(batch_id, self._clock.now())
        self._changed()
        return batch

    def errors(self, batch_id: int, *, after_line: int = 0, limit: int = PAGE) -> list[Any]:
        """Rows that were not queued (invalid or duplicate), after line ``after_line``."""
        return self._store.batch_errors(batch_id, after_line=after_line, limit=limit)

    def results(
        self, batch_id: int, *, after_line: int = 0, limit: int = PAGE
    ) -> list[dict[str, Any]]:
        """One row per input row (its job's outcome), after line ``after_line``."""
        return self._store.batch_results(batch_id, after_line=after_line, limit=limit)

    def all_errors(self, batch_id: int) -> Iterator[dict[str, Any]]:
        """Every error row, as dicts, fetched a page at a time."""
        return _pages(lambda after: [e.to_dict() for e in self.errors(batch_id, after_line=after)])

    def all_results(self, batch_id: int) -> Iterator[dict[str, Any]]:
        """Every result row, fetched a page at a time."""
        return _pages(lambda after: self.results(batch_id, after_line=after))


def _pages(fetch: Any) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        page = fetch(after)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1]["line"]
