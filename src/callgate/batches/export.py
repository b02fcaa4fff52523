"""Streaming writers for batch reports: the error report and the results, as CSV or
JSON Lines, one chunk of text per row (for a streaming HTTP response or a file)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

#: the columns of ``GET /v1/batches/{id}/errors?format=csv``
ERROR_COLUMNS = ("line", "column", "code", "message", "duplicate_of")
#: the columns of a batch's results: one row per input row
RESULT_COLUMNS = (
    "line",
    "job_id",
    "status",
    "provider_sid",
    "error_code",
    "error_message",
    "attempts",
)


def csv_chunks(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str] = RESULT_COLUMNS
) -> Iterator[str]:
    """The header, then one CSV line per row (missing values are empty cells)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    yield _drain(buffer)
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
        yield _drain(buffer)


def jsonl_chunks(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str] = RESULT_COLUMNS
) -> Iterator[str]:
    """One JSON object per line, with exactly ``columns`` as keys."""
    for row in rows:
        yield json.dumps({k: row.get(k) for k in columns}, separators=(",", ":")) + "\n"


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
