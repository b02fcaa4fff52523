"""``POST /provider/twilio/sms/inbound`` (issue 21, item 6): Twilio's opt-out words
suppress the sender for SMS, the opt-in words lift that (and only that), HELP is
answered, every message is a ``message.received`` system webhook, and an unsigned or
forged request changes nothing (both backends)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from callgate.api import create_app
from callgate.api.inbound import keyword
from callgate.domain import Kind
from callgate.gateway import Gateway

TOKEN = "inbound-test-token"
PUBLIC = "https://gw.example.org"
URL = PUBLIC + "/provider/twilio/sms/inbound"
SENDER = "+15005550006"
OURS = "+15005550001"


@pytest.fixture
def gw(make_settings: Any) -> Iterator[Gateway]:
    g = Gateway(make_settings(twilio_auth_token=TOKEN, public_url=PUBLIC))
    yield g
    g.close()


def inbound(gw: Gateway, body: str, *, sid: str = "SM1", forge: bool = False) -> httpx.Response:
    params = {"From": SENDER, "To": OURS, "Body": body, "MessageSid": sid}
    key = "not-the-token" if forge else TOKEN
    headers = {
        "X-Twilio-Signature": RequestValidator(key).compute_signature(URL, params),
        "Content-Type": "application/x-www-form-urlencoded",
    }

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(gw))
        async with httpx.AsyncClient(transport=transport, base_url="http://cg") as c:
            return await c.post(
                "/provider/twilio/sms/inbound", content=urlencode(params), headers=headers
            )

    return asyncio.run(post())


def sms_suppression(gw: Gateway) -> dict[str, Any] | None:
    return next((s for s in gw.guardrails.suppressions(SENDER) if s["kind"] == "sms"), None)


def received(gw: Gateway) -> list[dict[str, Any]]:
    found = gw.store.system_webhooks()
    return [w["data"] for w in reversed(found) if w["type"] == "message.received"]


@pytest.mark.parametrize(
    "word", ["STOP", "stop", " Stop. ", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"]
)
def test_every_opt_out_word_suppresses_the_sender_for_sms(gw: Gateway, word: str) -> None:
    r = inbound(gw, word)
    assert r.status_code == 200, r.text
    assert ET.fromstring(r.text).tag == "Response"
    assert list(ET.fromstring(r.text)) == []  # Twilio answers the STOP itself
    found = sms_suppression(gw)
    assert found is not None
    assert (found["reason"], found["source"]) == ("unsubscribed", "keyword")
    job = gw.send(Kind.SMS, to=SENDER, body="reminder").job
    assert gw.store.get_job(job.id).status != "queued"  # refused: the person said STOP
    assert gw.send(Kind.CALL, to=SENDER, twiml="<Response/>").job.status == "queued"


@pytest.mark.parametrize("word", ["START", "yes", "Unstop"])
def test_an_opt_in_word_lifts_only_the_opt_out(gw: Gateway, word: str) -> None:
    inbound(gw, "STOP")
    gw.guardrails.suppress(SENDER, "fax", "complaint")  # an operator's, for another reason
    inbound(gw, word, sid="SM2")
    assert sms_suppression(gw) is None
    assert [s["kind"] for s in gw.guardrails.suppressions(SENDER)] == ["fax"]
    assert gw.send(Kind.SMS, to=SENDER, body="welcome back").job.status == "queued"


def test_start_does_not_lift_an_operators_sms_suppression(gw: Gateway) -> None:
    gw.guardrails.suppress(SENDER, "sms", "complaint")
    inbound(gw, "START")
    found = sms_suppression(gw)
    assert found is not None
    assert found["reason"] == "complaint"


@pytest.mark.parametrize("word", ["HELP", "info"])
def test_help_is_answered_from_the_setting(gw: Gateway, word: str) -> None:
    r = inbound(gw, word)
    message = ET.fromstring(r.text).find("Message")
    assert message is not None
    assert message.text == gw.settings.sms_help_text
    assert sms_suppression(gw) is None


def test_every_inbound_message_is_a_system_webhook(gw: Gateway) -> None:
    inbound(gw, "Can I move my appointment?", sid="SM10")
    inbound(gw, "STOP", sid="SM11")
    events = received(gw)
    assert [(e["message_sid"], e["keyword"], e["action"]) for e in events] == [
        ("SM10", None, None),
        ("SM11", "STOP", "opt_out"),
    ]
    assert events[0]["body"] == "Can I move my appointment?"
    assert events[0]["from"] == SENDER


def test_a_forged_or_unsigned_message_changes_nothing(gw: Gateway) -> None:
    r = inbound(gw, "STOP", forge=True)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    assert sms_suppression(gw) is None
    assert received(gw) == []


def test_without_the_auth_token_inbound_is_refused(make_settings: Any) -> None:
    g = Gateway(make_settings(public_url=PUBLIC))
    try:
        r = inbound(g, "STOP")
        assert r.status_code == 403
        assert sms_suppression(g) is None
    finally:
        g.close()


def test_keywords_are_whole_messages() -> None:
    assert keyword("stop!") == "STOP"
    assert keyword("please stop calling") is None
    assert keyword("") is None
