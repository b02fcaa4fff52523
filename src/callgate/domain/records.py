"""The other records: webhook deliveries and job-less events, API keys, an attempt's
result and the decision taken on it, batches and their rows' errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from callgate.domain.jobs import Fault, Kind, Outcome, Reason, Status
from callgate.domain.times import iso


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one webhook endpoint."""

    id: int
    event_id: int
    job_id: int
    url: str
    format: str  # standard | fax_gateway
    status: str  # pending | delivered | failed (dead-lettered) | stopped (endpoint gone)
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "job_id": self.job_id,
            "url": self.url,
            "format": self.format,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": iso(self.next_attempt_at),
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "created_at": iso(self.created_at),
            "delivered_at": iso(self.delivered_at),
        }


@dataclass(frozen=True, slots=True)
class SystemWebhook:
    """A job-less webhook event waiting in the outbox (batch.completed, provider.down, ...)."""

    id: int
    type: str
    data: dict[str, Any]
    attempts: int
    created_at: float


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's public face; the token itself is shown once and stored hashed."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at),
        }


@dataclass(frozen=True, slots=True)
class Suppression:
    """A provider's hint to the engine: stop sending ``kind`` to this number, because
    ``reason`` (its error said so: unsubscribed, not SMS-capable, a landline)."""

    kind: Kind
    reason: str  # unsubscribed | not_sms_capable | landline


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What the provider said about one attempt (or one status poll)."""

    outcome: Outcome | None  # None: accepted, still under way
    provider_ref: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after: float | None = None
    #: unix time the provider says the attempt really ended (a fax's last page)
    ended_at: float | None = None
    #: the provider's answer to a ``request`` job (a Lookup's result), when it has one
    response: Mapping[str, Any] | None = None
    #: the provider itself failed (credentials, outage), not this job (see :class:`Fault`)
    fault: Fault | None = None
    #: the adapter read the error as "stop sending this kind to this number"
    suppress: Suppression | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What follows an attempt (or a refusal): the job's next status and why."""

    status: Status
    reason: str | None = None
    detail: str | None = None
    run_at: float | None = None  # when it may be claimed again (queued/retrying)
    count_attempt: bool = True  # False for rate_limited: "not an attempt"


#: a job whose validity window passed before it could be sent
EXPIRED = Decision(
    Status.EXPIRED, Reason.EXPIRED, "the validity window passed before it could be sent"
)
#: a claimed job handed back unsent because its worker stopped
RELEASED = Decision(Status.QUEUED, "released", "the worker stopped before sending it")


class BatchStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    CANCELED = "canceled"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class Batch:
    """Many jobs submitted together from one file, metered at their own ``rate``."""

    id: int
    name: str | None
    kind: Kind
    status: BatchStatus
    rate: float | None
    strict: bool
    total_rows: int
    queued_rows: int
    invalid_rows: int
    duplicate_rows: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    #: the batch's jobs per status (only statuses with jobs appear)
    counts: Mapping[str, int] = field(default_factory=dict)
    #: the rate it runs at now: ``rate``, or lower after repeated 429 answers
    current_rate: float | None = None
    ingested_at: datetime | None = None  # when its last row was read
    #: calls per second over the last ten seconds (None: not asked at a given time)
    achieved_rate: float | None = None
    eta_seconds: float | None = None  # until its last job is sent, at the achieved rate

    @property
    def remaining(self) -> int:
        """Jobs not yet sent for the last time (queued, retrying or in flight)."""
        return sum(self.counts.get(s, 0) for s in ("queued", "retrying", "in_flight"))

    @property
    def done(self) -> bool:
        """Every job of the batch is terminal."""
        return all(Status(s).terminal for s, n in self.counts.items() if n)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": str(self.kind),
            "status": str(self.status),
            "rate": _finite(self.rate),
            "strict": self.strict,
            "total_rows": self.total_rows,
            "queued_rows": self.queued_rows,
            "invalid_rows": self.invalid_rows,
            "duplicate_rows": self.duplicate_rows,
            "counts": dict(self.counts),
            "current_rate": _finite(self.current_rate),
            "achieved_rate": self.achieved_rate,
            "eta_seconds": self.eta_seconds,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "ingested_at": iso(self.ingested_at),
            "completed_at": iso(self.completed_at),
        }


def _finite(value: float | None) -> float | None:
    """A number for JSON: a rate stored before rates were checked may be ``inf``."""
    return value if value is None or math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class BatchRowError:
    """An input row of a batch that is not a job of its own (invalid, or a duplicate)."""

    line: int
    column: str | None
    code: str
    message: str
    duplicate_of: int | None = None  # the earlier line it repeats
    job_id: int | None = None  # the job submitted before that it repeats (same key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "column": self.column,
            "code": self.code,
            "message": self.message,
            "duplicate_of": self.duplicate_of,
        }
