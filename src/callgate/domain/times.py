"""Times as the API and the store see them: ISO 8601 in, aware datetimes and unix
seconds between.
"""

from __future__ import annotations

from datetime import UTC, datetime

from callgate.exceptions import ValidationError


def parse_time(raw: str, *, field: str) -> datetime:
    """Parse an ISO 8601 time; a time without a zone is taken as UTC."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationError(
            f"{raw!r} is not an ISO 8601 time", field=field, code="invalid_time"
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_datetime(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601, with ``Z`` for UTC (as the API's response models write it)."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
