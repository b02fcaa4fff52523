"""Accepting a batch file: read it as a stream, validate every row, queue the valid ones
chunk by chunk (never the whole file in memory), keep the report of the others.

The file is read twice: a first pass finds every file-level problem (a limit, the
format) before anything is stored; ``strict`` also validates every row in it, and one
invalid row rejects the whole batch with nothing stored. A failure after the batch was
created (the database) cancels what was stored: a request that errors never leaves
half a batch running for a retried request to repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO

from callgate.batches.dedupe import Deduper
from callgate.batches.parse import RowError, detect_format, read_rows
from callgate.batches.rows import RowMapper, ValidRow, validate_rows
from callgate.domain import Batch, JobSpec, validate_label, validate_rate
from callgate.exceptions import ValidationError
from callgate.store.parts import BatchesPart

log = logging.getLogger("callgate.batches")
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
    store: BatchesPart,
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
    rate = None if rate is None else validate_rate(rate)
    name = batch_name(name)
    start = stream.tell()
    if strict:
        _check_strict(_items(stream, fmt, mapper))
    else:  # file-level problems (limits, format) all come out before anything is stored
        for _ in read_rows(stream, fmt):
            pass
    stream.seek(start)
    items = _items(stream, fmt, mapper)
    first = next(items, None)
    if first is None:
        raise ValidationError("the file has no rows", field="file", code="empty_batch")
    batch = store.create_batch(
        kind=mapper.kind, now=now, name=name, rate=rate, strict=strict, scope=scope
    )
    try:
        _store_rows(store, batch.id, _chain(first, items), now, scope, chunk, block_suppressed)
    except BaseException:
        _abandon(store, batch.id, now)
        raise
    store.finish_batch_ingest(batch.id, now)
    return store.get_batch(batch.id)


def batch_name(name: str | None) -> str | None:
    """A batch's name: None, or a label (1-200 characters, no control characters)."""
    return None if name is None else validate_label(name)


def _abandon(store: BatchesPart, batch_id: int, now: float) -> None:
    """The request failed after the batch was created (the database, a bug): cancel what
    was stored, so that a client retrying the request does not get the rows twice."""
    try:
        store.cancel_batch(batch_id, now)
        store.finish_batch_ingest(batch_id, now)
    except Exception as exc:  # the original error is the one to report
        log.error("batch %s: could not cancel the rows of a failed upload: %r", batch_id, exc)


def _store_rows(
    store: BatchesPart,
    batch_id: int,
    items: Iterator[ValidRow | RowError],
    now: float,
    scope: str,
    chunk: int,
    block_suppressed: bool,
) -> None:
    rows: list[tuple[int, JobSpec]] = []
    errors: list[RowError] = []
    for item in items:
        if isinstance(item, ValidRow):
            rows.append((item.line, item.spec))
        else:
            errors.append(item)
        if len(rows) + len(errors) >= chunk:
            store.add_batch_rows(
                batch_id, rows, errors, now, scope=scope, block_suppressed=block_suppressed
            )
            rows, errors = [], []
    if rows or errors:
        store.add_batch_rows(
            batch_id, rows, errors, now, scope=scope, block_suppressed=block_suppressed
        )


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
