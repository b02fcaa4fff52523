"""Telnyx fax statuses, webhook events and failure reasons as callgate outcomes.

Pure tables and functions (no SDK import: the ``telnyx`` package takes seconds to
import, and the callback parsers need only these).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from callgate.domain import AttemptResult, Fault, Outcome

#: a fax's ``status`` (resource) or the event's status → outcome; "failed" by reason
FAX_STATUS: Mapping[str, Outcome | None] = {
    "queued": None,
    "media.processing": None,
    "media.processed": None,
    "originated": None,
    "initiated": None,
    "sending": None,
    "sending.started": None,
    "delivered": Outcome.DELIVERED,
}

#: webhook event types → the status they announce
EVENT_STATUS: Mapping[str, str] = {
    "fax.queued": "queued",
    "fax.media.processed": "media.processed",
    "fax.sending.started": "sending",
    "fax.delivered": "delivered",
    "fax.failed": "failed",
}

#: every documented ``failure_reason`` of an outbound fax → outcome
FAILURE_REASONS: Mapping[str, Outcome] = {
    # the line was busy, or nobody (no machine) picked up: retry after the fax delay
    "user_busy": Outcome.BUSY,
    "receiver_decline": Outcome.BUSY,
    "receiver_no_answer": Outcome.NO_ANSWER,
    "receiver_no_response": Outcome.NO_ANSWER,
    "receiver_recovery_on_timer_expire": Outcome.NO_ANSWER,
    # the call connected (or nearly) but the fax did not go through: the line's fault
    "fax_initial_communication_timeout": Outcome.LINE_FAILED,
    "fax_signaling_error": Outcome.LINE_FAILED,
    "invalid_ecm_response_from_receiver": Outcome.LINE_FAILED,
    "receiver_call_dropped": Outcome.LINE_FAILED,
    "receiver_communication_error": Outcome.LINE_FAILED,
    "receiver_incompatible_destination": Outcome.LINE_FAILED,
    "carrier_lost": Outcome.LINE_FAILED,
    "destination_unreachable": Outcome.LINE_FAILED,
    # the number or the document, for good
    "receiver_invalid_number_format": Outcome.PERMANENT,
    "receiver_unallocated_number": Outcome.PERMANENT,
    "destination_invalid": Outcome.PERMANENT,
    "destination_not_in_countries_whitelist": Outcome.PERMANENT,
    "destination_not_in_service_plan": Outcome.PERMANENT,
    "unverified_destination_not_allowed": Outcome.PERMANENT,
    "file_format_invalid": Outcome.PERMANENT,
    "file_size_limit_exceeded": Outcome.PERMANENT,
    "page_count_limit_exceeded": Outcome.PERMANENT,
    "media_processing_exception": Outcome.PERMANENT,
    # too many at once: not an attempt, slow down
    "user_channel_limit_exceeded": Outcome.RATE_LIMITED,
    "outbound_profile_channel_limit_exceeded": Outcome.RATE_LIMITED,
    "connection_channel_limit_exceeded": Outcome.RATE_LIMITED,
    # Telnyx's side, or the account's configuration: back off, let the breaker see it
    "service_unavailable": Outcome.PROVIDER_ERROR,
    "sender_call_dropped": Outcome.PROVIDER_ERROR,
    "sender_communication_error": Outcome.PROVIDER_ERROR,
    "file_download_failed": Outcome.PROVIDER_ERROR,
    "account_disabled": Outcome.PROVIDER_ERROR,
    "no_outbound_profile": Outcome.PROVIDER_ERROR,
    "outbound_profile_daily_spend_limit_exceeded": Outcome.PROVIDER_ERROR,
    "unverified_origination_number": Outcome.PROVIDER_ERROR,
    # we (or someone with the API key) canceled it
    "sender_canceled": Outcome.CANCELED,
}


#: failure reasons that are Telnyx's own fault or the account's (its circuit counts them)
FAULTS: Mapping[str, Fault] = {
    "account_disabled": Fault.AUTH,
    "no_outbound_profile": Fault.AUTH,
    "service_unavailable": Fault.OUTAGE,
}


def failure_outcome(reason: str | None) -> Outcome:
    """A failed fax's ``failure_reason``; one we do not know is a line failure (retried
    after the fax delay, never given up on at once)."""
    return FAILURE_REASONS.get(reason or "", Outcome.LINE_FAILED)


def fax_outcome(status: str | None, failure_reason: str | None = None) -> Outcome | None:
    """A fax's status: pending ones → None, delivered, failed → by its reason."""
    if status == "failed":
        return failure_outcome(failure_reason)
    return FAX_STATUS.get(status or "")


def fax_result(fax: Any) -> AttemptResult:
    """A Telnyx ``Fax`` (SDK model or plain dict) as an attempt result."""

    def get(key: str) -> Any:
        return fax.get(key) if isinstance(fax, Mapping) else getattr(fax, key, None)

    status, reason = get("status"), get("failure_reason")
    outcome = fax_outcome(status, reason)
    updated = get("updated_at")
    return AttemptResult(
        outcome,
        provider_ref=get("id") or get("fax_id"),
        error_code=reason,
        error_message=None if outcome is None or outcome is Outcome.DELIVERED else f"fax {reason}",
        ended_at=updated.timestamp() if outcome and isinstance(updated, datetime) else None,
        fault=FAULTS.get(reason or "") if status == "failed" else None,
    )
