"""What the HTTP simulator says: its records and their Twilio-, SignalWire- and Telnyx-shaped
JSON, error bodies, callback parameters and list filters.

The outcome of every call comes from :meth:`Simulator.next_outcome` (one source of truth
with the in-process simulator); this module only dresses it in each vendor's shapes.
"""

from __future__ import annotations

import email.utils
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from callgate.domain import AttemptResult, Kind, Outcome

#: the APIs a record belongs to
MESSAGE, CALL, SW_FAX, TELNYX_FAX = "message", "call", "signalwire-fax", "telnyx-fax"
KIND_OF: Mapping[str, Kind] = {
    MESSAGE: Kind.SMS,
    CALL: Kind.CALL,
    SW_FAX: Kind.FAX,
    TELNYX_FAX: Kind.FAX,
}

#: for permanent test numbers, the fax that Telnyx accepts and then fails, and why
TELNYX_PERMANENT: Mapping[str, str] = {
    "21612": "receiver_unallocated_number",
    "21408": "destination_not_in_countries_whitelist",
    "21610": "destination_invalid",
}

#: (status, error code, error message) each API shows for an outcome that ends later
FINAL: Mapping[str, Mapping[Outcome, tuple[str, str | None, str | None]]] = {
    MESSAGE: {
        Outcome.DELIVERED: ("delivered", None, None),
        Outcome.BUSY: ("undelivered", "30003", "Unreachable destination handset"),
        Outcome.NO_ANSWER: ("undelivered", "30003", "Unreachable destination handset"),
        Outcome.LINE_FAILED: ("undelivered", None, "Undelivered"),
        Outcome.PERMANENT: ("failed", "30005", "Unknown destination handset"),
        Outcome.CANCELED: ("canceled", None, None),
    },
    CALL: {
        Outcome.DELIVERED: ("completed", None, None),
        Outcome.BUSY: ("busy", None, None),
        Outcome.NO_ANSWER: ("no-answer", None, None),
        Outcome.LINE_FAILED: ("failed", None, None),
        Outcome.PERMANENT: ("failed", "13224", "Invalid phone number"),
        Outcome.CANCELED: ("canceled", None, None),
    },
    SW_FAX: {
        Outcome.DELIVERED: ("delivered", None, None),
        Outcome.BUSY: ("busy", "34002", "Fax: Callee Busy"),
        Outcome.NO_ANSWER: ("no-answer", "34003", "Fax: Callee did not answer"),
        Outcome.LINE_FAILED: ("failed", "34004", "Fax: Error during fax transmission"),
        Outcome.PERMANENT: ("failed", "21211", "Invalid 'To' Phone Number"),
        Outcome.CANCELED: ("canceled", None, None),
    },
    TELNYX_FAX: {
        Outcome.DELIVERED: ("delivered", None, None),
        Outcome.BUSY: ("failed", "user_busy", None),
        Outcome.NO_ANSWER: ("failed", "receiver_no_answer", None),
        Outcome.LINE_FAILED: ("failed", "fax_signaling_error", None),
        Outcome.PERMANENT: ("failed", "destination_invalid", None),
        Outcome.CANCELED: ("failed", "sender_canceled", None),
    },
}
PENDING: Mapping[str, str] = {
    MESSAGE: "queued",
    CALL: "queued",
    SW_FAX: "queued",
    TELNYX_FAX: "queued",
}


@dataclass
class SimRecord:
    """One message, call or fax the simulator accepted, and how it will end."""

    api: str
    sid: str
    account: str
    to: str
    from_: str | None
    created_at: float
    ends_at: float
    outcome: Outcome | None  # the simulator's verdict; None: never ends (unknown)
    callback: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # Body, MediaUrl, Twiml ...
    status: str = "queued"
    error_code: str | None = None
    error_message: str | None = None
    ended_at: float | None = None

    @property
    def kind(self) -> Kind:
        return KIND_OF[self.api]

    def finish(self, now: float) -> None:
        """Take the final status this record's outcome shows in its API."""
        if self.outcome is None:
            return
        self.status, self.error_code, self.error_message = FINAL[self.api][self.outcome]
        if self.api == TELNYX_FAX and self.fields.get("telnyx_reason"):
            self.status, self.error_code = "failed", self.fields["telnyx_reason"]
        self.ended_at = now


def final_for_telnyx(result: AttemptResult) -> str | None:
    """The ``failure_reason`` of a fax Telnyx accepts for a permanent test number."""
    return TELNYX_PERMANENT.get(result.error_code or "")


# -- time formats ----------------------------------------------------------------------


def rfc2822(ts: float | None) -> str | None:
    return None if ts is None else email.utils.format_datetime(datetime.fromtimestamp(ts, UTC))


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_bound(raw: str, *, end_of_day: bool = False) -> float:
    """A filter's time: a date-time (ISO 8601) or a date (its start, or its end)."""
    raw = raw.strip()
    if len(raw) == 10:  # YYYY-MM-DD: the whole day
        day = datetime.fromisoformat(raw).replace(tzinfo=UTC)
        return day.timestamp() + (86_400 - 1e-6 if end_of_day else 0.0)
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


