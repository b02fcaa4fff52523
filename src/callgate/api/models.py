"""Request and response bodies of the HTTP API (these make the OpenAPI schema)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from callgate.domain import MAX_ID, NUMBER_PATTERN, REQUEST_APIS

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _iso_only(value: object) -> object:
    """A time is ISO 8601: pydantic would otherwise read a bare number as unix seconds."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 date-time (2026-11-23T09:00:00Z), not a number")
    return value


#: an ISO 8601 date-time, never a number
IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]

#: ids are SQLite integers: anything past this cannot exist
ID_MAX = MAX_ID
JobId = Annotated[int, Path(ge=1, le=ID_MAX, description="The job's id")]
BatchId = Annotated[int, Path(ge=1, le=ID_MAX, description="The batch's id")]
DeliveryId = Annotated[int, Path(ge=1, le=ID_MAX, description="The delivery's id")]
Cursor = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{1,18}$", description="next_cursor from the previous page"),
]


def _nonempty(**extra: Any) -> dict[str, Any]:
    """What the document says beyond what pydantic checks: the service refuses an empty
    string (``missing_field``) or a number that is not E.164 (``invalid_phone_number``)
    with codes of its own, so pydantic must not refuse them first."""
    return {"minLength": 1, **extra}


NUMBER_DOC = _nonempty(pattern=NUMBER_PATTERN)
TEXT_DOC = _nonempty()


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    to: str = Field(
        description="Destination number, E.164 (+15551234567)",
        max_length=64,
        json_schema_extra=NUMBER_DOC,
    )
    from_: str | None = Field(
        None,
        alias="from",
        max_length=64,
        description="Sender number; the provider's default if unset",
        json_schema_extra=NUMBER_DOC,
    )
    callback_url: str | None = Field(
        None,
        max_length=2048,
        description="Where this job's webhooks go (http/https)",
        json_schema_extra=TEXT_DOC,
    )
    idempotency_key: str | None = Field(
        None,
        max_length=255,
        description="Same key, same job, forever (or use the header)",
        json_schema_extra=TEXT_DOC,
    )
    not_before: IsoTime | None = Field(None, description="Do not send before this time")
    expires_at: IsoTime | None = Field(None, description="Give up if not sent by this time")
    strict_order: bool = Field(
        False, description="Keep later jobs to this number waiting while this one retries"
    )
    max_attempts: int | None = Field(None, ge=1, le=100)
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Yours; echoed in the job and its webhooks"
    )


class FaxIn(_Common):
    media_url: str = Field(
        max_length=2048, description="URL of the PDF to send", json_schema_extra=TEXT_DOC
    )


PARAMS_DOC = (
    "Twilio's own parameters of the create call, by Twilio's names (MessagingServiceSid, "
    "ContentSid, ValidityPeriod, MachineDetection ...), sent as given: see docs/api.md"
)


class MessageIn(_Common):
    body: str | None = Field(None, max_length=1600, json_schema_extra=TEXT_DOC)
    media_url: str | None = Field(None, max_length=2048, json_schema_extra=TEXT_DOC)
    params: dict[str, Any] | None = Field(None, description=PARAMS_DOC)


class CallIn(_Common):
    twiml: str | None = Field(None, max_length=4000, json_schema_extra=TEXT_DOC)
    url: str | None = Field(
        None, max_length=2048, description="URL that returns TwiML", json_schema_extra=TEXT_DOC
    )
    params: dict[str, Any] | None = Field(None, description=PARAMS_DOC)


class RequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api: str = Field(
        max_length=64,
        description="The provider API: lookup, verify, studio or raw",
        json_schema_extra={"enum": list(REQUEST_APIS)},
    )
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    params: dict[str, Any] = Field(default_factory=dict)
    to: str | None = Field(
        None,
        max_length=64,
        description="Serialise on this number, if any",
        json_schema_extra=NUMBER_DOC,
    )
    callback_url: str | None = Field(None, max_length=2048, json_schema_extra=TEXT_DOC)
    idempotency_key: str | None = Field(None, max_length=255, json_schema_extra=TEXT_DOC)
    not_before: IsoTime | None = None
    expires_at: IsoTime | None = None
    max_attempts: int | None = Field(None, ge=1, le=100)
    metadata: dict[str, Any] = Field(default_factory=dict)


