"""Twilio's (and SignalWire's Twilio-shaped) statuses and error codes as callgate outcomes.

Pure functions over module-level tables, so every row is tested and documented
(``docs/providers.md``). The adapters (:mod:`~callgate.providers.twilio`,
:mod:`~callgate.providers.signalwire`) and the callback parsers call these and nothing
else to classify what the provider said.
"""

from __future__ import annotations

import dataclasses
import email.utils
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx

from callgate.domain import AttemptResult, Fault, Kind, Outcome, Suppression
from callgate.providers.base import http_fault

#: Twilio error codes (API errors and the ``ErrorCode`` of failed resources) → outcome.
ERROR_CODES: Mapping[int, tuple[Outcome, str]] = {
    # too much, too fast: not an attempt, slow down
    20429: (Outcome.RATE_LIMITED, "too many requests"),
    14107: (Outcome.RATE_LIMITED, "message rate limit exceeded"),
    21611: (Outcome.RATE_LIMITED, "the From number's queue is full"),
    30001: (Outcome.RATE_LIMITED, "queue overflow"),
    # the account or its configuration: a person must act; let the breaker see it
    20003: (Outcome.PROVIDER_ERROR, "authentication failed"),
    20500: (Outcome.PROVIDER_ERROR, "internal server error"),
    20503: (Outcome.PROVIDER_ERROR, "service unavailable"),
    30002: (Outcome.PROVIDER_ERROR, "account suspended"),
    30008: (Outcome.PROVIDER_ERROR, "unknown error"),
    30034: (Outcome.PROVIDER_ERROR, "sender not registered (A2P 10DLC)"),
    # the destination, for good
    21211: (Outcome.PERMANENT, "invalid 'To' number"),
    21214: (Outcome.PERMANENT, "'To' number cannot be reached"),
    21215: (Outcome.PERMANENT, "no geographic permission for this number"),
    21216: (Outcome.PERMANENT, "number blocked"),
    21217: (Outcome.PERMANENT, "number does not appear to be valid"),
    21219: (Outcome.PERMANENT, "'To' number not verified (trial account)"),
    21408: (Outcome.PERMANENT, "no permission to send to this region"),
    21421: (Outcome.PERMANENT, "invalid phone number"),
    21610: (Outcome.PERMANENT, "recipient unsubscribed (STOP)"),
    21612: (Outcome.PERMANENT, "'To' number cannot be routed"),
    21614: (Outcome.PERMANENT, "'To' number is not SMS-capable"),
    21635: (Outcome.PERMANENT, "'To' number is a landline"),
    13223: (Outcome.PERMANENT, "invalid phone number format"),
    13224: (Outcome.PERMANENT, "invalid phone number"),
    13227: (Outcome.PERMANENT, "no international permission"),
    30004: (Outcome.PERMANENT, "message blocked"),
    30005: (Outcome.PERMANENT, "unknown destination handset"),
    30006: (Outcome.PERMANENT, "landline or unreachable carrier"),
    30007: (Outcome.PERMANENT, "message filtered as spam"),
    30010: (Outcome.PERMANENT, "price exceeds the maximum"),
    30011: (Outcome.PERMANENT, "MMS not supported"),
    60200: (Outcome.PERMANENT, "invalid parameter (Verify)"),
    60203: (Outcome.PERMANENT, "maximum send attempts reached (Verify)"),
    60205: (Outcome.PERMANENT, "SMS is not supported by landline (Verify)"),
    # the line, for now: try again after the kind's retry delay
    30003: (Outcome.NO_ANSWER, "unreachable destination handset"),
    34002: (Outcome.BUSY, "fax: callee busy"),
    34003: (Outcome.NO_ANSWER, "fax: callee did not answer"),
    34004: (Outcome.LINE_FAILED, "fax: error during transmission"),
}

#: error codes that say the account itself is refused: every request will fail alike
AUTH_CODES = frozenset({20003, 20005, 30002})
#: error codes of an outage on Twilio's side
OUTAGE_CODES = frozenset({20500, 20503})

