"""A Hypothesis fuzz of the batch readers (issue 15): arbitrary bytes, deep nesting,
other encodings. Reading a file only ever yields rows and row errors, or raises the
documented file-level :class:`~callgate.exceptions.ValidationError` (with one of
``FILE_CODES``); nothing else, and never unbounded work."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import ijson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callgate import jsonlimits
from callgate.batches import FORMATS, RawRow, RowError, RowMapper, detect_format, read_rows
from callgate.batches.rows import validate_rows
from callgate.exceptions import ValidationError

#: the file-level refusals docs/batches.md and docs/security.md list
FILE_CODES = {
    "too_deep",
    "invalid_number",
    "line_too_long",
    "invalid_json",
    "no_header",
    "invalid_header",
    "invalid_format",
}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


def read_all(data: bytes, fmt: str | None = None) -> list[RawRow | RowError]:
    """Every item the reader yields (and the mapper makes of it), or the documented error."""
    stream = io.BytesIO(data)
    fmt = fmt or detect_format(stream)
    refused: ValidationError | None = None
    try:
        items = list(read_rows(stream, fmt))
        list(validate_rows(items, RowMapper("sms")))
    except ValidationError as exc:
        refused, items = exc, []
    if refused is not None:
        assert refused.code in FILE_CODES, (refused.code, refused.message)
    for item in items:
        assert isinstance(item, RawRow | RowError)
    return items


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from([None, *FORMATS]))
def test_arbitrary_bytes(data: bytes, fmt: str | None) -> None:
    read_all(data, fmt)


@FUZZ
@given(st.lists(json_values, max_size=5), st.sampled_from(["json", "jsonl", "messages"]))
def test_arbitrary_json_rows(rows: list[Any], shape: str) -> None:
    if shape == "jsonl":
        data = "\n".join(json.dumps(r, allow_nan=True) for r in rows).encode()
    elif shape == "messages":
        data = json.dumps({"messages": rows}, allow_nan=True).encode()
    else:
        data = json.dumps(rows, allow_nan=True).encode()
    read_all(data)


@FUZZ
@given(
    st.integers(1, 5000),
    st.sampled_from(["[", '{"a":']),
    st.sampled_from(["json", "jsonl", "messages"]),
)
def test_any_nesting(depth: int, opener: str, shape: str) -> None:
    closer = "]" if opener == "[" else "}"
    value = opener * depth + ("1" if opener != "[" else "") + closer * depth
    row = '{"to": "+15005550006", "body": "x", "metadata": {"v": ' + value + "}}"
    data = {"json": f"[{row}]", "jsonl": row, "messages": f'{{"messages": [{row}]}}'}[shape]
    items = read_all(data.encode())
    around = {"jsonl": 2, "json": 3, "messages": 4}[shape]  # the row, metadata, the file
    if depth + around > jsonlimits.MAX_DEPTH:
        assert items == []  # refused whole
    else:
        assert len(items) == 1


@FUZZ
@given(
    st.lists(json_values, max_size=4),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "cp1252"]),
)
def test_other_encodings(rows: list[Any], encoding: str) -> None:
    text = "To,Body\n" + "".join(f"+15005550006,{json.dumps(r)}\n" for r in rows)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        return
    read_all(data, "csv")
    read_all(json.dumps(rows).encode(encoding, errors="replace"))


@FUZZ
@given(st.lists(json_values, max_size=6))
def test_bounded_items_agree_with_ijson_within_the_limits(values: list[Any]) -> None:
    """jsonlimits.items reads what ijson.items reads, for documents within the limits."""
    data = json.dumps({"messages": values, "other": values}).encode()
    try:
        expected = list(ijson.items(io.BytesIO(data), "messages.item", use_float=True))
    except ijson.JSONError:
        return  # NaN, Infinity or a number past 64 bits: ijson refuses it too
    with contextlib.suppress(ValidationError):  # too deep: refused whole (test_any_nesting)
        assert list(jsonlimits.items(io.BytesIO(data), "messages.item")) == expected


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_file_without_line_breaks_is_refused_not_read_whole(fmt: str) -> None:
    class Endless(io.RawIOBase):
        """/dev/zero: the reader must stop after one line's worth."""

        read_bytes = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            self.read_bytes += len(buffer)
            assert self.read_bytes < 64 * jsonlimits.MAX_LINE, "read without bound"
            buffer[:] = b"\0" * len(buffer)
            return len(buffer)

    stream = io.BufferedReader(Endless())
    with pytest.raises(ValidationError) as caught:
        list(read_rows(stream, fmt))
    assert caught.value.code == "line_too_long"
