"""Log lines (issue 17): human text by default, or one JSON object a line
(``CALLGATE_LOG_FORMAT=json``), at ``CALLGATE_LOG_LEVEL``.

A JSON line has ``timestamp`` (ISO 8601, UTC), ``level``, ``event`` (the message),
``logger``, and where they apply ``job_id``, ``attempt``, ``provider``, ``provider_ref``,
``batch_id`` (and ``alert``, ``subject`` for an alert's line), plus ``exception`` with a
traceback. The job fields come from :func:`bind`: the worker binds them in each job's
task, so every line logged while it works on the job carries them without passing
them to each call. Credentials never appear, and with ``audit.mask_pii`` numbers and
content are masked, in either format (:func:`callgate.engine.audit.redact_logs`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

#: the fields a line may carry besides timestamp, level and event
FIELDS = ("job_id", "attempt", "provider", "provider_ref", "batch_id", "alert", "subject")
TEXT_FORMAT = "%(asctime)s %(name)s %(message)s"
_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "callgate_log_context", default=None
)


def bind(**fields: Any) -> None:
    """Add ``fields`` to every line logged from now on in this context (an asyncio task
    has a context of its own: a job's task binds its job). ``None`` values are dropped."""
    now = dict(_context.get() or {})
    now.update({k: v for k, v in fields.items() if v is not None})
    _context.set(now)


def bound() -> dict[str, Any]:
    """The fields bound in this context."""
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Puts the bound fields on each record (``record.job_id``, ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
        }
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exception"] = record.exc_text
        return json.dumps(doc, default=str, ensure_ascii=False)


def configure(
    fmt: str = "text", level: str = "info", stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log line to ``stream`` (stderr) as ``fmt`` (``text`` or ``json``) from
    ``level`` on, replacing the root logger's handlers; the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


__all__ = ["FIELDS", "ContextFilter", "JsonFormatter", "bind", "bound", "configure"]
