"""The HTTP simulator's shapes and list filters, and the Twilio request builder."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from callgate.domain import Kind, Outcome
from callgate.providers.simulator import wire
from callgate.providers.twilio import ApiCall, api_call
from tests.factories import in_flight_job

T0 = datetime(2030, 3, 17, 12, 0, tzinfo=UTC).timestamp()


def record(api: str, *, created: float = T0, ended: float | None = None) -> wire.SimRecord:
    rec = wire.SimRecord(
        api, "SID1", "AC1", "+15005550006", "+15005550007", created, created, Outcome.DELIVERED
    )
    rec.ended_at = ended
    return rec


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, True),
        ({"To": "+15005550006"}, True),
        ({"To": "+15005550008"}, False),
        ({"From": "+15005550007"}, True),
        ({"DateSent>": "2030-03-17T11:59:00Z"}, True),
        ({"DateSent>": "2030-03-17T12:01:00Z"}, False),
        ({"DateSent>": "2030-03-17"}, True),  # a date: the whole day
        ({"DateSent<": "2030-03-17"}, True),
        ({"DateSent<": "2030-03-16"}, False),
    ],
)
def test_message_filters(query: dict[str, str], expected: bool) -> None:
    sent = record(wire.MESSAGE, ended=T0 + 30)
    assert wire.twilio_matches(sent, query) is expected


def test_an_unsent_message_has_no_sent_date_to_match() -> None:
    queued = record(wire.MESSAGE)
    assert wire.twilio_matches(queued, {"To": "+15005550006"}) is True
    assert wire.twilio_matches(queued, {"DateSent>": "2030-03-17"}) is False


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"DateCreatedAfter": "2030-03-17T11:00:00Z"}, True),
        ({"DateCreatedAfter": "2030-03-17T12:00:00Z"}, False),  # strictly after
        ({"DateCreatedOnOrBefore": "2030-03-17T12:00:00Z"}, True),
        ({"DateCreatedOnOrBefore": "2030-03-17T11:59:59Z"}, False),
    ],
)
def test_signalwire_fax_filters(query: dict[str, str], expected: bool) -> None:
    assert wire.twilio_matches(record(wire.SW_FAX), query) is expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"filter[to][eq]": "+15005550006"}, True),
        ({"filter[to][eq]": "+15005550009"}, False),
        ({"filter[created_at][gte]": "2030-03-17T12:00:00Z"}, True),
        ({"filter[created_at][gt]": "2030-03-17T12:00:00Z"}, False),
        ({"filter[created_at][lte]": "2030-03-17T12:00:00Z"}, True),
        ({"filter[created_at][lt]": "2030-03-17T12:00:00Z"}, False),
    ],
)
def test_telnyx_filters(query: dict[str, str], expected: bool) -> None:
    assert wire.telnyx_matches(record(wire.TELNYX_FAX), query) is expected


@pytest.mark.parametrize(
    ("api", "outcome", "status", "code"),
    [
        (wire.MESSAGE, Outcome.DELIVERED, "delivered", None),
        (wire.CALL, Outcome.BUSY, "busy", None),
        (wire.CALL, Outcome.NO_ANSWER, "no-answer", None),
        (wire.SW_FAX, Outcome.LINE_FAILED, "failed", "34004"),
        (wire.TELNYX_FAX, Outcome.BUSY, "failed", "user_busy"),
    ],
)
def test_outcomes_dress_as_each_api(
    api: str, outcome: Outcome, status: str, code: str | None
) -> None:
    rec = record(api)
    rec.outcome = outcome
    rec.finish(T0 + 5)
    assert (rec.status, rec.error_code, rec.ended_at) == (status, code, T0 + 5)


def request(payload: dict[str, object], to: str | None = "+15005550006") -> ApiCall:
    job = dataclasses.replace(in_flight_job(to or "+1", Kind.REQUEST), to=to, payload=payload)
    return api_call(job, "+15005550007")


def test_request_jobs_become_twilio_calls() -> None:
    lookup = request({"api": "lookup", "params": {"Fields": "caller_name"}})
    assert lookup == (
        "lookups",
        "GET",
        "/v2/PhoneNumbers/%2B15005550006",
        {"Fields": "caller_name"},
        {},
    )
    verify = request({"api": "verify", "params": {"ServiceSid": "VA1", "Channel": "call"}})
    assert verify == (
        "verify",
        "POST",
        "/v2/Services/VA1/Verifications",
        {},
        {"To": "+15005550006", "Channel": "call"},
    )
    studio = request({"api": "studio", "params": {"FlowSid": "FW1", "Parameters": {"a": 1}}})
    assert studio.form == {"To": "+15005550006", "From": "+15005550007", "Parameters": '{"a": 1}'}
    raw = request(
        {
            "api": "raw",
            "method": "POST",
            "params": {
                "domain": "messaging",
                "path": "/v1/Services",
                "params": {"FriendlyName": "x"},
            },
        }
    )
    assert raw == ("messaging", "POST", "/v1/Services", {}, {"FriendlyName": "x"})


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"api": "verify", "params": {}}, "ServiceSid"),
        ({"api": "studio", "params": {}}, "FlowSid"),
        ({"api": "fax"}, "unknown Twilio api"),
        ({"api": "raw", "params": {"domain": "evil", "path": "/x"}}, "unknown Twilio domain"),
        ({"api": "raw", "params": {"domain": "api", "path": "https://evil.example/x"}}, "path"),
        ({"api": "raw", "params": {"domain": "api", "path": "/v1/../../x"}}, "path"),
    ],
)
def test_requests_twilio_cannot_take(payload: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        request(payload)


def test_a_lookup_needs_a_number() -> None:
    with pytest.raises(ValueError, match="number"):
        request({"api": "lookup", "params": {}}, to=None)
