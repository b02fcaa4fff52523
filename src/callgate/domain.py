"""Jobs, attempts, statuses, outcomes and events: plain records, no I/O.

A :class:`JobSpec` is a validated request to send something (numbers already in E.164);
a :class:`Job` is what the store holds for it. Everything else in callgate speaks these.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from callgate.exceptions import ValidationError

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


# -- construction and validation -------------------------------------------------------


#: what a phone number may be written with: an ASCII ``+`` and ASCII digits, and the
#: separators people type between them (space, ``-``, ``.``, parentheses). Letters
#: (``+1500555ABCD``), extensions (``;ext=12``, ``x12``), other scripts' digits and
#: anything else are refused: the digits called are exactly the digits written.
NUMBER_PATTERN = r"^\+?[0-9 ().\-]{1,40}$"
_NUMBER_TEXT = re.compile(r"\+?[0-9 ().\-]{1,40}", re.ASCII)
_SEPARATORS = str.maketrans("", "", " ().-")
#: ids are 64-bit signed integers in both stores: anything past this cannot exist
MAX_ID = 2**63 - 1
#: the provider APIs the built-in adapters call for ``request`` jobs (docs/providers.md):
#: the HTTP API takes these; in process, any plain name (an adapter of your own's)
REQUEST_APIS = ("lookup", "verify", "studio", "raw")
_API_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}", re.ASCII)
#: the most attempts a job may be given
MAX_ATTEMPTS = 100
#: the calls per second a batch (or the meter) may be given: finite, within these bounds
MIN_RATE = 0.001
MAX_RATE = 10_000.0


def normalize_number(raw: object, *, field: str = "to", default_region: str | None = None) -> str:
    """Parse a phone number and return it in E.164; raise ``invalid_phone_number`` if bad.

    The one rule for every number from outside (API, CLI, batch rows): ``+`` and ASCII
    digits (separators allowed, see :data:`NUMBER_PATTERN`); without ``+`` only with a
    ``default_region``."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError("a phone number is required", field=field, code="missing_field")
    digits = raw.translate(_SEPARATORS)
    if not _NUMBER_TEXT.fullmatch(raw) or "+" in digits[1:] or not digits.lstrip("+"):
        raise ValidationError(
            f"{raw!r} is not a phone number in E.164 format, like +15551234567",
            field=field,
            code="invalid_phone_number",
        )
    return _e164(digits, field, default_region)


def validate_label(value: str, *, field: str = "name") -> str:
    """A name a person gives (a batch's, an API key's): 1-200 characters, not blank, no
    control characters; raise ``invalid_request`` otherwise."""
    if not value.strip() or len(value) > 200 or any(ord(ch) < 32 for ch in value):
        raise ValidationError(
            f"{field} must be 1-200 characters, not blank, without control characters",
            field=field,
        )
    return value


def validate_rate(raw: object, *, field: str = "rate") -> float:
    """A rate from outside (calls per second): a finite number from :data:`MIN_RATE` to
    :data:`MAX_RATE`; raise ``invalid_request`` (field ``rate``) otherwise (``inf``,
    ``1e400``, ``0``, ``nan``, ``1e-300`` ...)."""
    try:
        if isinstance(raw, bool):
            raise ValueError
        rate = float(raw) if isinstance(raw, int | float | str) else float(str(raw))
    except (ValueError, OverflowError):
        raise ValidationError(
            f"{field} must be a number of calls per second", field=field
        ) from None
    if not (math.isfinite(rate) and MIN_RATE <= rate <= MAX_RATE):
        raise ValidationError(
            f"{field} must be a finite number from {MIN_RATE:g} to {MAX_RATE:g} calls per second",
            field=field,
        )
    return rate


def usable_rate(rate: float | None) -> bool:
    """A stored rate the meter can run at (None: no rate of its own)."""
    return rate is None or (math.isfinite(rate) and MIN_RATE <= rate <= MAX_RATE)


