"""Streaming readers for batch files: CSV with a header, JSON documents, JSON Lines.

Each reader yields one item per input row, never holding the file in memory: a
:class:`RawRow` with the row's fields, or a :class:`RowError` for a row (or the rest of
the file) that cannot be read. A CSV row's ``line`` is its physical line in the file
(the header is line 1); a JSON document's is the item's position in its array (1-based);
a JSON Lines row's is its line.

The readers keep :mod:`callgate.jsonlimits`' limits (nesting, finite numbers, line
length): a file beyond one is refused whole (a :class:`ValidationError` with the limit's
code), which :func:`~callgate.batches.ingest` finds out before it stores anything.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import ijson

from callgate import jsonlimits
from callgate.domain import BatchRowError
from callgate.exceptions import ValidationError

#: the formats :func:`read_rows` reads
FORMATS = ("csv", "json", "jsonl")
_SNIFF = 64 * 1024


@dataclass(frozen=True, slots=True)
class RawRow:
    """One input row as read: field name (as written in the file) to value."""

    line: int
    fields: dict[str, Any]
    #: a CSV file's header (it names the columns left empty on this row)
    header: tuple[str, ...] = ()


#: a row that is not queued, with where and why (``code`` is stable)
RowError = BatchRowError


def detect_format(stream: IO[bytes], filename: str | None = None) -> str:
    """Tell CSV, a JSON document and JSON Lines apart by name, else by the first bytes.

    ``stream`` must be seekable; it is left at its start.
    """
    name = (filename or "").lower()
    for ext, fmt in ((".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl")):
        if name.endswith(ext):
            return fmt
    head = stream.read(_SNIFF)
    stream.seek(0)
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if text.startswith("["):
        return "json"
    if not text.startswith("{"):
        return "csv"
    first = text.split("\n", 1)[0]
    try:
        doc = jsonlimits.loads(first, field="file")
    except ValidationError:
        return "jsonl"  # one line beyond the limits: its reader refuses it
    except ValueError:
        return "json"  # an object spread over lines: {"messages": [ ...
    return "json" if isinstance(doc, dict) and isinstance(doc.get("messages"), list) else "jsonl"


def read_rows(stream: IO[bytes], fmt: str) -> Iterator[RawRow | RowError]:
    """Yield the rows of ``stream`` (bytes, UTF-8, a BOM allowed) in format ``fmt``."""
    if fmt == "csv":
        return _read_csv(stream)
    if fmt == "jsonl":
        return _read_jsonl(stream)
    if fmt == "json":
        return _read_json(stream)
    raise ValidationError(
        f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}",
        field="format",
        code="invalid_format",
    )


def _text(stream: IO[bytes]) -> io.TextIOWrapper:
    return io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")


def _read_csv(stream: IO[bytes]) -> Iterator[RawRow | RowError]:
    text = _text(stream)
    try:
        yield from _read_csv_text(text)
    finally:
        text.detach()  # the caller's stream stays open (a strict batch reads it twice)


def _read_csv_text(text: io.TextIOWrapper) -> Iterator[RawRow | RowError]:
    reader = csv.reader(jsonlimits.lines(text), strict=True)
    try:
        header = next(reader, None)
    except (csv.Error, UnicodeDecodeError) as exc:
        yield RowError(1, None, "unreadable_file", f"the header cannot be read: {exc}")
        return
    if not header or not any(h.strip() for h in header):
        raise ValidationError(
            "the CSV file needs a header row naming its columns", field="file", code="no_header"
        )
    names = [h.strip() for h in header]
    seen: set[str] = set()
    for name in names:
        if not name or name in seen:
            raise ValidationError(
                f"the header has an empty or repeated column {name!r}",
                field=name or "file",
                code="invalid_header",
            )
        seen.add(name)
    yield from _csv_records(reader, names)


def _csv_records(reader: Any, names: list[str]) -> Iterator[RawRow | RowError]:
    last = reader.line_num
    header = tuple(names)
    while True:
        start = last + 1
        try:
            record = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            yield RowError(start, None, "unreadable_file", f"the file cannot be read on: {exc}")
            return
        if record is None:
            return
        last = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # a blank line
        if len(record) > len(names):
            yield RowError(
                start,
                None,
                "extra_fields",
                f"the row has {len(record)} fields but the header names {len(names)}",
            )
            continue
        fields = {n: v for n, v in zip(names, record, strict=False) if v.strip() != ""}
        yield RawRow(start, fields, header)


def _read_jsonl(stream: IO[bytes]) -> Iterator[RawRow | RowError]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    for number, raw in enumerate(jsonlimits.lines(stream), start=1):
        try:
            line = decoder.decode(raw)
        except UnicodeDecodeError as exc:
            yield RowError(number, None, "unreadable_file", f"not UTF-8: {exc}")
            return
        if not line.strip():
            continue
        try:
            doc = jsonlimits.loads(line, field="file")
        except ValidationError as exc:  # beyond a limit: the file is refused
            exc.message = f"line {number}: {exc.message}"
            raise
        except ValueError as exc:
            yield RowError(number, None, "invalid_json", f"not a JSON object: {exc}")
            continue
        yield _object_row(number, doc)


def _read_json(stream: IO[bytes]) -> Iterator[RawRow | RowError]:
    head = stream.read(_SNIFF)
    stream.seek(0)
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first == b"[":
        prefix = "item"
    elif first == b"{":
        prefix = "messages.item"
    else:
        raise ValidationError(
            'a JSON batch is {"messages": [...]} or an array of objects',
            field="file",
            code="invalid_json",
        )
    if head.startswith(b"\xef\xbb\xbf"):
        stream.read(3)
    number = 0
    try:
        for number, doc in enumerate(jsonlimits.items(stream, prefix), start=1):
            yield _object_row(number, doc)
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        yield RowError(number + 1, None, "invalid_json", f"the file cannot be read on: {exc}")
        return
    if number == 0 and prefix == "messages.item":
        raise ValidationError(
            'a JSON batch object needs a non-empty "messages" array',
            field="messages",
            code="invalid_json",
        )


def _object_row(number: int, doc: object) -> RawRow | RowError:
    if not isinstance(doc, dict):
        return RowError(number, None, "invalid_row", "each row must be a JSON object")
    return RawRow(number, {str(k): v for k, v in doc.items() if v is not None and v != ""})