# -- JSON shapes -----------------------------------------------------------------------


def twilio_json(rec: SimRecord, base: str) -> dict[str, Any]:
    """A Message, Call or (SignalWire) Fax resource as Twilio/SignalWire write it."""
    resource = {MESSAGE: "Messages", CALL: "Calls", SW_FAX: "Faxes"}[rec.api]
    uri = f"{base}/2010-04-01/Accounts/{rec.account}/{resource}/{rec.sid}.json"
    doc: dict[str, Any] = {
        "sid": rec.sid,
        "account_sid": rec.account,
        "to": rec.to,
        "from": rec.from_,
        "status": rec.status,
        "api_version": "2010-04-01",
        "price": None,
        "price_unit": "USD",
        "uri": uri,
        "error_code": None if rec.error_code is None else int(rec.error_code),
        "error_message": rec.error_message,
    }
    return doc | {MESSAGE: _message, CALL: _call, SW_FAX: _fax}[rec.api](rec, uri)


def _message(rec: SimRecord, uri: str) -> dict[str, Any]:
    return {
        "body": rec.fields.get("Body", ""),
        "num_media": str(len(rec.fields.get("MediaUrl", []))),
        "num_segments": "1",
        "direction": "outbound-api",
        "date_created": rfc2822(rec.created_at),
        "date_updated": rfc2822(rec.ended_at or rec.created_at),
        "date_sent": rfc2822(rec.ended_at),
        "messaging_service_sid": rec.fields.get("MessagingServiceSid"),
        "subresource_uris": {},
    }


def _call(rec: SimRecord, uri: str) -> dict[str, Any]:
    return {
        "direction": "outbound-api",
        "date_created": rfc2822(rec.created_at),
        "date_updated": rfc2822(rec.ended_at or rec.created_at),
        "start_time": rfc2822(rec.created_at),
        "end_time": rfc2822(rec.ended_at),
        "duration": None if rec.ended_at is None else str(int(rec.ended_at - rec.created_at)),
        "answered_by": None,
        "subresource_uris": {},
    }


def _fax(rec: SimRecord, uri: str) -> dict[str, Any]:
    return {
        "api_version": "v1",
        "direction": "outbound",
        "date_created": iso(rec.created_at),
        "date_updated": iso(rec.ended_at or rec.created_at),
        "media_url": rec.fields.get("MediaUrl"),
        "media_sid": None,
        "num_pages": "1" if rec.status == "delivered" else None,
        "quality": "fine",
        "duration": 0 if rec.ended_at is None else int(rec.ended_at - rec.created_at),
        "url": uri,
        "error_code": rec.error_code,  # SignalWire writes it as a string
    }


def telnyx_json(rec: SimRecord) -> dict[str, Any]:
    """A Telnyx ``Fax`` record."""
    return {
        "id": rec.sid,
        "record_type": "fax",
        "connection_id": rec.fields.get("connection_id"),
        "direction": "outbound",
        "from": rec.from_,
        "to": rec.to,
        "media_url": rec.fields.get("media_url"),
        "status": rec.status,
        "failure_reason": rec.error_code,
        "quality": "high",
        "store_media": False,
        "webhook_url": rec.callback,
        "client_state": None,
        "created_at": iso(rec.created_at),
        "updated_at": iso(rec.ended_at or rec.created_at),
    }


#: what a create request names beside its own parameters (not logged as ``params``)
OWN_FIELDS = frozenset(
    {"To", "From", "Body", "MediaUrl", "StatusCallback", "StatusCallbackEvent",
     "StatusCallbackMethod", "Twiml", "Url", "family"}
)  # fmt: skip


def passed_params(form: Mapping[str, Any]) -> dict[str, str]:
    """The Twilio parameters a create request carried beyond the usual ones."""
    return {k: str(form[k]) for k in form if k not in OWN_FIELDS}


#: a Messaging Service SID of the right shape that no account has (Twilio's 21701)
MISSING_SERVICE = "MG" + "0" * 32
SERVICE_SID = re.compile(r"MG[0-9a-f]{32}")


def messaging_service_check(form: Mapping[str, Any], result: AttemptResult) -> AttemptResult:
    """A message's sender as Twilio checks it: a ``MessagingServiceSid`` must look like
    one (21705) and exist (21701: :data:`MISSING_SERVICE` does not); without one, a
    ``From`` is required (21603). Else the simulated outcome stands."""
    service = str(form.get("MessagingServiceSid") or "")
    if service and not SERVICE_SID.fullmatch(service):
        return AttemptResult(
            Outcome.PERMANENT, error_code="21705", error_message="The Messaging Service is invalid"
        )
    if service == MISSING_SERVICE:
        return AttemptResult(
            Outcome.PERMANENT,
            error_code="21701",
            error_message="The Messaging Service does not exist",
        )
    if not service and not form.get("From"):
        return AttemptResult(
            Outcome.PERMANENT,
            error_code="21603",
            error_message="A 'From' phone number is required.",
        )
    return result


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's error body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def telnyx_error(code: str, title: str, detail: str, pointer: str | None = None) -> dict[str, Any]:
    """Telnyx's error body."""
    error: dict[str, Any] = {"code": code, "title": title, "detail": detail}
    if pointer:
        error["source"] = {"pointer": pointer}
    return {"errors": [error]}