@functools.lru_cache(maxsize=65536)
def _e164(raw: str, field: str, default_region: str | None) -> str:
    """Parsing is the costly part of a submit and destinations repeat: remember them
    (errors are not cached; they raise every time)."""
    try:
        parsed = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(
            f"{raw!r} is not a phone number in E.164 format, like +15551234567",
            field=field,
            code="invalid_phone_number",
        ) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError(
            f"{raw!r} is not a valid phone number", field=field, code="invalid_phone_number"
        )
    e164: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164


def validate_url(raw: object, *, field: str) -> str:
    """Return ``raw`` if it is an absolute http(s) URL; raise ``invalid_url`` otherwise."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError(f"{field} is required", field=field, code="missing_field")
    try:
        parts = urlsplit(raw.strip())
        _ = parts.port  # raises ValueError for a port that is not a number in range
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise ValidationError(f"{raw!r} is not an http(s) URL", field=field, code="invalid_url")
    return raw.strip()


def _require_text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{field} is required", field=field, code="missing_field")
    return value


def _payload_for(kind: Kind, fields: Mapping[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if fields.get("from") is not None:
        payload["from"] = normalize_number(fields["from"], field="from")
    if kind is Kind.FAX:
        payload["media_url"] = validate_url(fields.get("media_url"), field="media_url")
    elif kind is Kind.SMS:
        if fields.get("body") is None and fields.get("media_url") is None:
            raise ValidationError(
                "an SMS needs a body or a media_url", field="body", code="missing_field"
            )
        if fields.get("body") is not None:
            payload["body"] = _require_text(fields["body"], "body")
        if fields.get("media_url") is not None:
            payload["media_url"] = validate_url(fields["media_url"], field="media_url")
    elif kind is Kind.CALL:
        twiml, url = fields.get("twiml"), fields.get("url")
        if (twiml is None) == (url is None):
            raise ValidationError(
                "a call needs exactly one of twiml or url", field="twiml", code="missing_field"
            )
        if twiml is not None:
            payload["twiml"] = _require_text(twiml, "twiml")
        else:
            payload["url"] = validate_url(url, field="url")
    else:
        payload["api"] = _require_text(fields.get("api"), "api").strip().lower()
        if not _API_NAME.fullmatch(payload["api"]):
            raise ValidationError(
                f"api must be a name like {', '.join(REQUEST_APIS)}",
                field="api",
                code="invalid_api",
            )
        payload["method"] = _require_text(fields.get("method", "POST"), "method").upper()
        params = fields.get("params", {})
        if not isinstance(params, Mapping):
            raise ValidationError("params must be an object", field="params")
        payload["params"] = dict(params)
    return payload


#: where each kind of request names the number it is about (Twilio's parameter names)
REQUEST_NUMBER_FIELDS: Mapping[str, tuple[str, ...]] = {
    "lookup": ("PhoneNumber", "To"),
    "verify": ("To",),
    "studio": ("To",),
}
#: the only requests that contact nobody (a read): the others need a number to check
READS = frozenset({"lookup"})
#: raw requests to these resources contact someone (a message, a call, a verification)
CONTACT_RESOURCES = frozenset(
    {"Messages", "Calls", "Verifications", "Executions", "Notifications", "Participants", "Faxes"}
)


def request_number(payload: Mapping[str, Any]) -> tuple[str, object] | None:
    """(field, value) of the number a request's params name, if they name one."""
    api = str(payload.get("api", "")).lower()
    params = payload.get("params") or {}
    if api == "raw":
        inner = params.get("params")
        if isinstance(inner, Mapping) and "To" in inner:
            return "params.params.To", inner["To"]
        return None
    for name in REQUEST_NUMBER_FIELDS.get(api, ("To",)):
        if name in params:
            return f"params.{name}", params[name]
    return None


