"""Twilio's statuses and error codes as outcomes, row by row (docs/providers.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import aiohttp
import httpx
import pytest

from callgate.domain import AttemptResult, Fault, Kind, Outcome
from callgate.providers.twilio_mapping import (
    ERROR_CODES,
    Suppression,
    api_error,
    call_outcome,
    code_fault,
    error_fault,
    error_outcome,
    fax_outcome,
    message_outcome,
    retry_after,
    suppressing,
    suppression_for,
    transport_outcome,
)

O = Outcome  # noqa: E741 - the tables read better short


@pytest.mark.parametrize(
    ("http_status", "code", "expected"),
    [
        (429, None, O.RATE_LIMITED),
        (429, 20429, O.RATE_LIMITED),
        (400, 20429, O.RATE_LIMITED),
        (400, 21611, O.RATE_LIMITED),  # the From number's queue is full
        (500, None, O.PROVIDER_ERROR),
        (502, None, O.PROVIDER_ERROR),
        (503, 20503, O.PROVIDER_ERROR),
        (401, 20003, O.PROVIDER_ERROR),  # wrong credentials fail the account, not the job
        (401, None, O.PROVIDER_ERROR),
        (None, None, O.PROVIDER_ERROR),
        (400, 21211, O.PERMANENT),
        (400, 21612, O.PERMANENT),
        (400, 21408, O.PERMANENT),
        (400, 21610, O.PERMANENT),
        (400, 21614, O.PERMANENT),
        (400, 21635, O.PERMANENT),
        (400, "21211", O.PERMANENT),  # callbacks carry codes as strings
        (400, 99999, O.PERMANENT),  # any other 4xx
        (403, None, O.PROVIDER_ERROR),  # forbidden: the account's (a run opens the circuit)
        (404, 20404, O.PERMANENT),
        (500, 21211, O.PERMANENT),  # a known code decides over the HTTP status
    ],
)
def test_api_errors(http_status: int | None, code: object, expected: Outcome) -> None:
    assert error_outcome(http_status, code) is expected


@pytest.mark.parametrize(
    ("http_status", "code", "expected"),
    [
        (401, 20003, Fault.AUTH),  # wrong credentials: the provider, not the job
        (401, None, Fault.AUTH),
        (400, 20005, Fault.AUTH),  # the account is not active
        (400, 30002, Fault.AUTH),  # the account is suspended
        (403, None, Fault.ACCESS),
        (403, 21408, None),  # no permission for this number's region: the job's own
        (500, None, Fault.OUTAGE),
        (503, 20503, Fault.OUTAGE),
        (None, None, Fault.OUTAGE),  # no answer at all
        (400, 21211, None),  # the number: the job's own
        (500, 21211, None),  # a known code of the job's own decides over the status
        (400, 99999, None),
        (429, 20429, None),  # a rate limit is metered, not a fault
    ],
)
def test_faults_are_the_providers_own_errors(
    http_status: int | None, code: object, expected: Fault | None
) -> None:
    assert error_fault(http_status, code) is expected
    assert api_error(http_status or 500, {"code": code}).fault is (
        error_fault(http_status or 500, code)
    )


def test_a_message_failed_for_the_account_is_a_fault() -> None:
    assert code_fault(30002) is Fault.AUTH
    assert code_fault("20003") is Fault.AUTH
    assert code_fault(30003) is None


@pytest.mark.parametrize(
    ("status", "code", "accept_sent", "expected"),
    [
        ("queued", None, False, None),
        ("accepted", None, False, None),
        ("scheduled", None, False, None),
        ("sending", None, False, None),
        ("sent", None, False, None),  # waiting for the delivery receipt
        ("sent", None, True, O.DELIVERED),
        ("delivered", None, False, O.DELIVERED),
        ("delivered", None, True, O.DELIVERED),
        ("canceled", None, False, O.CANCELED),
        ("undelivered", 30003, False, O.NO_ANSWER),  # handset off: try later
        ("undelivered", 30005, False, O.PERMANENT),
        ("undelivered", 30006, False, O.PERMANENT),  # landline
        ("undelivered", 30007, False, O.PERMANENT),
        ("undelivered", 21610, False, O.PERMANENT),
        ("undelivered", 30001, False, O.RATE_LIMITED),
        ("undelivered", None, False, O.LINE_FAILED),
        ("undelivered", 12345, False, O.LINE_FAILED),
        ("failed", 30008, False, O.PROVIDER_ERROR),
        ("failed", 30002, False, O.PROVIDER_ERROR),
        ("failed", 21614, False, O.PERMANENT),
        ("failed", None, False, O.PROVIDER_ERROR),
        ("receiving", None, False, None),  # a status we do not know: keep polling
        (None, None, False, None),
    ],
)
def test_message_statuses(
    status: str | None, code: object, accept_sent: bool, expected: Outcome | None
) -> None:
    assert message_outcome(status, code, accept_sent=accept_sent) is expected


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("queued", None, None),
        ("initiated", None, None),
        ("ringing", None, None),
        ("in-progress", None, None),
        ("busy", None, O.BUSY),
        ("no-answer", None, O.NO_ANSWER),
        ("completed", None, O.DELIVERED),
        ("canceled", None, O.CANCELED),
        ("failed", None, O.LINE_FAILED),
        ("failed", 13224, O.PERMANENT),
        ("failed", 21211, O.PERMANENT),
    ],
)
def test_call_statuses(status: str, code: object, expected: Outcome | None) -> None:
    assert call_outcome(status, code) is expected


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("queued", None, None),
        ("processing", None, None),
        ("sending", None, None),
        ("delivered", None, O.DELIVERED),
        ("busy", None, O.BUSY),
        ("no-answer", None, O.NO_ANSWER),
        ("canceled", None, O.CANCELED),
        ("failed", None, O.LINE_FAILED),  # no fax tone, paper out, dropped: try later
        ("failed", "34004", O.LINE_FAILED),
        ("failed", "34002", O.BUSY),
        ("failed", "34003", O.NO_ANSWER),
        ("failed", "21211", O.PERMANENT),  # an invalid number stays invalid
        ("failed", "21612", O.PERMANENT),
    ],
)
def test_fax_statuses(status: str, code: object, expected: Outcome | None) -> None:
    assert fax_outcome(status, code) is expected


@pytest.mark.parametrize(
    ("code", "kind", "expected"),
    [
        (21610, Kind.SMS, Suppression(Kind.SMS, "unsubscribed")),
        ("21610", Kind.SMS, Suppression(Kind.SMS, "unsubscribed")),
        (21614, Kind.SMS, Suppression(Kind.SMS, "not_sms_capable")),
        (21635, Kind.SMS, Suppression(Kind.SMS, "landline")),
        (30006, Kind.SMS, Suppression(Kind.SMS, "landline")),
        (60205, Kind.REQUEST, Suppression(Kind.SMS, "landline")),  # a Verify by SMS
        (21610, Kind.FAX, None),  # faxes and calls to the number are not affected
        (21614, Kind.CALL, None),
        (21211, Kind.SMS, None),  # permanent, but not a reason to suppress the number
        (None, Kind.SMS, None),
    ],
)
def test_suppression_hints(code: object, kind: Kind, expected: Suppression | None) -> None:
    assert suppression_for(code, kind) == expected


def test_every_table_row_has_a_description() -> None:
    assert all(meaning for _, meaning in ERROR_CODES.values())


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert retry_after("7", now) == 7.0
    assert retry_after(format_datetime(datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)), now) == 30.0
    assert retry_after(None, now) is None
    assert retry_after("soon", now) is None


def test_an_api_error_carries_code_message_and_wait() -> None:
    body = {"code": 20429, "message": "Too Many Requests", "status": 429}
    result = api_error(429, body, retry_after_header="3")
    assert (result.outcome, result.error_code, result.error_message, result.retry_after) == (
        O.RATE_LIMITED,
        "20429",
        "Too Many Requests",
        3.0,
    )
    plain = api_error(502, {}, text="<html>bad gateway</html>")
    assert (plain.outcome, plain.error_code, plain.retry_after) == (O.PROVIDER_ERROR, "502", None)


def test_no_answer_at_all_is_unknown_unless_nothing_was_sent() -> None:
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
        ConnectionRefusedError(111, "refused"),
    )
    assert transport_outcome(refused) is O.PROVIDER_ERROR
    assert transport_outcome(httpx.ConnectError("refused")) is O.PROVIDER_ERROR
    wrapped = RuntimeError("sdk")
    wrapped.__cause__ = httpx.ConnectTimeout("connect")
    assert transport_outcome(wrapped) is O.PROVIDER_ERROR
    # the request went out and no answer came: the provider may have acted on it
    assert transport_outcome(TimeoutError()) is O.UNKNOWN
    assert transport_outcome(aiohttp.ServerDisconnectedError()) is O.UNKNOWN
    assert transport_outcome(httpx.ReadTimeout("read")) is O.UNKNOWN
    # unless asking again is harmless
    assert transport_outcome(TimeoutError(), idempotent=True) is O.PROVIDER_ERROR


def test_the_documented_code_table_is_the_code_table() -> None:
    from pathlib import Path

    docs = Path(__file__).parents[2] / "docs" / "providers.md"
    rows = {}
    for line in docs.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            rows[int(cells[0])] = cells[2].split("`")[1]
    assert rows == {code: str(outcome) for code, (outcome, _) in ERROR_CODES.items()}


def test_a_permanent_result_carries_its_suppression_hint() -> None:
    """The adapter reports the hint in its result; other outcomes and kinds carry none."""
    unsubscribed = AttemptResult(Outcome.PERMANENT, error_code="21610")
    assert suppressing(unsubscribed, Kind.SMS).suppress == Suppression(Kind.SMS, "unsubscribed")
    assert suppressing(unsubscribed, Kind.FAX).suppress is None
    assert suppressing(AttemptResult(Outcome.BUSY, error_code="21610"), Kind.SMS).suppress is None
    assert suppressing(AttemptResult(Outcome.PERMANENT, error_code="21211"), "sms").suppress is None