#: the statuses a person may retry (callgate.domain.RETRYABLE)
RetryableStatus = Literal["failed", "canceled", "held", "uncertain", "blocked"]


class RetryJobsIn(BaseModel):
    """Which jobs to queue again; at least one filter."""

    model_config = ConfigDict(extra="forbid")
    status: RetryableStatus | list[RetryableStatus] | None = Field(
        None, description="Jobs in this status, or these statuses (default: failed)"
    )
    since: IsoTime | None = Field(None, description="...that entered it at or after this time")
    reason: str | None = Field(
        None, min_length=1, max_length=64, description="...with this reason code"
    )
    batch: int | None = Field(None, ge=1, le=ID_MAX, description="...of this batch")


class RetriedOut(BaseModel):
    retried: int = Field(description="How many jobs were queued again")


class FaxGatewayIn(BaseModel):
    """vote/fax_gateway's queue message."""

    model_config = ConfigDict(extra="allow")

    fax_id: str = Field(min_length=1, max_length=255)
    to: str = Field(max_length=64, json_schema_extra=NUMBER_DOC)
    pdf_url: str = Field(max_length=2048, json_schema_extra=TEXT_DOC)
    callback_url: str | None = Field(None, max_length=2048, json_schema_extra=TEXT_DOC)


class Links(BaseModel):
    self: str
    cancel: str
    retry: str


class JobOut(BaseModel):
    id: int
    kind: Literal["fax", "sms", "call", "request"]
    to: str | None
    group_key: str
    status: Literal[
        "queued",
        "in_flight",
        "retrying",
        "held",
        "uncertain",
        "delivered",
        "failed",
        "canceled",
        "expired",
        "blocked",
    ]
    attempts: int
    reason: str | None
    detail: str | None
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    run_at: datetime
    not_before: datetime | None
    expires_at: datetime | None
    strict_order: bool
    idempotency_key: str | None
    callback_url: str | None
    metadata: dict[str, Any]
    max_attempts: int | None
    cancel_requested: bool
    provider_ref: str | None
    batch_id: int | None = Field(None, description="the batch it came in (POST /v1/batches)")
    links: Links


class AttemptOut(BaseModel):
    number: int
    state: Literal["sending", "pending", "done"]
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    provider_ref: str | None
    error_code: str | None
    error_message: str | None
    counted: bool


class EventOut(BaseModel):
    id: int
    job_id: int
    type: str
    status: str
    created_at: datetime
    reason: str | None
    detail: str | None


class AuditOut(BaseModel):
    """One provider exchange of an attempt (credentials redacted; see docs/guardrails.md)."""

    id: int
    attempt: int | None
    at: datetime
    method: str
    url: str
    status: int | None
    request: str | None
    response: str | None
    duration: float
    error: str | None


class JobDetail(JobOut):
    attempt_log: list[AttemptOut]
    events: list[EventOut]
    audit: list[AuditOut] = Field(description="every provider request and response")


class JobPage(BaseModel):
    data: list[JobOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page")


class ErrorBody(BaseModel):
    code: str = Field(
        description="Stable, machine-readable: invalid_request, missing_field, "
        "invalid_phone_number, invalid_url, unsafe_url, invalid_time, invalid_api, "
        "invalid_number, too_deep, line_too_long, invalid_json, invalid_format, no_header, "
        "invalid_header, empty_batch, batch_rejected, unauthorized, forbidden, not_found, "
        "method_not_allowed, payload_too_large, idempotency_conflict, invalid_state, "
        "store_error, worker_failed, client_disconnected, http_error (another HTTP-level "
        "refusal, e.g. an unreadable multipart body), internal_error"
    )
    message: str
    field: str | None


class ErrorOut(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok"]