def contacts_someone(payload: Mapping[str, Any]) -> bool:
    """Whether a request reaches a person (so the guardrails must see its number): every
    one but a read (a Lookup, a raw GET or DELETE) and raw requests to resources that
    contact nobody."""
    api = str(payload.get("api", "")).lower()
    if api in READS:
        return False
    if api != "raw":
        return True
    params = payload.get("params") or {}
    method = str(params.get("method") or payload.get("method") or "GET").upper()
    if method in ("GET", "DELETE"):
        return False
    segments = str(params.get("path") or "").split("/")
    return any(seg.removesuffix(".json") in CONTACT_RESOURCES for seg in segments)


def _request_to(
    payload: Mapping[str, Any], to: str | None, default_region: str | None
) -> str | None:
    """The number a request job is checked and serialised as: ``to``, or the one its
    params name (the two must agree); a request that contacts someone needs one."""
    named = request_number(payload)
    if named is not None:
        field, value = named
        number = normalize_number(value, field=field, default_region=default_region)
        if to is not None and number != to:
            raise ValidationError(
                f"to ({to}) and {field} ({number}) name different numbers", field=field
            )
        to = number
    if to is None and contacts_someone(payload):
        raise ValidationError(
            f"a {payload.get('api')} request contacts someone: give its number in to (or "
            "params.To), so that the allowlist, suppressions, caps and quiet hours see it",
            field="to",
            code="missing_field",
        )
    return to


def make_spec(
    kind: Kind | str,
    *,
    to: str | None = None,
    group_key: str | None = None,
    not_before: datetime | None = None,
    expires_at: datetime | None = None,
    strict_order: bool = False,
    idempotency_key: str | None = None,
    callback_url: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    max_attempts: int | None = None,
    default_region: str | None = None,
    now: float | None = None,
    **fields: Any,
) -> JobSpec:
    """Validate a request and return its :class:`JobSpec`; nothing is stored here.

    ``fields`` are the kind's own: ``media_url`` (fax), ``body``/``media_url`` (sms),
    ``twiml`` or ``url`` (call), ``api``/``method``/``params`` (request), and ``from``.
    Given ``now`` (unix seconds), an ``expires_at`` that has already passed is refused.
    """
    try:
        kind = Kind(kind)
    except ValueError:
        raise ValidationError(
            f"unknown kind {kind!r}; expected one of {', '.join(Kind)}", field="kind"
        ) from None
    number = None
    if to is not None or kind is not Kind.REQUEST:
        number = normalize_number(to, default_region=default_region)
    payload = _payload_for(kind, fields)
    if kind is Kind.REQUEST:
        number = _request_to(payload, number, default_region)
    for name, value in (("not_before", not_before), ("expires_at", expires_at)):
        if value is not None and value.tzinfo is None:
            raise ValidationError(f"{name} must carry a time zone", field=name)
        if value is not None and not MIN_TIME <= value <= MAX_TIME:
            raise ValidationError(
                f"{name} must be between 1970 and 9999", field=name, code="invalid_time"
            )
    if not_before and expires_at and expires_at <= not_before:
        raise ValidationError("expires_at must be after not_before", field="expires_at")
    if max_attempts is not None and not 1 <= max_attempts <= MAX_ATTEMPTS:
        raise ValidationError(
            f"max_attempts must be from 1 to {MAX_ATTEMPTS}", field="max_attempts"
        )
    if expires_at is not None and now is not None and expires_at.timestamp() <= now:
        raise ValidationError("expires_at is in the past", field="expires_at", code="invalid_time")
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
        raise ValidationError("idempotency_key must be 1-255 characters", field="idempotency_key")
    return JobSpec(
        kind=kind,
        to=number,
        payload=payload,
        group_key=group_key,
        not_before=not_before,
        expires_at=expires_at,
        strict_order=strict_order,
        idempotency_key=idempotency_key,
        callback_url=(
            None if callback_url is None else validate_url(callback_url, field="callback_url")
        ),
        metadata=dict(metadata or {}),
        max_attempts=max_attempts,
    )


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
