"""Jobs, attempts, statuses, outcomes and events: plain records, no I/O.

A :class:`JobSpec` is a validated request to send something (numbers already in E.164);
a :class:`Job` is what the store holds for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from callgate.domain.times import iso

#: the range of times a job may name (they are stored as unix seconds)
MIN_TIME = datetime(1970, 1, 2, tzinfo=UTC)
MAX_TIME = datetime(9999, 12, 30, tzinfo=UTC)


class Kind(StrEnum):
    FAX = "fax"
    SMS = "sms"
    CALL = "call"
    REQUEST = "request"


class Status(StrEnum):
    QUEUED = "queued"
    IN_FLIGHT = "in_flight"
    RETRYING = "retrying"
    HELD = "held"
    UNCERTAIN = "uncertain"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"
    BLOCKED = "blocked"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {Status.DELIVERED, Status.FAILED, Status.CANCELED, Status.EXPIRED, Status.BLOCKED}
)
#: statuses a worker may claim from (when ``run_at`` has come)
CLAIMABLE = frozenset({Status.QUEUED, Status.RETRYING})
#: statuses that can be canceled at once (in flight waits for its attempt to end)
CANCELABLE_NOW = frozenset({Status.QUEUED, Status.RETRYING, Status.HELD, Status.UNCERTAIN})
#: statuses a person may queue again (a fresh attempt budget)
RETRYABLE = frozenset(
    {Status.FAILED, Status.CANCELED, Status.HELD, Status.UNCERTAIN, Status.BLOCKED}
)


class Outcome(StrEnum):
    """How one attempt ended, classified (see DESIGN.md, *Outcomes*)."""

    DELIVERED = "delivered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    LINE_FAILED = "line_failed"
    RATE_LIMITED = "rate_limited"
    PROVIDER_ERROR = "provider_error"
    PERMANENT = "permanent"
    CANCELED = "canceled"
    UNKNOWN = "unknown"


class Fault(StrEnum):
    """A failure of the provider itself, not of one job: its circuit counts these
    (:mod:`callgate.engine.health`). The adapters say which of their errors are faults."""

    AUTH = "auth"  # the credentials or the account were refused (401, 20003): opens at once
    ACCESS = "access"  # forbidden (403) without a reason of the job's own: a run opens it
    OUTAGE = "outage"  # 5xx, no connection, no answer: a run of them opens it


class AttemptState(StrEnum):
    SENDING = "sending"  # written before the request; a crash here means "unknown"
    PENDING = "pending"  # the provider accepted it; tracking its status
    DONE = "done"


class Reason(StrEnum):
    """Stable reason codes on a job that did not (or not yet) get delivered."""

    MAX_ATTEMPTS = "max_attempts"
    EXPIRED = "expired"
    CANCELED = "canceled"
    LEASE_LOST = "lease_lost"
    PERMANENT = "permanent"
    PROVIDER_UNAVAILABLE = "provider_unavailable"  # held: its provider's circuit is open


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated request to send one job. Build it with :func:`make_spec`."""

    kind: Kind
    to: str | None
    payload: Mapping[str, Any]
    group_key: str | None = None
    not_before: datetime | None = None
    expires_at: datetime | None = None
    strict_order: bool = False
    idempotency_key: str | None = None
    callback_url: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    max_attempts: int | None = None

    def fingerprint(self) -> str:
        """A digest of what was asked, to tell a true retry from a key reused for another job."""
        doc = {
            "kind": str(self.kind),
            "to": self.to,
            "payload": self.payload,
            "group_key": self.group_key,
            "not_before": iso(self.not_before),
            "expires_at": iso(self.expires_at),
            "strict_order": self.strict_order,
            "callback_url": self.callback_url,
            "metadata": self.metadata,
            "max_attempts": self.max_attempts,
        }
        raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: Kind
    to: str | None
    group_key: str
    status: Status
    payload: Mapping[str, Any]
    attempts: int
    reason: str | None
    created_at: datetime
    updated_at: datetime
    run_at: datetime
    not_before: datetime | None = None
    expires_at: datetime | None = None
    strict_order: bool = False
    idempotency_key: str | None = None
    callback_url: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    max_attempts: int | None = None
    cancel_requested: bool = False
    provider_ref: str | None = None
    detail: str | None = None  # the reason, as a sentence for a person
    batch_id: int | None = None  # the batch it came in, if any

    def expired(self, now: float) -> bool:
        """Its validity window has passed at ``now`` (unix seconds): it must not be sent."""
        return self.expires_at is not None and self.expires_at.timestamp() <= now

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": str(self.kind),
            "to": self.to,
            "group_key": self.group_key,
            "status": str(self.status),
            "attempts": self.attempts,
            "reason": self.reason,
            "detail": self.detail,
            "payload": dict(self.payload),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "run_at": iso(self.run_at),
            "not_before": iso(self.not_before),
            "expires_at": iso(self.expires_at),
            "strict_order": self.strict_order,
            "idempotency_key": self.idempotency_key,
            "callback_url": self.callback_url,
            "metadata": dict(self.metadata),
            "max_attempts": self.max_attempts,
            "cancel_requested": self.cancel_requested,
            "provider_ref": self.provider_ref,
            "batch_id": self.batch_id,
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    job_id: int
    number: int
    state: AttemptState
    started_at: datetime
    ended_at: datetime | None = None
    outcome: Outcome | None = None
    provider_ref: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    counted: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "state": str(self.state),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "outcome": None if self.outcome is None else str(self.outcome),
            "provider_ref": self.provider_ref,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "counted": self.counted,
        }


@dataclass(frozen=True, slots=True)
class Event:
    """A state change, written in the same transaction as the change (the outbox)."""

    id: int
    job_id: int
    type: str
    status: Status
    created_at: datetime
    reason: str | None = None
    detail: str | None = None
    attempts: int | None = None  # the job's counted attempts when it happened

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "attempts": self.attempts,
            "type": self.type,
            "status": str(self.status),
            "created_at": iso(self.created_at),
            "reason": self.reason,
            "detail": self.detail,
        }


#: the event types that become webhooks (the others stay in the job's history)
WEBHOOK_EVENT_TYPES = frozenset(
    {
        "job.delivered",
        "job.failed",
        "job.expired",
        "job.blocked",
        "job.canceled",
        "job.retrying",
    }
)


def event_type(status: Status) -> str:
    """The event type announcing that a job entered ``status`` (``job.delivered``, ...)."""
    return f"job.{status}"
