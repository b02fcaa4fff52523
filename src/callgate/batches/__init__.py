"""Batches: streaming CSV/JSON ingestion, row validation and reports, result exports.

:func:`read_rows` turns a file into :class:`RawRow`/:class:`RowError` items one by one;
:class:`RowMapper` turns a raw row into a :class:`~callgate.domain.JobSpec` (or a
:class:`RowError` naming the column); :class:`Deduper` spots repeated rows; the
:mod:`~callgate.batches.export` writers stream error reports and results.
"""

from __future__ import annotations

from callgate.batches.dedupe import Deduper
from callgate.batches.export import (
    ERROR_COLUMNS,
    RESULT_COLUMNS,
    csv_chunks,
    jsonl_chunks,
)
from callgate.batches.ingest import BatchRejected, batch_name, ingest
from callgate.batches.parse import FORMATS, RawRow, RowError, detect_format, read_rows
from callgate.batches.rows import API_KINDS, TWILIO_ALIASES, RowMapper, ValidRow, validate_rows

__all__ = [
    "API_KINDS",
    "ERROR_COLUMNS",
    "FORMATS",
    "RESULT_COLUMNS",
    "TWILIO_ALIASES",
    "BatchRejected",
    "Deduper",
    "RawRow",
    "RowError",
    "RowMapper",
    "ValidRow",
    "batch_name",
    "csv_chunks",
    "detect_format",
    "ingest",
    "jsonl_chunks",
    "read_rows",
    "validate_rows",
]