#: error codes that also put the number on the suppression list, and why
SUPPRESSING: Mapping[int, str] = {
    21610: "unsubscribed",
    21614: "not_sms_capable",
    21635: "landline",
    30006: "landline",
    60205: "landline",
}

#: ``Message.status`` → outcome; None: still under way. ``sent`` depends on a setting,
#: ``undelivered``/``failed`` on the error code (see :func:`message_outcome`).
MESSAGE_STATUS: Mapping[str, Outcome | None] = {
    "queued": None,
    "accepted": None,
    "scheduled": None,
    "sending": None,
    "delivered": Outcome.DELIVERED,
    "read": Outcome.DELIVERED,
    "canceled": Outcome.CANCELED,
}

#: ``Call.status`` → outcome; ``failed`` depends on the error code.
CALL_STATUS: Mapping[str, Outcome | None] = {
    "queued": None,
    "initiated": None,
    "ringing": None,
    "in-progress": None,
    "answered": None,
    "busy": Outcome.BUSY,
    "no-answer": Outcome.NO_ANSWER,
    "completed": Outcome.DELIVERED,
    "canceled": Outcome.CANCELED,
}

#: SignalWire ``Fax.status`` → outcome; ``failed`` depends on the error code.
FAX_STATUS: Mapping[str, Outcome | None] = {
    "queued": None,
    "processing": None,
    "sending": None,
    "delivered": Outcome.DELIVERED,
    "busy": Outcome.BUSY,
    "no-answer": Outcome.NO_ANSWER,
    "canceled": Outcome.CANCELED,
}


def code_of(raw: object) -> int | None:
    """An error code as an int (Twilio sends ints in JSON and strings in callbacks)."""
    if raw is None or raw == "":
        return None
    try:
        return int(str(raw))
    except ValueError:
        return None


def error_outcome(http_status: int | None, code: object = None) -> Outcome:
    """An API error: a known code decides; else 429 → rate_limited, 401, 403 and 5xx →
    provider_error, any other 4xx → permanent."""
    known = ERROR_CODES.get(code_of(code) or 0)
    if known is not None:
        return known[0]
    if http_status == 429:
        return Outcome.RATE_LIMITED
    if http_status is None or http_status in (401, 403) or http_status >= 500:
        return Outcome.PROVIDER_ERROR
    return Outcome.PERMANENT


def error_fault(http_status: int | None, code: object = None) -> Fault | None:
    """Whether an error is the provider's own (its circuit counts it), not the job's:
    refused credentials or account (401, 20003, 20005, 30002) → auth; 403 without a
    code of the job's own → access; 5xx, no answer, 20500, 20503 → outage."""
    number = code_of(code)
    found = code_fault(number)
    if found is not None:
        return found
    known = ERROR_CODES.get(number or 0)
    if known is not None and known[0] is not Outcome.PROVIDER_ERROR:
        return None  # a code of the job's own (its number, its content)
    return http_fault(http_status)


def code_fault(code: object) -> Fault | None:
    """A resource's error code (a failed message's) that is the provider's own fault."""
    number = code_of(code)
    if number in AUTH_CODES:
        return Fault.AUTH
    if number in OUTAGE_CODES:
        return Fault.OUTAGE
    return None


def api_error(
    http_status: int,
    body: Mapping[str, Any],
    *,
    retry_after_header: str | None = None,
    now: float = 0.0,
    text: str = "",
) -> AttemptResult:
    """An HTTP error answer (``{"code", "message", "more_info", "status"}``) as a result;
    a rate limit carries the ``Retry-After`` delay."""
    code = body.get("code")
    outcome = error_outcome(http_status, code)
    wait = retry_after(retry_after_header, now) if outcome is Outcome.RATE_LIMITED else None
    message = body.get("message") or text[:200] or f"HTTP {http_status}"
    return AttemptResult(
        outcome,
        error_code=str(code if code is not None else http_status),
        error_message=str(message),
        retry_after=wait,
        fault=error_fault(http_status, code),
    )


def failed_outcome(code: object, default: Outcome) -> Outcome:
    """A resource that ended ``failed``/``undelivered``: its error code, else ``default``."""
    known = ERROR_CODES.get(code_of(code) or 0)
    return default if known is None else known[0]


