"""Batch files: streaming readers, row validation with line/column/reason, dedupe, exports."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from callgate.batches import (
    ERROR_COLUMNS,
    Deduper,
    RawRow,
    RowError,
    RowMapper,
    ValidRow,
    csv_chunks,
    detect_format,
    jsonl_chunks,
    read_rows,
    validate_rows,
)
from callgate.domain import Kind
from callgate.exceptions import ValidationError

EXAMPLES = Path("/work/shared/examples")
TWILIO_CSV = b"""To,From,Body
+15005550006,+15005550006,Your ballot request was received.
+15005550001,+15005550006,This row fails: invalid number (21211).
+15005550004,+15005550006,This row fails: unsubscribed recipient (21610).
"""
TWILIO_JSON = b"""{"messages": [
  {"To": "+15005550006", "From": "+15005550006", "Body": "Your ballot request was received."},
  {"To": "+15005550009", "From": "+15005550006", "Body": "This row fails: not SMS-capable (21614)."}
]}
"""


def run(data: bytes, kind: str | None = None, filename: str | None = None) -> list[object]:
    stream = io.BytesIO(data)
    fmt = detect_format(stream, filename)
    return list(validate_rows(read_rows(stream, fmt), RowMapper(kind)))


def test_twilio_sample_csv_is_read_unchanged() -> None:
    data = (EXAMPLES / "twilio-bulk.csv").read_bytes() if EXAMPLES.exists() else TWILIO_CSV
    items = run(data)
    assert [type(i) for i in items] == [ValidRow] * 3
    first = items[0]
    assert isinstance(first, ValidRow)
    assert first.line == 2
    assert first.spec.kind is Kind.SMS
    assert first.spec.to == "+15005550006"
    assert first.spec.payload == {
        "from": "+15005550006",
        "body": "Your ballot request was received.",
    }
    assert [i.line for i in items if isinstance(i, ValidRow)] == [2, 3, 4]


def test_twilio_sample_json_is_read_unchanged() -> None:
    data = (EXAMPLES / "twilio-bulk.json").read_bytes() if EXAMPLES.exists() else TWILIO_JSON
    items = run(data)
    assert all(isinstance(i, ValidRow) for i in items)
    assert [i.spec.to for i in items if isinstance(i, ValidRow)] == ["+15005550006", "+15005550009"]


def test_top_level_array_and_json_lines() -> None:
    array = b'[{"to": "+15005550006", "body": "a"}, {"to": "+15005550006", "body": "b"}]'
    lines = b'{"to": "+15005550006", "body": "a"}\n\n{"to": "bad", "body": "b"}\n'
    assert detect_format(io.BytesIO(array)) == "json"
    assert detect_format(io.BytesIO(lines)) == "jsonl"
    assert [type(i) for i in run(array)] == [ValidRow, ValidRow]
    items = run(lines)
    assert isinstance(items[0], ValidRow)
    assert items[1] == RowError(
        3,
        "to",
        "invalid_phone_number",
        "'bad' is not a phone number in E.164 format, like +15551234567",
    )


def test_bad_rows_are_reported_with_line_column_and_reason() -> None:
    data = (
        b"To,From,Body,MediaUrl\n"
        b"+15005550006,,hello,\n"
        b"12,,hello,\n"
        b'+15005550006,,"two\nlines",ftp://x\n'
        b",,hello,\n"
        b"+15005550006,,hello,,extra\n"
        b"+15005550006,,,\n"
    )
    items = run(data)
    errors = [(e.line, e.column, e.code) for e in items if isinstance(e, RowError)]
    assert errors == [
        (3, "To", "invalid_phone_number"),
        (4, "MediaUrl", "invalid_url"),
        (6, "To", "missing_field"),
        (7, None, "extra_fields"),
        (8, "Body", "missing_field"),
    ]
    assert [i.line for i in items if isinstance(i, ValidRow)] == [2]


def test_api_column_metadata_and_times() -> None:
    data = (
        b"api,to,url,body,metadata.voter,metadata.county,not_before,expires_at,idempotency_key\n"
        b"calls,+15005550006,https://example.org/t.xml,,17,Kent,2026-01-01T00:00:00Z,,k1\n"
        b"messages,+15005550006,,hi,18,,,2026-01-02T00:00:00,\n"
        b"lookup,+15005550006,,,,,,,\n"
        b"carrier-pigeon,+15005550006,,,,,,,\n"
    )
    items = run(data, kind="fax")
    call, sms, lookup, bad = items
    assert isinstance(call, ValidRow)
    assert call.spec.kind is Kind.CALL
    assert call.spec.metadata == {"voter": "17", "county": "Kent"}
    assert call.spec.idempotency_key == "k1"
    assert call.spec.not_before is not None
    assert call.spec.not_before.year == 2026
    assert isinstance(sms, ValidRow)
    assert sms.spec.kind is Kind.SMS
    assert sms.spec.expires_at is not None
    assert sms.spec.expires_at.tzinfo is not None
    assert isinstance(lookup, ValidRow)
    assert lookup.spec.kind is Kind.REQUEST
    assert lookup.spec.payload["api"] == "lookup"
    assert isinstance(bad, RowError)
    assert (bad.column, bad.code) == ("api", "invalid_api")


def test_default_kind_applies_without_api_column() -> None:
    items = run(b"to,media_url\n+15005550006,https://example.org/a.pdf\n", kind="fax")
    assert isinstance(items[0], ValidRow)
    assert items[0].spec.kind is Kind.FAX
    with pytest.raises(ValidationError) as info:
        RowMapper("telegram")
    assert info.value.field == "kind"


def test_unknown_column_is_reported_per_row() -> None:
    items = run(b"To,Bdy\n+15005550006,hi\n")
    assert isinstance(items[0], RowError)
    assert (items[0].column, items[0].code) == ("Bdy", "unknown_column")


def test_duplicates_are_reported_and_queued_once() -> None:
    data = (
        b"to,body,idempotency_key\n"
        b"+15005550006,hello,\n"
        b"+15005550006,hello,\n"  # same content, no key
        b"+15005550006,other,k\n"
        b"+15005550006,different,k\n"  # same key
        b"+15005550006,hello,k2\n"  # same content but its own key: a job of its own
    )
    items = run(data)
    dups = [(e.line, e.duplicate_of) for e in items if isinstance(e, RowError)]
    assert dups == [(3, 2), (5, 4)]
    assert [i.line for i in items if isinstance(i, ValidRow)] == [2, 4, 6]
    assert len(items) == 5  # one item per input row


def test_malformed_files() -> None:
    with pytest.raises(ValidationError) as info:
        list(read_rows(io.BytesIO(b""), "csv"))
    assert info.value.code == "no_header"
    with pytest.raises(ValidationError):
        list(read_rows(io.BytesIO(b"to,to\n"), "csv"))
    truncated = list(read_rows(io.BytesIO(b'[{"to": "+15005550006"}, {"to": '), "json"))
    assert isinstance(truncated[0], RawRow)
    assert isinstance(truncated[1], RowError)
    assert truncated[1].code == "invalid_json"
    assert truncated[1].line == 2
    with pytest.raises(ValidationError) as info:
        list(read_rows(io.BytesIO(b'{"rows": []}'), "json"))
    assert info.value.field == "messages"
    bad_utf8 = list(read_rows(io.BytesIO(b"to,body\n+15005550006,\xff\n"), "csv"))
    assert isinstance(bad_utf8[-1], RowError)
    assert bad_utf8[-1].code == "unreadable_file"
    with pytest.raises(ValidationError):
        read_rows(io.BytesIO(b""), "xml")


def test_readers_stream() -> None:
    """A reader hands rows over before it has read the whole file."""

    class Endless(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: object) -> int:
            view = memoryview(buffer)  # type: ignore[arg-type]
            chunk = b"to,body\n" if self.sent == 0 else b"+15005550006,hello\n" * 100
            self.sent += 1
            view[: len(chunk)] = chunk
            return len(chunk)

    source = Endless()
    rows = read_rows(io.BufferedReader(source), "csv")
    first = [next(rows) for _ in range(10)]
    assert all(isinstance(r, RawRow) for r in first)
    assert source.sent < 100


def test_deduper_memory_is_small() -> None:
    deduper = Deduper()
    mapper = RowMapper()
    for n in range(3):
        item = mapper.map(RawRow(n + 2, {"to": "+15005550006", "body": str(n)}))
        assert isinstance(item, ValidRow)
        assert deduper.seen(item.line, item.spec) is None
    assert len(deduper) == 3


def test_exports_have_one_row_per_input_row() -> None:
    rows = [
        {"line": 2, "job_id": 7, "status": "delivered", "provider_sid": "SM1", "attempts": 1},
        {
            "line": 3,
            "status": "invalid",
            "error_code": "invalid_phone_number",
            "error_message": "a, b",
        },
    ]
    text = "".join(csv_chunks(rows))
    assert (
        text.splitlines()[0] == "line,job_id,status,provider_sid,error_code,error_message,attempts"
    )
    assert text.splitlines()[2] == '3,,invalid,,invalid_phone_number,"a, b",'
    lines = [json.loads(x) for x in "".join(jsonl_chunks(rows)).splitlines()]
    assert len(lines) == 2
    assert lines[1]["job_id"] is None
    errors = "".join(csv_chunks([RowError(3, "To", "x", "y").to_dict()], ERROR_COLUMNS))
    assert errors.splitlines() == ["line,column,code,message,duplicate_of", "3,To,x,y,"]


def test_nul_characters_are_reported() -> None:
    items = run(b"to,body\n+15005550006,a\x00b\n")
    assert isinstance(items[0], RowError)
    assert (items[0].column, items[0].code) == ("body", "invalid_request")
