"""What a webhook says: the standard body, or vote/fax_gateway's callback format."""

from __future__ import annotations

from typing import Any

from callgate.domain import Event, Job, Status, iso

#: fax_gateway's three statuses for our events
FAX_GATEWAY_STATUS = {
    Status.DELIVERED: "sent",
    Status.RETRYING: "tmp_fail",
}


def standard_body(event: Event, job: Job) -> dict[str, Any]:
    """``{"type", "timestamp", "data": {job}}``; the job as it was at the event."""
    data = job.to_dict() | {
        "status": str(event.status),
        "reason": event.reason,
        "detail": event.detail,
        "event_id": event.id,
    }
    if event.attempts is not None:
        data["attempts"] = event.attempts
    return {"type": event.type, "timestamp": iso(event.created_at), "data": data}


def fax_gateway_body(
    event: Event, job: Job, max_attempts: int, last_outcome: str | None
) -> dict[str, Any]:
    """``{"fax_id", "status", "message", "timestamp"}`` as vote/fax_gateway sends them."""
    status = FAX_GATEWAY_STATUS.get(event.status, "perm_fail")
    attempt = event.attempts or 0
    outcome = (event.reason if event.status is Status.RETRYING else last_outcome) or "unknown"
    if status == "sent":
        message = "Fax sent successfully"
    elif status == "tmp_fail":
        message = (
            f"Failed to deliver fax (attempt {attempt} of {max_attempts}). Fax status: {outcome}"
        )
    elif event.reason == "max_attempts":
        message = f"Failed to deliver fax after {attempt} tries. Last attempt status: {outcome}"
    else:
        message = f"Failed to deliver fax: {event.detail or event.reason or event.status}"
    return {
        "fax_id": job.metadata.get("fax_id", job.idempotency_key),
        "status": status,
        "message": message,
        "timestamp": int(event.created_at.timestamp()),
    }
