"""Provider status callbacks: check the signature, read the status (pure; no store, no I/O).

* Twilio signs ``X-Twilio-Signature``: base64 HMAC-SHA1, keyed with the auth token, of
  the full callback URL followed by the POST parameters sorted by name (checked with the
  SDK's ``RequestValidator``).
* SignalWire signs the same way with the project's *Signing Key*, in
  ``X-SignalWire-Signature`` (and ``X-Twilio-Signature``, for compatibility).
* Telnyx signs ``telnyx-signature-ed25519``: base64 Ed25519 signature of
  ``f"{telnyx-timestamp}|{raw body}"``; a timestamp further than ``tolerance`` seconds
  from now is refused (a replayed webhook).

Each ``parse_*`` returns a :class:`StatusUpdate` or raises :class:`CallbackRejected`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from twilio.request_validator import RequestValidator

from callgate import jsonlimits
from callgate.domain import AttemptResult, Kind, Outcome
from callgate.exceptions import CallgateError, ValidationError
from callgate.providers import telnyx_mapping
from callgate.providers.twilio_mapping import call_outcome, fax_outcome, message_outcome

TWILIO_SIGNATURE = "x-twilio-signature"
SIGNALWIRE_SIGNATURE = "x-signalwire-signature"
TELNYX_SIGNATURE = "telnyx-signature-ed25519"
TELNYX_TIMESTAMP = "telnyx-timestamp"
#: seconds a Telnyx webhook's timestamp may be from now (theirs and the SDK's default)
TELNYX_TOLERANCE = 300.0
#: fields of a form-encoded callback (Twilio sends about 30)
MAX_FORM_FIELDS = 1000
_STAMP = re.compile(r"[0-9]{1,12}")


class CallbackRejected(CallgateError):
    """The callback was refused: its signature does not check out."""

    code = "forbidden"
    status = 403


class CallbackMalformed(CallbackRejected):
    """The callback is signed but does not say which attempt or what status."""

    code = "invalid_request"
    status = 400


class StatusUpdate(NamedTuple):
    """What a callback said: about which attempt (its provider reference), and how it
    stands (``result.outcome`` None: still under way)."""

    ref: str
    result: AttemptResult
    kind: Kind


def form_params(body: bytes | str | Mapping[str, str]) -> dict[str, str]:
    """The POST parameters of a form-encoded callback (the raw body, or already parsed)."""
    if isinstance(body, Mapping):
        return {str(k): str(v) for k, v in body.items()}
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS))
    except ValueError as exc:  # more fields than any vendor sends
        raise CallbackMalformed(str(exc), field="body") from None


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def verify_twilio_signature(
    url: str,
    headers: Mapping[str, str],
    params: Mapping[str, str],
    key: str,
    *,
    names: tuple[str, ...] = (TWILIO_SIGNATURE,),
) -> None:
    """Raise :class:`CallbackRejected` unless one of the ``names`` headers carries the
    signature of ``url`` + ``params`` under ``key``."""
    found = _lower(headers)
    signatures = [found[n] for n in names if found.get(n)]
    if not signatures:
        raise CallbackRejected(f"no {names[0]} header", field=names[0])
    validator = RequestValidator(key)
    if not any(validator.validate(url, dict(params), s) for s in signatures):
        raise CallbackRejected("the signature does not match this URL and body", field=names[0])


def parse_twilio_status(
    url: str,
    headers: Mapping[str, str],
    body: bytes | str | Mapping[str, str],
    *,
    auth_token: str,
    accept_sent: bool = False,
) -> StatusUpdate:
    """A Twilio Message or Call status callback, signature checked with ``auth_token``."""
    params = form_params(body)
    verify_twilio_signature(url, headers, params, auth_token)
    return twilio_status_update(params, accept_sent=accept_sent)


def parse_signalwire_status(
    url: str,
    headers: Mapping[str, str],
    body: bytes | str | Mapping[str, str],
    *,
    signing_key: str,
    accept_sent: bool = False,
) -> StatusUpdate:
    """A SignalWire Fax (or Message, Call) status callback, checked with the Signing Key."""
    params = form_params(body)
    names = (SIGNALWIRE_SIGNATURE, TWILIO_SIGNATURE)
    verify_twilio_signature(url, headers, params, signing_key, names=names)
    return twilio_status_update(params, accept_sent=accept_sent)


def twilio_status_update(params: Mapping[str, str], *, accept_sent: bool = False) -> StatusUpdate:
    """Read a Twilio-shaped status callback: ``FaxSid``/``FaxStatus``,
    ``MessageSid``/``MessageStatus`` or ``CallSid``/``CallStatus`` (and ``ErrorCode``)."""
    code = params.get("ErrorCode") or None
    message = params.get("ErrorMessage") or None
    if params.get("FaxSid"):
        ref, status, kind = params["FaxSid"], params.get("FaxStatus"), Kind.FAX
        outcome = fax_outcome(status, code)
    elif params.get("MessageSid") or params.get("SmsSid"):
        ref = params.get("MessageSid") or params["SmsSid"]
        status = params.get("MessageStatus") or params.get("SmsStatus")
        kind = Kind.SMS
        outcome = message_outcome(status, code, accept_sent=accept_sent)
    elif params.get("CallSid"):
        ref, status, kind = params["CallSid"], params.get("CallStatus"), Kind.CALL
        outcome = call_outcome(status, code)
    else:
        raise CallbackMalformed("no FaxSid, MessageSid or CallSid in the callback", field="body")
    if not status:
        raise CallbackMalformed(f"no status for {ref}", field="body")
    if outcome is not None and outcome is not Outcome.DELIVERED and message is None:
        message = f"{kind} {status}"
    return StatusUpdate(ref, AttemptResult(outcome, ref, code, message), kind)


def verify_telnyx_signature(
    headers: Mapping[str, str],
    body: bytes,
    public_key: str,
    *,
    now: float,
    tolerance: float = TELNYX_TOLERANCE,
) -> None:
    """Raise :class:`CallbackRejected` unless ``body`` carries a valid Ed25519 signature
    by ``public_key`` (base64) made within ``tolerance`` seconds of ``now``."""
    found = _lower(headers)
    stamp, signature = found.get(TELNYX_TIMESTAMP), found.get(TELNYX_SIGNATURE)
    if not signature:
        raise CallbackRejected(f"no {TELNYX_SIGNATURE} header", field=TELNYX_SIGNATURE)
    if not stamp or not _STAMP.fullmatch(stamp.strip()):  # unix seconds, ASCII digits
        raise CallbackRejected(f"no valid {TELNYX_TIMESTAMP} header", field=TELNYX_TIMESTAMP)
    if abs(now - int(stamp)) > tolerance:
        raise CallbackRejected(
            f"the timestamp is more than {tolerance:.0f} s from now (a replay?)",
            field=TELNYX_TIMESTAMP,
        )
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CallbackRejected(
            f"unreadable key or signature: {exc}", field=TELNYX_SIGNATURE
        ) from exc
    try:
        key.verify(raw, stamp.strip().encode() + b"|" + body)
    except InvalidSignature:
        raise CallbackRejected(
            "the signature does not match this body", field=TELNYX_SIGNATURE
        ) from None


def parse_telnyx_event(
    headers: Mapping[str, str],
    body: bytes,
    *,
    public_key: str,
    now: float,
    tolerance: float = TELNYX_TOLERANCE,
) -> StatusUpdate:
    """A Telnyx fax webhook (``fax.queued`` ... ``fax.delivered``/``fax.failed``)."""
    verify_telnyx_signature(headers, body, public_key, now=now, tolerance=tolerance)
    try:
        doc = jsonlimits.loads(body, field="body")
    except ValidationError as exc:  # signed, but beyond the limits
        raise CallbackMalformed(exc.message, field="body") from exc
    except ValueError as exc:
        raise CallbackMalformed("the body is not JSON", field="body") from exc
    event = doc.get("data", doc) if isinstance(doc, dict) else None
    payload = event.get("payload") if isinstance(event, dict) else None
    if not isinstance(event, dict) or not isinstance(payload, dict):
        raise CallbackMalformed("no data.payload in the event", field="body")
    ref = payload.get("fax_id") or payload.get("id")
    if not isinstance(ref, str) or not ref:
        raise CallbackMalformed("no fax_id in the event", field="body")
    event_type = str(event.get("event_type") or "")
    status = telnyx_mapping.EVENT_STATUS.get(event_type) or payload.get("status")
    return StatusUpdate(ref, _telnyx_result(ref, status, payload, event), Kind.FAX)


def _telnyx_result(
    ref: str, status: object, payload: Mapping[str, Any], event: Mapping[str, Any]
) -> AttemptResult:
    reason = payload.get("failure_reason") or None
    outcome = telnyx_mapping.fax_outcome(str(status) if status else None, reason)
    ended = None
    if outcome is not None and isinstance(event.get("occurred_at"), str):
        try:
            ended = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")).timestamp()
        except ValueError:
            ended = None
    message = None if outcome is None or reason is None else f"fax {reason}"
    return AttemptResult(outcome, ref, reason, message, ended_at=ended)


__all__ = [
    "CallbackMalformed",
    "CallbackRejected",
    "StatusUpdate",
    "form_params",
    "parse_signalwire_status",
    "parse_telnyx_event",
    "parse_twilio_status",
    "twilio_status_update",
    "verify_telnyx_signature",
    "verify_twilio_signature",
]