# -- callbacks -------------------------------------------------------------------------


def twilio_callback(rec: SimRecord, status: str) -> dict[str, str]:
    """The form a Twilio/SignalWire status callback posts for ``rec`` at ``status``."""
    params = {
        "AccountSid": rec.account,
        "ApiVersion": "2010-04-01",
        "To": rec.to,
        "From": rec.from_ or "",
    }
    if rec.api == MESSAGE:
        params |= {
            "MessageSid": rec.sid,
            "SmsSid": rec.sid,
            "MessageStatus": status,
            "SmsStatus": status,
        }
    elif rec.api == CALL:
        params |= {
            "CallSid": rec.sid,
            "CallStatus": status,
            "Direction": "outbound-api",
            "CallbackSource": "call-progress-events",
            "Timestamp": rfc2822(rec.ended_at or rec.created_at) or "",
            "CallDuration": str(int((rec.ended_at or rec.created_at) - rec.created_at)),
        }
    else:
        params |= {
            "FaxSid": rec.sid,
            "FaxStatus": status,
            "OriginalMediaUrl": str(rec.fields.get("MediaUrl") or ""),
            "NumPages": "1" if status == "delivered" else "0",
        }
    if rec.error_code and status == rec.status:
        params["ErrorCode"] = rec.error_code
        if rec.error_message:
            params["ErrorMessage"] = rec.error_message
    return params


def telnyx_event(rec: SimRecord, event_type: str, event_id: str, now: float) -> dict[str, Any]:
    """A Telnyx fax webhook body."""
    status = {"fax.queued": "queued", "fax.sending.started": "sending"}.get(event_type, rec.status)
    payload: dict[str, Any] = {
        "fax_id": rec.sid,
        "connection_id": rec.fields.get("connection_id"),
        "direction": "outbound",
        "from": rec.from_,
        "to": rec.to,
        "original_media_url": rec.fields.get("media_url"),
        "status": status,
        "user_id": "simulator",
    }
    if event_type == "fax.failed":
        payload["failure_reason"] = rec.error_code
    if event_type == "fax.delivered":
        payload |= {"page_count": 1, "call_duration_secs": int(now - rec.created_at)}
    return {
        "data": {
            "event_type": event_type,
            "id": event_id,
            "occurred_at": iso(now),
            "record_type": "event",
            "payload": payload,
        },
        "meta": {"attempt": 1, "delivered_to": rec.callback},
    }


# -- listing ---------------------------------------------------------------------------


def twilio_matches(rec: SimRecord, query: Mapping[str, str]) -> bool:
    """Twilio's list filters: ``To``, ``From`` and, by resource, ``DateSent``/
    ``StartTime`` (``>`` on or after, ``<`` on or before) or SignalWire's
    ``DateCreatedAfter``/``DateCreatedOnOrBefore``."""
    if query.get("To") and rec.to != query["To"]:
        return False
    if query.get("From") and rec.from_ != query["From"]:
        return False
    name = {MESSAGE: "DateSent", CALL: "StartTime"}.get(rec.api)
    if name is None:
        after, before = query.get("DateCreatedAfter"), query.get("DateCreatedOnOrBefore")
        return _within(rec.created_at, after, before, strictly_after=True)
    when = rec.ended_at if rec.api == MESSAGE else rec.created_at  # unsent: no sent date
    return _within(when, query.get(name + ">"), query.get(name + "<"))


def _within(
    when: float | None, after: str | None, before: str | None, *, strictly_after: bool = False
) -> bool:
    if not (after or before):
        return True
    if when is None:
        return False
    if after:
        low = parse_bound(after, end_of_day=strictly_after)
        if when < low or (strictly_after and when == low):
            return False
    return not (before and when > parse_bound(before, end_of_day=True))


#: Telnyx's ``filter[created_at][op]`` comparisons
CREATED_AT: Mapping[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def telnyx_matches(rec: SimRecord, query: Mapping[str, str]) -> bool:
    """Telnyx's ``filter[to][eq]``, ``filter[from][eq]``, ``filter[created_at][gt|gte|lt|lte]``."""
    if query.get("filter[to][eq]") and rec.to != query["filter[to][eq]"]:
        return False
    if query.get("filter[from][eq]") and rec.from_ != query["filter[from][eq]"]:
        return False
    for op, holds in CREATED_AT.items():
        raw = query.get(f"filter[created_at][{op}]")
        if raw and not holds(rec.created_at, parse_bound(raw, end_of_day=op.startswith("l"))):
            return False
    return True
