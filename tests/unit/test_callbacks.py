"""Status callbacks: real signatures accepted, forged, tampered and replayed ones refused."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from twilio.request_validator import RequestValidator

from callgate.domain import Kind, Outcome
from callgate.providers.callbacks import (
    CallbackMalformed,
    CallbackRejected,
    parse_signalwire_status,
    parse_telnyx_event,
    parse_twilio_status,
)

TOKEN = "twilio-test-auth-token"
URL = "https://gw.example.org/provider/twilio/status"
NOW = 1_900_000_000.0


def signed(params: dict[str, str], token: str = TOKEN, url: str = URL) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)}


MESSAGE = {
    "AccountSid": "AC1",
    "MessageSid": "SM1",
    "SmsSid": "SM1",
    "MessageStatus": "delivered",
    "To": "+15005550006",
    "From": "+15005550006",
    "ApiVersion": "2010-04-01",
}


def test_a_signed_message_callback_is_read() -> None:
    body = urlencode(MESSAGE).encode()
    update = parse_twilio_status(URL, signed(MESSAGE), body, auth_token=TOKEN)
    assert (update.ref, update.kind, update.result.outcome) == ("SM1", Kind.SMS, Outcome.DELIVERED)
    assert update.result.provider_ref == "SM1"


def test_parsed_form_params_work_as_well_as_the_raw_body() -> None:
    update = parse_twilio_status(URL, signed(MESSAGE), MESSAGE, auth_token=TOKEN)
    assert update.result.outcome is Outcome.DELIVERED


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"CallSid": "CA1", "CallStatus": "busy"}, Outcome.BUSY),
        ({"CallSid": "CA1", "CallStatus": "no-answer"}, Outcome.NO_ANSWER),
        ({"CallSid": "CA1", "CallStatus": "completed"}, Outcome.DELIVERED),
        ({"CallSid": "CA1", "CallStatus": "ringing"}, None),
        ({"MessageSid": "SM1", "MessageStatus": "sent"}, None),
        (
            {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30006"},
            Outcome.PERMANENT,
        ),
    ],
)
def test_call_and_message_statuses(params: dict[str, str], expected: Outcome | None) -> None:
    update = parse_twilio_status(URL, signed(params), params, auth_token=TOKEN)
    assert update.result.outcome is expected


def test_the_sent_status_can_count_as_delivered() -> None:
    params = {"MessageSid": "SM1", "MessageStatus": "sent"}
    update = parse_twilio_status(URL, signed(params), params, auth_token=TOKEN, accept_sent=True)
    assert update.result.outcome is Outcome.DELIVERED


def test_the_error_code_travels_with_the_result() -> None:
    params = {"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "21610"}
    result = parse_twilio_status(URL, signed(params), params, auth_token=TOKEN).result
    assert (result.outcome, result.error_code) == (Outcome.PERMANENT, "21610")


def test_a_tampered_body_is_refused() -> None:
    headers = signed(MESSAGE)
    forged = MESSAGE | {"MessageStatus": "undelivered"}
    with pytest.raises(CallbackRejected) as caught:
        parse_twilio_status(URL, headers, urlencode(forged).encode(), auth_token=TOKEN)
    assert (caught.value.code, caught.value.status) == ("forbidden", 403)
    assert caught.value.field == "x-twilio-signature"


def test_a_signature_made_with_another_token_is_refused() -> None:
    with pytest.raises(CallbackRejected):
        parse_twilio_status(URL, signed(MESSAGE, token="guess"), MESSAGE, auth_token=TOKEN)


def test_a_signature_for_another_url_is_refused() -> None:
    headers = signed(MESSAGE, url="https://elsewhere.example/provider/twilio/status")
    with pytest.raises(CallbackRejected):
        parse_twilio_status(URL, headers, MESSAGE, auth_token=TOKEN)


def test_an_unsigned_callback_is_refused() -> None:
    with pytest.raises(CallbackRejected) as caught:
        parse_twilio_status(URL, {}, MESSAGE, auth_token=TOKEN)
    assert caught.value.field == "x-twilio-signature"


def test_a_signed_callback_that_names_no_attempt_is_malformed() -> None:
    params = {"AccountSid": "AC1", "Status": "delivered"}
    with pytest.raises(CallbackMalformed) as caught:
        parse_twilio_status(URL, signed(params), params, auth_token=TOKEN)
    assert (caught.value.code, caught.value.status) == ("invalid_request", 400)


# -- SignalWire ---------------------------------------------------------------------------

SW_URL = "https://gw.example.org/provider/signalwire/status"
SW_KEY = "PSK_signing_key"
FAX = {"FaxSid": "FX-9", "FaxStatus": "failed", "ErrorCode": "34002", "To": "+15005550110"}


@pytest.mark.parametrize("header", ["X-SignalWire-Signature", "X-Twilio-Signature"])
def test_signalwire_signs_like_twilio_with_its_signing_key(header: str) -> None:
    signature = RequestValidator(SW_KEY).compute_signature(SW_URL, FAX)
    update = parse_signalwire_status(SW_URL, {header: signature}, FAX, signing_key=SW_KEY)
    assert (update.ref, update.kind, update.result.outcome) == ("FX-9", Kind.FAX, Outcome.BUSY)
    assert update.result.error_code == "34002"


def test_signalwire_refuses_a_signature_by_another_key() -> None:
    signature = RequestValidator("the-api-token").compute_signature(SW_URL, FAX)
    with pytest.raises(CallbackRejected):
        parse_signalwire_status(
            SW_URL, {"X-SignalWire-Signature": signature}, FAX, signing_key=SW_KEY
        )


# -- Telnyx -------------------------------------------------------------------------------

PRIVATE = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(
    PRIVATE.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
).decode()


def telnyx_event(event_type: str, **payload: object) -> bytes:
    doc = {
        "data": {
            "event_type": event_type,
            "id": "ev-1",
            "occurred_at": "2030-03-17T10:00:00.000000Z",
            "record_type": "event",
            "payload": {"fax_id": "fax-1", "to": "+15005550006", **payload},
        },
        "meta": {"attempt": 1, "delivered_to": "https://gw.example.org/provider/telnyx/events"},
    }
    return json.dumps(doc).encode()


def telnyx_headers(
    body: bytes, stamp: int = int(NOW), key: Ed25519PrivateKey = PRIVATE
) -> dict[str, str]:
    signature = key.sign(str(stamp).encode() + b"|" + body)
    return {
        "Telnyx-Signature-Ed25519": base64.b64encode(signature).decode(),
        "Telnyx-Timestamp": str(stamp),
    }


@pytest.mark.parametrize(
    ("event_type", "payload", "expected"),
    [
        ("fax.queued", {"status": "queued"}, None),
        ("fax.media.processed", {"status": "media.processed"}, None),
        ("fax.sending.started", {"status": "sending"}, None),
        ("fax.delivered", {"status": "delivered", "page_count": 2}, Outcome.DELIVERED),
        ("fax.failed", {"status": "failed", "failure_reason": "user_busy"}, Outcome.BUSY),
        (
            "fax.failed",
            {"status": "failed", "failure_reason": "receiver_no_answer"},
            Outcome.NO_ANSWER,
        ),
        (
            "fax.failed",
            {"status": "failed", "failure_reason": "destination_invalid"},
            Outcome.PERMANENT,
        ),
    ],
)
def test_signed_telnyx_events_are_read(
    event_type: str, payload: dict[str, object], expected: Outcome | None
) -> None:
    body = telnyx_event(event_type, **payload)
    update = parse_telnyx_event(telnyx_headers(body), body, public_key=PUBLIC, now=NOW)
    assert (update.ref, update.kind, update.result.outcome) == ("fax-1", Kind.FAX, expected)
    if expected is not None:
        assert update.result.ended_at is not None


def test_a_tampered_telnyx_body_is_refused() -> None:
    body = telnyx_event("fax.failed", status="failed", failure_reason="user_busy")
    headers = telnyx_headers(body)
    forged = body.replace(b"fax.failed", b"fax.delivered").replace(b'"failed"', b'"delivered"')
    with pytest.raises(CallbackRejected) as caught:
        parse_telnyx_event(headers, forged, public_key=PUBLIC, now=NOW)
    assert caught.value.field == "telnyx-signature-ed25519"


def test_a_telnyx_signature_by_another_key_is_refused() -> None:
    body = telnyx_event("fax.delivered", status="delivered")
    headers = telnyx_headers(body, key=Ed25519PrivateKey.generate())
    with pytest.raises(CallbackRejected):
        parse_telnyx_event(headers, body, public_key=PUBLIC, now=NOW)


@pytest.mark.parametrize("age", [301, -301, 86_400])
def test_a_replayed_or_early_telnyx_webhook_is_refused(age: int) -> None:
    body = telnyx_event("fax.delivered", status="delivered")
    headers = telnyx_headers(body, stamp=int(NOW) - age)  # a genuine signature, old
    with pytest.raises(CallbackRejected) as caught:
        parse_telnyx_event(headers, body, public_key=PUBLIC, now=NOW)
    assert caught.value.field == "telnyx-timestamp"


def test_the_tolerance_is_configurable() -> None:
    body = telnyx_event("fax.delivered", status="delivered")
    headers = telnyx_headers(body, stamp=int(NOW) - 30)
    assert parse_telnyx_event(headers, body, public_key=PUBLIC, now=NOW).result.outcome
    with pytest.raises(CallbackRejected):
        parse_telnyx_event(headers, body, public_key=PUBLIC, now=NOW, tolerance=10)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Telnyx-Timestamp": str(int(NOW))},
        {"Telnyx-Signature-Ed25519": "AAAA", "Telnyx-Timestamp": "yesterday"},
        {"Telnyx-Signature-Ed25519": "not base64!", "Telnyx-Timestamp": str(int(NOW))},
    ],
)
def test_missing_or_unreadable_telnyx_headers_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(CallbackRejected):
        parse_telnyx_event(headers, b"{}", public_key=PUBLIC, now=NOW)


def test_a_signed_telnyx_event_without_a_fax_is_malformed() -> None:
    body = json.dumps({"data": {"event_type": "fax.queued", "payload": {}}}).encode()
    with pytest.raises(CallbackMalformed):
        parse_telnyx_event(telnyx_headers(body), body, public_key=PUBLIC, now=NOW)
