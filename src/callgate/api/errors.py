"""The API's error contract: every error is ``{"error": {"code", "message", "field"}}``
with a stable code, and the HTTP status each of callgate's errors answers with.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from callgate.api.models import ErrorOut
from callgate.exceptions import (
    CallgateError,
    IdempotencyConflict,
    InvalidTransition,
    NotFound,
    StoreError,
    Unauthorized,
    ValidationError,
    WorkerFailed,
)

STATUS_FOR: list[tuple[type[CallgateError], int]] = [
    (IdempotencyConflict, 409),
    (ValidationError, 400),
    (NotFound, 404),
    (InvalidTransition, 409),
    (Unauthorized, 401),
    (StoreError, 503),
    (WorkerFailed, 503),
]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Invalid request"},
    401: {"model": ErrorOut, "description": "Missing or unknown API key"},
    413: {"model": ErrorOut, "description": "Request body too large"},
    503: {"model": ErrorOut, "description": "The database is unavailable (or a worker failed)"},
}


class ApiError(CallgateError):
    """An HTTP-level error (auth, size, routing) with its own status."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.status = status
        self.code = code


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=headers)


def status_for(exc: CallgateError) -> int:
    """The HTTP status of a callgate error (500 for one not in :data:`STATUS_FOR`)."""
    if isinstance(exc, ApiError):
        return exc.status
    return next((s for cls, s in STATUS_FOR if isinstance(exc, cls)), 500)
