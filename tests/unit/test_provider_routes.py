"""The provider callback routes in ``create_app``: verified statuses reach
``gateway.provider_status``; forged, tampered and replayed ones get 403 and go nowhere."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from twilio.request_validator import RequestValidator

from callgate.api import create_app
from callgate.domain import AttemptResult, Outcome
from callgate.gateway import Gateway

PUBLIC_URL = "https://gw.example.org"
TWILIO_TOKEN = "twilio-token-for-tests"
SIGNING_KEY = "signalwire-signing-key-for-tests"
TELNYX_KEY = Ed25519PrivateKey.generate()
TELNYX_PUBLIC = base64.b64encode(
    TELNYX_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
).decode()


class RecordingGateway(Gateway):
    """The real gateway, with the seam the core implements recorded instead."""

    def __init__(self, *args: Any, asynchronous: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.updates: list[tuple[str, str, AttemptResult]] = []
        self.asynchronous = asynchronous

    def provider_status(self, provider: str, ref: str, result: AttemptResult) -> Any:
        if not self.asynchronous:
            self.updates.append((provider, ref, result))
            return None

        async def later() -> None:
            await asyncio.sleep(0)
            self.updates.append((provider, ref, result))

        return later()


@pytest.fixture
def gateway(make_settings: Any) -> Iterator[RecordingGateway]:
    settings = make_settings(
        public_url=PUBLIC_URL,
        twilio_auth_token=TWILIO_TOKEN,
        signalwire_signing_key=SIGNING_KEY,
        telnyx_public_key=TELNYX_PUBLIC,
    )
    gw = RecordingGateway(settings)
    yield gw
    gw.close()


def post(gw: Gateway, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(gw))
        async with httpx.AsyncClient(transport=transport, base_url="http://internal:8080") as c:
            return await c.post(path, **kwargs)

    return asyncio.run(go())


def twilio_post(
    gw: Gateway, path: str, params: dict[str, str], *, key: str, url: str | None = None
) -> httpx.Response:
    signature = RequestValidator(key).compute_signature(url or PUBLIC_URL + path, params)
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    return post(gw, path, content=urlencode(params), headers=headers)


MESSAGE = {"AccountSid": "AC1", "MessageSid": "SM42", "MessageStatus": "delivered", "To": "+1"}


def test_a_signed_twilio_callback_is_handed_over(gateway: RecordingGateway) -> None:
    r = twilio_post(gateway, "/provider/twilio/status", MESSAGE, key=TWILIO_TOKEN)
    assert r.status_code == 204, r.text
    [(provider, ref, result)] = gateway.updates
    assert (provider, ref, result.outcome) == ("twilio", "SM42", Outcome.DELIVERED)


def test_an_async_provider_status_is_awaited(make_settings: Any) -> None:
    gw = RecordingGateway(
        make_settings(public_url=PUBLIC_URL, twilio_auth_token=TWILIO_TOKEN), asynchronous=True
    )
    try:
        r = twilio_post(gw, "/provider/twilio/status", MESSAGE, key=TWILIO_TOKEN)
        assert r.status_code == 204
        assert [u[1] for u in gw.updates] == ["SM42"]
    finally:
        gw.close()


def assert_forbidden(r: httpx.Response, field: str) -> None:
    assert r.status_code == 403, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "forbidden"
    assert body["error"]["field"] == field
    assert body["error"]["message"]


def test_a_forged_twilio_signature_gets_403_and_goes_nowhere(gateway: RecordingGateway) -> None:
    r = twilio_post(gateway, "/provider/twilio/status", MESSAGE, key="a-guess")
    assert_forbidden(r, "x-twilio-signature")
    assert gateway.updates == []


def test_a_tampered_twilio_body_gets_403(gateway: RecordingGateway) -> None:
    path = "/provider/twilio/status"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, MESSAGE)
    forged = MESSAGE | {"MessageStatus": "failed", "ErrorCode": "21610"}
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    assert_forbidden(
        post(gateway, path, content=urlencode(forged), headers=headers), "x-twilio-signature"
    )
    assert gateway.updates == []


def test_the_signature_covers_the_public_url_not_the_internal_one(
    gateway: RecordingGateway,
) -> None:
    internal = "http://internal:8080/provider/twilio/status"
    r = twilio_post(gateway, "/provider/twilio/status", MESSAGE, key=TWILIO_TOKEN, url=internal)
    assert_forbidden(r, "x-twilio-signature")


def test_without_a_public_url_the_request_url_is_signed(make_settings: Any) -> None:
    gw = RecordingGateway(make_settings(twilio_auth_token=TWILIO_TOKEN))
    try:
        url = "http://internal:8080/provider/twilio/status?job=7"
        r = twilio_post(gw, "/provider/twilio/status?job=7", MESSAGE, key=TWILIO_TOKEN, url=url)
        assert r.status_code == 204, r.text
    finally:
        gw.close()


def test_a_signed_callback_naming_nothing_is_400(gateway: RecordingGateway) -> None:
    r = twilio_post(gateway, "/provider/twilio/status", {"AccountSid": "AC1"}, key=TWILIO_TOKEN)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request"
    assert gateway.updates == []


def test_callbacks_are_refused_when_nothing_can_verify_them(make_settings: Any) -> None:
    gw = RecordingGateway(make_settings())
    try:
        r = twilio_post(gw, "/provider/twilio/status", MESSAGE, key=TWILIO_TOKEN)
        assert_forbidden(r, "x-twilio-signature")
        r = post(gw, "/provider/telnyx/events", content=b"{}")
        assert_forbidden(r, "telnyx-signature-ed25519")
        assert gw.updates == []
    finally:
        gw.close()


def test_a_signalwire_fax_callback_signed_with_the_signing_key(gateway: RecordingGateway) -> None:
    fax = {"FaxSid": "FX1", "FaxStatus": "no-answer", "AccountSid": "p1"}
    r = twilio_post(gateway, "/provider/signalwire/status", fax, key=SIGNING_KEY)
    assert r.status_code == 204, r.text
    assert [(p, ref, res.outcome) for p, ref, res in gateway.updates] == [
        ("signalwire", "FX1", Outcome.NO_ANSWER)
    ]
    r = twilio_post(gateway, "/provider/signalwire/status", fax, key=TWILIO_TOKEN)
    assert_forbidden(r, "x-signalwire-signature")
    assert len(gateway.updates) == 1


def telnyx_post(
    gw: Gateway, body: bytes, stamp: int, key: Ed25519PrivateKey = TELNYX_KEY
) -> httpx.Response:
    signature = base64.b64encode(key.sign(str(stamp).encode() + b"|" + body)).decode()
    headers = {
        "Content-Type": "application/json",
        "Telnyx-Signature-Ed25519": signature,
        "Telnyx-Timestamp": str(stamp),
    }
    return post(gw, "/provider/telnyx/events", content=body, headers=headers)


EVENT = json.dumps(
    {
        "data": {
            "event_type": "fax.failed",
            "id": "e1",
            "occurred_at": "2030-01-01T00:00:00Z",
            "payload": {"fax_id": "fax-7", "status": "failed", "failure_reason": "user_busy"},
        }
    }
).encode()


def test_a_signed_telnyx_event_is_handed_over(gateway: RecordingGateway) -> None:
    r = telnyx_post(gateway, EVENT, int(time.time()))
    assert r.status_code == 200, r.text
    [(provider, ref, result)] = gateway.updates
    assert (provider, ref, result.outcome, result.error_code) == (
        "telnyx",
        "fax-7",
        Outcome.BUSY,
        "user_busy",
    )


def test_telnyx_forgeries_and_replays_get_403(gateway: RecordingGateway) -> None:
    now = int(time.time())
    assert_forbidden(
        telnyx_post(gateway, EVENT, now, Ed25519PrivateKey.generate()), "telnyx-signature-ed25519"
    )
    assert_forbidden(telnyx_post(gateway, EVENT, now - 3600), "telnyx-timestamp")
    signature = base64.b64encode(TELNYX_KEY.sign(f"{now}|".encode() + EVENT)).decode()
    tampered = EVENT.replace(b"user_busy", b"destination_invalid")
    r = post(
        gateway,
        "/provider/telnyx/events",
        content=tampered,
        headers={"Telnyx-Signature-Ed25519": signature, "Telnyx-Timestamp": str(now)},
    )
    assert_forbidden(r, "telnyx-signature-ed25519")
    assert gateway.updates == []


def test_callback_routes_stay_out_of_the_public_api_document(gateway: RecordingGateway) -> None:
    paths = create_app(gateway).openapi()["paths"]
    assert not [p for p in paths if p.startswith("/provider")]
