"""Bounded JSON: every JSON text callgate reads from outside (API request bodies, batch
files, provider webhooks) is read here, with one set of limits.

* nesting: at most :data:`MAX_DEPTH` levels of arrays and objects (a deeper text is
  refused before anything is built from it: ``too_deep``), so neither memory nor the
  stack grows with what a client sends;
* numbers: finite, integers within 64 bits (``NaN``, ``Infinity``, ``1e400`` and
  ``1e30``-digit integers are refused: ``invalid_number``);
* lines (CSV and JSON Lines files): at most :data:`MAX_LINE` characters (``line_too_long``).

A plain module like :mod:`callgate.exceptions`: any layer may use it.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from typing import IO, Any, AnyStr

import ijson

from callgate.exceptions import ValidationError

#: levels of arrays and objects a JSON text may nest (a batch row is 1; its metadata 2)
MAX_DEPTH = 32
#: characters of one line of a CSV or JSON Lines file
MAX_LINE = 1 << 20
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_OPEN = frozenset({"start_map", "start_array"})
_CLOSE = frozenset({"end_map", "end_array"})


def too_deep(field: str | None, line: int | None = None) -> ValidationError:
    where = "" if line is None else f" on line {line}"
    return ValidationError(
        f"the JSON{where} nests deeper than {MAX_DEPTH} levels", field=field, code="too_deep"
    )


def _invalid_number(text: str) -> ValidationError:
    shown = text if len(text) <= 40 else text[:40] + "…"
    return ValidationError(
        f"{shown} is not a finite number within range", field=None, code="invalid_number"
    )


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _invalid_number(text)
    return value


def _int(text: str) -> int:
    if len(text) > 20 or not INT_MIN <= (value := int(text)) <= INT_MAX:
        raise _invalid_number(text)
    return value


def _constant(text: str) -> Any:
    raise _invalid_number(text)


def check_depth(raw: bytes, *, field: str | None = "body", max_depth: int = MAX_DEPTH) -> None:
    """Raise ``too_deep`` if the JSON text ``raw`` nests deeper than ``max_depth``.

    Cheap when it obviously cannot (fewer brackets than the limit); else the streaming
    parser counts levels without building anything. A text that is not JSON passes:
    the parser that reads it next says where it breaks."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return
    depth = 0
    try:
        for event, _ in ijson.basic_parse(io.BytesIO(raw)):
            if event in _OPEN:
                depth += 1
                if depth > max_depth:
                    raise too_deep(field)
            elif event in _CLOSE:
                depth -= 1
    except (ijson.JSONError, UnicodeDecodeError):
        return


def loads(data: bytes | str, *, field: str | None = "body", max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` within the limits: ``too_deep`` or ``invalid_number`` (400s) for a
    text beyond them, :class:`ValueError` (``json.JSONDecodeError``) for one that is not
    JSON."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    check_depth(raw, field=field, max_depth=max_depth)
    try:
        return json.loads(data, parse_float=_float, parse_int=_int, parse_constant=_constant)
    except RecursionError:  # the check above keeps this from happening; never a 500
        raise too_deep(field) from None
    except ValidationError as exc:
        exc.field = field
        raise


def items(stream: IO[bytes], prefix: str, *, max_depth: int = MAX_DEPTH) -> Iterator[Any]:
    """The values at ``prefix`` of a streamed JSON document (as ``ijson.items``, floats as
    floats), refusing (``too_deep``) a document that nests deeper than ``max_depth``:
    memory stays bounded by the largest value, whatever the document's depth.

    ``ijson.parse`` builds every event's prefix, which costs the square of the depth
    before a limit could stop it; this follows the path itself (as ijson does), from
    the prefix-free events, and only as deep as the limit."""
    builder: Any = None
    path: list[str] = []
    top = 0
    for event, value in ijson.basic_parse(stream, use_float=True):
        if builder is not None:
            builder.event(event, value)
        elif event != "map_key" and event not in _CLOSE and ".".join(path) == prefix:
            if event not in _OPEN:
                yield value
                continue
            builder, top = ijson.ObjectBuilder(), len(path)
            builder.event(event, value)
        _step(path, event, value, max_depth)
        if builder is not None and len(path) == top and event not in _OPEN:
            yield builder.value
            builder = None


def _step(path: list[str], event: str, value: Any, max_depth: int) -> None:
    """Follow an event's place in the document: ``path`` is where the next value goes."""
    if event == "map_key":
        path[-1] = str(value)
    elif event in _OPEN:
        if len(path) >= max_depth:
            raise too_deep("file")
        path.append("" if event == "start_map" else "item")
    elif event in _CLOSE:
        path.pop()


def lines(text: IO[AnyStr], *, limit: int = MAX_LINE) -> Iterator[AnyStr]:
    """The lines of ``text`` (newline kept), each at most ``limit`` characters (bytes,
    for a binary stream); ``line_too_long`` otherwise: a file without line breaks is
    never read whole."""
    number = 0
    while line := text.readline(limit + 1):
        number += 1
        if len(line) > limit:
            raise ValidationError(
                f"line {number} is longer than {limit} characters",
                field="file",
                code="line_too_long",
            )
        yield line


__all__ = ["MAX_DEPTH", "MAX_LINE", "check_depth", "items", "lines", "loads", "too_deep"]
