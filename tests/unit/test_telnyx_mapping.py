"""Telnyx fax statuses and failure reasons as outcomes, row by row."""

from __future__ import annotations

import pytest

from callgate.domain import Outcome
from callgate.providers.telnyx_mapping import (
    FAILURE_REASONS,
    failure_outcome,
    fax_outcome,
    fax_result,
)

O = Outcome  # noqa: E741 - the tables read better short

#: every failure_reason the Telnyx SDK documents on ``Fax.failure_reason`` (4.x)
DOCUMENTED = [
    "receiver_call_dropped",
    "sender_call_dropped",
    "sender_canceled",
    "carrier_lost",
    "service_unavailable",
    "fax_signaling_error",
    "receiver_communication_error",
    "sender_communication_error",
    "receiver_decline",
    "receiver_recovery_on_timer_expire",
    "receiver_no_response",
    "receiver_invalid_number_format",
    "receiver_no_answer",
    "receiver_incompatible_destination",
    "receiver_unallocated_number",
    "destination_unreachable",
    "user_busy",
    "invalid_ecm_response_from_receiver",
    "fax_initial_communication_timeout",
    "destination_not_in_service_plan",
    "account_disabled",
    "destination_invalid",
    "no_outbound_profile",
    "destination_not_in_countries_whitelist",
    "user_channel_limit_exceeded",
    "outbound_profile_channel_limit_exceeded",
    "connection_channel_limit_exceeded",
    "outbound_profile_daily_spend_limit_exceeded",
    "unverified_origination_number",
    "unverified_destination_not_allowed",
    "file_format_invalid",
    "file_download_failed",
    "file_size_limit_exceeded",
    "page_count_limit_exceeded",
    "media_processing_exception",
]


def test_every_documented_reason_is_mapped() -> None:
    assert sorted(FAILURE_REASONS) == sorted(DOCUMENTED)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("user_busy", O.BUSY),
        ("receiver_decline", O.BUSY),
        ("receiver_no_answer", O.NO_ANSWER),
        ("receiver_no_response", O.NO_ANSWER),
        ("receiver_recovery_on_timer_expire", O.NO_ANSWER),
        ("fax_initial_communication_timeout", O.LINE_FAILED),  # no fax tone
        ("fax_signaling_error", O.LINE_FAILED),
        ("invalid_ecm_response_from_receiver", O.LINE_FAILED),
        ("receiver_call_dropped", O.LINE_FAILED),
        ("receiver_communication_error", O.LINE_FAILED),
        ("receiver_incompatible_destination", O.LINE_FAILED),
        ("carrier_lost", O.LINE_FAILED),
        ("destination_unreachable", O.LINE_FAILED),
        ("receiver_invalid_number_format", O.PERMANENT),
        ("receiver_unallocated_number", O.PERMANENT),
        ("destination_invalid", O.PERMANENT),
        ("destination_not_in_countries_whitelist", O.PERMANENT),
        ("destination_not_in_service_plan", O.PERMANENT),
        ("unverified_destination_not_allowed", O.PERMANENT),
        ("file_format_invalid", O.PERMANENT),
        ("file_size_limit_exceeded", O.PERMANENT),
        ("page_count_limit_exceeded", O.PERMANENT),
        ("media_processing_exception", O.PERMANENT),
        ("user_channel_limit_exceeded", O.RATE_LIMITED),
        ("outbound_profile_channel_limit_exceeded", O.RATE_LIMITED),
        ("connection_channel_limit_exceeded", O.RATE_LIMITED),
        ("service_unavailable", O.PROVIDER_ERROR),
        ("sender_call_dropped", O.PROVIDER_ERROR),
        ("sender_communication_error", O.PROVIDER_ERROR),
        ("file_download_failed", O.PROVIDER_ERROR),
        ("account_disabled", O.PROVIDER_ERROR),
        ("no_outbound_profile", O.PROVIDER_ERROR),
        ("outbound_profile_daily_spend_limit_exceeded", O.PROVIDER_ERROR),
        ("unverified_origination_number", O.PROVIDER_ERROR),
        ("sender_canceled", O.CANCELED),
        ("something_new", O.LINE_FAILED),  # unknown: retried after the fax delay
        (None, O.LINE_FAILED),
    ],
)
def test_failure_reasons(reason: str | None, expected: Outcome) -> None:
    assert failure_outcome(reason) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("queued", None),
        ("media.processing", None),
        ("media.processed", None),
        ("originated", None),
        ("initiated", None),
        ("sending", None),
        ("delivered", O.DELIVERED),
        ("received", None),  # inbound: nothing we act on
    ],
)
def test_fax_statuses(status: str, expected: Outcome | None) -> None:
    assert fax_outcome(status) is expected


def test_a_failed_fax_resource_carries_its_reason() -> None:
    result = fax_result({"id": "f-1", "status": "failed", "failure_reason": "user_busy"})
    assert (result.outcome, result.provider_ref, result.error_code) == (O.BUSY, "f-1", "user_busy")
    assert fax_result({"id": "f-2", "status": "sending"}).outcome is None


def test_the_documented_reason_table_is_the_reason_table() -> None:
    from pathlib import Path

    docs = Path(__file__).parents[2] / "docs" / "providers.md"
    rows = {}
    for line in docs.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`") and cells[0].strip("`") in DOCUMENTED:
            rows[cells[0].strip("`")] = cells[1].strip("`")
    assert rows == {reason: str(outcome) for reason, outcome in FAILURE_REASONS.items()}
