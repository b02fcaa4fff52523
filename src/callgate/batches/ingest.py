"""Accepting a batch file: read it as a stream, validate every row, queue the valid ones
chunk by chunk (never the whole file in memory), keep the report of the others.

``strict``: the file is read twice; the first pass only validates, and one invalid row
rejects the whole batch with nothing stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from callgate.batches.dedupe import Deduper
from callgate.batches.parse import RowError, detect_format, read_rows
from callgate.batches.rows import RowMapper, ValidRow, validate_rows
from callgate.domain import Batch, JobSpec
from callgate.exceptions import ValidationError
from callgate.store.base import Store

#: rows per insert transaction
CHUNK = 2000
#: the rejected rows a strict batch's error names (the count covers them all)
STRICT_REPORT = 100


class BatchRejected(ValidationError):
    """A strict batch has invalid rows; nothing was queued."""

    code = "batch_rejected"

    def __init__(self, errors: list[RowError], total: int) -> None:
        first = errors[0]
        super().__init__(
            f"{total} invalid row(s); the first, on line {first.line}: {first.message}",
            field=first.column,
        )
        self.errors = errors
        self.total = total


def ingest(
    store: Store,
    stream: IO[bytes],
    now: float,
    *,
    fmt: str | None = None,
    filename: str | None = None,
    mapper: RowMapper | None = None,
    name: str | None = None,
    rate: float | None = None,
    strict: bool = False,
    scope: str = "",
    chunk: int = CHUNK,
    block_suppressed: bool = True,
) -> Batch:
    """Store a batch from ``stream`` (seekable bytes) and return it.

    Raises :class:`ValidationError` for a file that cannot be a batch (no header, not
    JSON, no rows) and :class:`BatchRejected` for a strict batch with an invalid row;
    in both cases nothing is stored.
    """
    mapper = mapper or RowMapper()
    fmt = fmt or detect_format(stream, filename)
    if rate is not None and not rate > 0:
        raise ValidationError("rate must be above 0", field="rate")
    start = stream.tell()
    if strict:
        _check_strict(_items(stream, fmt, mapper))
        stream.seek(start)
    items = _items(stream, fmt, mapper)
    first = next(items, None)  # file-level problems are raised before the batch exists
    if first is None:
        raise ValidationError("the file has no rows", field="file", code="empty_batch")
    batch = store.create_batch(
        kind=mapper.kind, now=now, name=name, rate=rate, strict=strict, scope=scope
    )
    rows: list[tuple[int, JobSpec]] = []
    errors: list[RowError] = []
    for item in _chain(first, items):
        if isinstance(item, ValidRow):
            rows.append((item.line, item.spec))
        else:
            errors.append(item)
        if len(rows) + len(errors) >= chunk:
            store.add_batch_rows(
                batch.id, rows, errors, now, scope=scope, block_suppressed=block_suppressed
            )
            rows, errors = [], []
    if rows or errors:
        store.add_batch_rows(
            batch.id, rows, errors, now, scope=scope, block_suppressed=block_suppressed
        )
    store.finish_batch_ingest(batch.id, now)
    return store.get_batch(batch.id)


def _items(stream: IO[bytes], fmt: str, mapper: RowMapper) -> Iterator[ValidRow | RowError]:
    return validate_rows(read_rows(stream, fmt), mapper, Deduper())


def _chain(
    first: ValidRow | RowError, rest: Iterator[ValidRow | RowError]
) -> Iterator[ValidRow | RowError]:
    yield first
    yield from rest


def _check_strict(items: Iterator[ValidRow | RowError]) -> None:
    report: list[RowError] = []
    total = 0
    for item in items:
        if isinstance(item, RowError) and item.code != "duplicate":
            total += 1
            if len(report) < STRICT_REPORT:
                report.append(item)
    if total:
        raise BatchRejected(report, total)