def message_outcome(
    status: str | None, code: object = None, *, accept_sent: bool = False
) -> Outcome | None:
    """SMS/MMS: queued/accepted/scheduled/sending → None; delivered → delivered; sent →
    delivered with ``accept_sent`` else None (waiting for the receipt); undelivered →
    by code, else line_failed; failed → by code, else provider_error."""
    if status == "sent":
        return Outcome.DELIVERED if accept_sent else None
    if status == "undelivered":
        return failed_outcome(code, Outcome.LINE_FAILED)
    if status == "failed":
        return failed_outcome(code, Outcome.PROVIDER_ERROR)
    return _known(MESSAGE_STATUS, status)


def call_outcome(status: str | None, code: object = None) -> Outcome | None:
    """Calls: queued/initiated/ringing/in-progress → None; busy; no-answer; completed →
    delivered; canceled; failed → by code, else line_failed."""
    if status == "failed":
        return failed_outcome(code, Outcome.LINE_FAILED)
    return _known(CALL_STATUS, status)


def fax_outcome(status: str | None, code: object = None) -> Outcome | None:
    """SignalWire faxes: queued/processing/sending → None; delivered; busy; no-answer;
    canceled; failed → by code (permanent for number errors), else line_failed."""
    if status == "failed":
        return failed_outcome(code, Outcome.LINE_FAILED)
    return _known(FAX_STATUS, status)


def _known(table: Mapping[str, Outcome | None], status: str | None) -> Outcome | None:
    # a status we do not know is not a final status we could act on: keep polling (the
    # tracker gives up after CALLGATE_TRACK_TIMEOUT and the job becomes uncertain)
    return None if status is None else table.get(status)


def suppression_for(error_code: object, kind: Kind | str) -> Suppression | None:
    """Whether this error means "suppress this number for SMS": unsubscribed (21610),
    not SMS-capable (21614), landline (21635, 30006, 60205). Only for SMS jobs and
    requests (a Verify by SMS); a fax or a call to the number is not affected."""
    reason = SUPPRESSING.get(code_of(error_code) or 0)
    if reason is None or Kind(kind) not in (Kind.SMS, Kind.REQUEST):
        return None
    return Suppression(Kind.SMS, reason)


def suppressing(result: AttemptResult, kind: Kind | str) -> AttemptResult:
    """``result`` with its suppression hint (:func:`suppression_for`) when it is a
    permanent failure whose Twilio error code means "stop sending here": the adapters
    that speak Twilio's codes (Twilio, SignalWire's LaML, the simulator) report it in
    the result, and the engine acts on the hint, not on any vendor's codes."""
    if result.outcome is not Outcome.PERMANENT or result.suppress is not None:
        return result
    hint = suppression_for(result.error_code, kind)
    return result if hint is None else dataclasses.replace(result, suppress=hint)


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²" is a digit to str.isdigit, not to float
        return min(float(value), 86400.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def transport_outcome(exc: BaseException, *, idempotent: bool = False) -> Outcome:
    """A request that got no HTTP answer. If the connection was never made nothing
    reached the provider: provider_error. Otherwise (a timeout or a dropped connection
    after the request was sent) the provider may have acted on it: unknown, so the job
    is reconciled instead of resent; an idempotent request (a GET) is provider_error."""
    if idempotent or _never_connected(exc):
        return Outcome.PROVIDER_ERROR
    return Outcome.UNKNOWN


def _never_connected(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            aiohttp.ClientConnectorError
            | aiohttp.ConnectionTimeoutError
            | httpx.ConnectError
            | httpx.ConnectTimeout
            | ConnectionRefusedError,
        ):
            return True
        current = current.__cause__
    return False


__all__ = [
    "CALL_STATUS",
    "ERROR_CODES",
    "FAX_STATUS",
    "MESSAGE_STATUS",
    "SUPPRESSING",
    "Suppression",
    "api_error",
    "call_outcome",
    "code_fault",
    "code_of",
    "error_fault",
    "error_outcome",
    "failed_outcome",
    "fax_outcome",
    "message_outcome",
    "retry_after",
    "suppressing",
    "suppression_for",
    "transport_outcome",
]
