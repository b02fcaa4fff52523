"""From a raw batch row to a validated :class:`~callgate.domain.JobSpec`.

Columns are job fields (``to``, ``from``, ``body``, ``media_url``, ``url``, ``twiml``,
``callback_url``, ``idempotency_key``, ``not_before``, ``expires_at``, ``group_key``,
``max_attempts``, ``method``), ``metadata.*`` and ``params.*``, plus Twilio's parameter
names as they are (:data:`TWILIO_ALIASES`). An ``api`` column picks the kind per row
(:data:`API_KINDS`); without one, the batch's kind applies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from callgate.batches.dedupe import Deduper
from callgate.batches.parse import RawRow, RowError
from callgate.domain import JobSpec, Kind, make_spec, parse_time
from callgate.domain.params import FIELD_NAMES, passed_through
from callgate.exceptions import ValidationError

#: Twilio's parameter names that are job fields, and the job field each one is
TWILIO_ALIASES: Mapping[str, str] = FIELD_NAMES
#: Twilio's other parameters of a message or a call, passed through as given (a column
#: named as Twilio names it; the row's kind decides which are valid)
TWILIO_COLUMNS = frozenset().union(*(passed_through(k) for k in (Kind.SMS, Kind.CALL)))
#: values of the ``api`` column: the kind, and for ``request`` jobs the provider API
API_KINDS: Mapping[str, tuple[Kind, str | None]] = {
    "messages": (Kind.SMS, None),
    "calls": (Kind.CALL, None),
    "fax": (Kind.FAX, None),
    "lookup": (Kind.REQUEST, "lookup"),
    "verify": (Kind.REQUEST, "verify"),
    "studio": (Kind.REQUEST, "studio"),
}
_FIELDS = frozenset(
    {
        "to",
        "from",
        "body",
        "media_url",
        "url",
        "twiml",
        "callback_url",
        "idempotency_key",
        "not_before",
        "expires_at",
        "group_key",
        "max_attempts",
        "strict_order",
        "method",
        "api",
        "metadata",
        "params",
    }
)
_URL_FIELDS = ("media_url", "url", "callback_url")
_TEXT_FIELDS = frozenset(_FIELDS - {"max_attempts", "strict_order", "metadata", "params"})


@dataclass(frozen=True, slots=True)
class ValidRow:
    """A row that passed validation, ready to be queued."""

    line: int
    spec: JobSpec


def field_for(column: str) -> str | None:
    """The job field a column names, or None for a column callgate does not know."""
    if column in TWILIO_ALIASES:
        return TWILIO_ALIASES[column]
    name = column.strip().lower()
    if name in _FIELDS:
        return name
    if column in TWILIO_COLUMNS:
        return "params"
    prefix, dot, rest = name.partition(".")
    if dot and rest and prefix in ("metadata", "params"):
        return prefix
    return None


class RowMapper:
    """Validates rows against the batch's default ``kind`` (used without an ``api`` column)."""

    def __init__(
        self,
        kind: Kind | str | None = None,
        *,
        default_region: str | None = None,
        url_check: Callable[[str, str], str] | None = None,
        now: float | None = None,
    ):
        try:
            self.kind = Kind(kind) if kind is not None else Kind.SMS
        except ValueError:
            raise ValidationError(
                f"unknown kind {kind!r}; expected one of {', '.join(Kind)}", field="kind"
            ) from None
        self.default_region = default_region
        #: ``(url, field) -> url``, raising ValidationError (the API's SSRF check)
        self.url_check = url_check
        #: rows whose ``expires_at`` is before this (unix seconds) are invalid
        self.now = now

    def map(self, row: RawRow) -> ValidRow | RowError:
        # job field -> the column the file called it
        columns = {f: c for c in row.header if (f := field_for(c)) is not None}
        try:
            fields = self._fields(row.fields, columns)
            return ValidRow(row.line, self._spec(fields))
        except ValidationError as exc:
            column = columns.get(exc.field or "", exc.field)
            return RowError(row.line, column, exc.code, exc.message)

    def _fields(self, raw: Mapping[str, Any], columns: dict[str, str]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for column, value in raw.items():
            name = field_for(column)
            if name is None:
                raise ValidationError(
                    f"unknown column {column!r}: expected one of callgate's columns "
                    f"({', '.join(sorted(_FIELDS - {'metadata', 'params'}))}, metadata.*, "
                    "params.*) or a parameter of Twilio's create call "
                    f"({', '.join(sorted(TWILIO_COLUMNS | TWILIO_ALIASES.keys()))})",
                    field=column,
                    code="unknown_column",
                )
            if name in fields and name not in ("metadata", "params"):
                raise ValidationError(
                    f"{column!r} repeats {columns[name]!r}", field=column, code="duplicate_column"
                )
            columns[name] = column
            if name == "params" and column in TWILIO_COLUMNS:
                fields.setdefault(name, {})[column] = value
                columns[f"params.{column}"] = column
                continue
            if name in ("metadata", "params") and "." in column:
                fields.setdefault(name, {})[column.partition(".")[2]] = value
                columns[column] = column
                continue
            if name in _TEXT_FIELDS and not isinstance(value, str):
                raise ValidationError(f"{column} must be text", field=column)
            if isinstance(value, str) and "\x00" in value:
                raise ValidationError(f"{column} contains a NUL character", field=column)
            fields[name] = value
        return fields

    def _spec(self, fields: dict[str, Any]) -> JobSpec:
        kind, api = self.kind, None
        if "api" in fields:
            choice = API_KINDS.get(str(fields.pop("api")).strip().lower())
            if choice is None:
                raise ValidationError(
                    f"api must be one of {', '.join(API_KINDS)}", field="api", code="invalid_api"
                )
            kind, api = choice
        if api is not None:
            fields["api"] = api
        for name in ("not_before", "expires_at"):
            if name in fields:
                fields[name] = parse_time(fields[name], field=name)
        if "max_attempts" in fields:
            fields["max_attempts"] = _integer(fields["max_attempts"], "max_attempts")
        if "strict_order" in fields:
            fields["strict_order"] = _boolean(fields["strict_order"], "strict_order")
        for name in _URL_FIELDS:
            if name in fields and self.url_check is not None:
                fields[name] = self.url_check(fields[name], name)
        for name in ("metadata", "params"):
            if name in fields and not isinstance(fields[name], dict):
                raise ValidationError(f"{name} must be an object", field=name)
        return make_spec(kind, default_region=self.default_region, now=self.now, **fields)


def _integer(value: object, field: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value) if isinstance(value, str | int) else int(str(value))
    except ValueError:
        raise ValidationError(f"{field} must be a whole number", field=field) from None
    return number


def _boolean(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValidationError(f"{field} must be true or false", field=field)


def validate_rows(
    rows: Iterable[RawRow | RowError], mapper: RowMapper, deduper: Deduper | None = None
) -> Iterator[ValidRow | RowError]:
    """Map every row, reporting invalid and duplicate ones; one output item per input row."""
    deduper = deduper if deduper is not None else Deduper()
    for row in rows:
        if isinstance(row, RowError):
            yield row
            continue
        item = mapper.map(row)
        if isinstance(item, ValidRow):
            first = deduper.seen(item.line, item.spec)
            if first is not None:
                yield RowError(
                    item.line,
                    "idempotency_key" if item.spec.idempotency_key else None,
                    "duplicate",
                    f"the same job as line {first}; queued once",
                    duplicate_of=first,
                )
                continue
        yield item
