"""Every provider adapter end to end against ``callgate simulator`` in a subprocess, through
the official SDKs: test numbers and error codes, signed callbacks received on a local
server and verified with the parsing functions, polling to the final status, and ``find``.

Two simulators serve the module: ``sim`` posts callbacks (SMS and calls end after
0.05 s, faxes after 0.2 s); ``quiet`` drops every callback and ends SMS and calls after
2 s and faxes after 1 s, so the adapters must poll (and ``find`` sees a queued message).
The simulator counts calls per number for the whole process, so each counted test
number (``+15005550131``, ``+1500555012K``) is used by one test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from callgate.domain import AttemptResult, Fault, Job, Kind, Outcome, make_spec
from callgate.providers.base import CannotReconcile
from callgate.providers.callbacks import (
    StatusUpdate,
    parse_signalwire_status,
    parse_telnyx_event,
    parse_twilio_status,
)
from callgate.providers.signalwire import SignalWireProvider
from callgate.providers.twilio import TwilioProvider
from callgate.providers.twilio_mapping import Suppression, suppression_for
from callgate.store.sqlite import SQLiteStore
from tests.factories import in_flight_job

from .providers_support import SIM, Received, Receiver, SimProcess, vendor_env

pytestmark = pytest.mark.slow

PDF = "https://example.org/ballot.pdf"
FROM = "+15005550006"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("providers")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}


@pytest.fixture(scope="module")
def sim(home: Path) -> Iterator[SimProcess]:
    (home / "a").mkdir()
    process = SimProcess.start(
        home / "a", "--callback-delay", "0.05", "--fax-duration", "0.2", env=_env()
    )
    yield process
    assert process.stop() == 0, process.stderr.text


@pytest.fixture(scope="module")
def quiet(home: Path) -> Iterator[SimProcess]:
    (home / "b").mkdir()
    process = SimProcess.start(
        home / "b",
        "--callback-delay", "2", "--fax-duration", "1", "--drop-callbacks", "1", "--seed", "1",
        env=_env(),
    )  # fmt: skip
    yield process
    assert process.stop() == 0, process.stderr.text


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def job(to: str, kind: Kind, job_id: int = 1, **payload: Any) -> Job:
    return dataclasses.replace(in_flight_job(to, kind, job_id), payload=payload)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def twilio(sim: SimProcess, receiver: Receiver | None = None, **kw: Any) -> TwilioProvider:
    return TwilioProvider(
        account_sid=SIM["twilio_account_sid"],
        auth_token=kw.pop("auth_token", SIM["twilio_auth_token"]),
        from_number=kw.pop("from_number", FROM),
        base_url=sim.url,
        status_callback=None if receiver is None else receiver.url + "/twilio",
        timeout=10,
        **kw,
    )


def signalwire(sim: SimProcess, receiver: Receiver | None = None) -> SignalWireProvider:
    return SignalWireProvider(
        project_id=SIM["signalwire_project_id"],
        api_token=SIM["signalwire_api_token"],
        space_url=sim.url,
        from_number=FROM,
        status_callback=None if receiver is None else receiver.url + "/signalwire",
        timeout=10,
    )


def telnyx(sim: SimProcess, receiver: Receiver | None = None, **kw: Any) -> Any:
    from callgate.providers.telnyx import TelnyxProvider  # the SDK takes seconds to import

    return TelnyxProvider(
        api_key=kw.pop("api_key", SIM["telnyx_api_key"]),
        connection_id="conn-1",
        from_number=FROM,
        base_url=sim.url + "/v2",
        webhook_url=None if receiver is None else receiver.url + "/telnyx",
        timeout=10,
    )


async def using(provider: Any, work: Callable[[Any], Any]) -> Any:
    try:
        return await work(provider)
    finally:
        await provider.aclose()


async def send(provider: Any, j: Job) -> AttemptResult:
    return await using(provider, lambda p: p.send(j))


async def poll(provider: Any, j: Job, ref: str, timeout: float = 20.0) -> list[AttemptResult]:
    """Poll ``status`` until it is final (what the worker's tracker does)."""
    seen: list[AttemptResult] = []
    deadline = time.monotonic() + timeout
    while not seen or seen[-1].outcome is None:
        assert time.monotonic() < deadline, f"{ref} still under way after {timeout} s: {seen}"
        if seen:
            await asyncio.sleep(0.1)
        seen.append(await provider.status(j, ref))
    return seen


def form_sid(post: Received) -> str | None:
    params = dict(parse_qsl(post.body.decode()))
    return params.get("MessageSid") or params.get("CallSid") or params.get("FaxSid")


def callbacks_for(
    receiver: Receiver, path: str, ref: str, final: Callable[[list[Received]], bool]
) -> list[Received]:
    def mine(posts: list[Received]) -> list[Received]:
        return [p for p in posts if p.path == path and ref in p.body.decode()]

    return mine(receiver.wait_for(lambda posts: final(mine(posts)), f"callbacks for {ref}"))


def twilio_updates(
    receiver: Receiver, path: str, ref: str, final_status: str, parse: Callable[..., StatusUpdate]
) -> list[StatusUpdate]:
    posts = callbacks_for(
        receiver, path, ref, lambda mine: any(final_status in p.body.decode() for p in mine)
    )
    return [parse(receiver.url + path, p.headers, p.body) for p in posts]


def log_line(sim: SimProcess, ref: str) -> dict[str, Any]:
    [line] = [x for x in sim.log_lines() if x["ref"] == ref]
    return line


# -- Twilio: Messages ---------------------------------------------------------------------


def test_an_sms_is_delivered_with_signed_callbacks(sim: SimProcess, receiver: Receiver) -> None:
    j = job("+12125550101", Kind.SMS, body="Your ballot is on its way", media_url=PDF)
    sent = run(send(twilio(sim, receiver), j))
    assert sent.outcome is None
    assert sent.provider_ref is not None
    assert sent.provider_ref.startswith("SM")

    def parse(url: str, headers: dict[str, str], body: bytes) -> StatusUpdate:
        return parse_twilio_status(url, headers, body, auth_token=SIM["twilio_auth_token"])

    updates = twilio_updates(receiver, "/twilio", sent.provider_ref, "=delivered", parse)
    assert [(u.ref, u.result.outcome) for u in updates] == [
        (sent.provider_ref, None),  # sent: waiting for the delivery receipt
        (sent.provider_ref, Outcome.DELIVERED),
    ]
    final = run(using(twilio(sim), lambda p: p.status(j, sent.provider_ref)))
    assert final.outcome is Outcome.DELIVERED
    line = log_line(sim, sent.provider_ref)
    assert (line["kind"], line["to"], line["outcome"], line["job_id"]) == (
        "sms",
        "+12125550101",
        "delivered",
        None,
    )
    assert line["started_at"] <= line["ended_at"]


def sent_params(sim: SimProcess, provider: TwilioProvider, j: Job) -> dict[str, Any]:
    """Send ``j``, follow it to its end; the parameters the simulator logged for it."""

    async def scenario(p: TwilioProvider) -> str:
        sent = await p.send(j)
        assert sent.outcome is None, sent
        assert sent.provider_ref is not None
        assert (await poll(p, j, sent.provider_ref))[-1].outcome is Outcome.DELIVERED
        return sent.provider_ref

    line = log_line(sim, run(using(provider, scenario)))
    params: dict[str, Any] = line.get("params", {})
    return params


SERVICE = "MG" + "a" * 32


def test_twilio_parameters_reach_twilio_as_given(sim: SimProcess) -> None:
    """The seed's columns through the SDK: a Messaging Service instead of a sender, an
    approved template and its variables, a validity period, a scheduled send."""
    params = {
        "MessagingServiceSid": SERVICE,
        "ContentSid": "HX" + "b" * 32,
        "ContentVariables": '{"1":"Ana"}',
        "ValidityPeriod": "3600",
        "SendAt": "2026-12-24T09:00:00Z",
        "ScheduleType": "fixed",
        "ShortenUrls": True,
    }
    spec = make_spec("sms", to="+12125550140", params=params)
    j = job("+12125550140", Kind.SMS, **spec.payload)
    assert sent_params(sim, twilio(sim), j) == params | {"ShortenUrls": "true"}
    call = job(
        "+12125550141",
        Kind.CALL,
        twiml="<Response/>",
        params={"MachineDetection": "Enable", "Timeout": 20, "Record": False},
    )
    assert sent_params(sim, twilio(sim), call) == {
        "MachineDetection": "Enable",
        "Timeout": "20",
        "Record": "false",
    }


def test_a_configured_messaging_service_sends_what_names_no_sender(sim: SimProcess) -> None:
    provider = twilio(sim, messaging_service_sid=SERVICE)
    assert sent_params(sim, provider, job("+12125550142", Kind.SMS, body="hi")) == {
        "MessagingServiceSid": SERVICE
    }
    named = job("+12125550143", Kind.SMS, body="hi", **{"from": FROM})  # its own sender
    assert sent_params(sim, twilio(sim, messaging_service_sid=SERVICE), named) == {}


@pytest.mark.parametrize(
    ("service", "code"), [("MG" + "0" * 32, "21701"), ("MGnot-a-sid", "21705")]
)
def test_a_bad_messaging_service_is_refused_as_twilio_does(
    sim: SimProcess, service: str, code: str
) -> None:
    j = job("+12125550144", Kind.SMS, body="hi", params={"MessagingServiceSid": service})
    result = run(send(twilio(sim), j))
    assert (result.outcome, result.error_code) == (Outcome.PERMANENT, code)


def test_an_api_key_and_its_secret_stand_in_for_the_auth_token(sim: SimProcess) -> None:
    key = {"auth_token": None, "api_key": "SKsimulator"}
    ok = run(
        send(twilio(sim, **key, api_secret="simulator-api-secret"), job(FROM, Kind.SMS, body="hi"))
    )
    assert ok.outcome is None
    assert ok.provider_ref is not None
    bad = run(send(twilio(sim, **key, api_secret="revoked"), job(FROM, Kind.SMS, body="hi")))
    assert (bad.outcome, bad.error_code, bad.fault) == (Outcome.PROVIDER_ERROR, "20003", Fault.AUTH)


@pytest.mark.parametrize(
    ("to", "kind", "outcome", "code", "suppression"),
    [
        ("+15005550001", Kind.SMS, Outcome.PERMANENT, "21211", None),
        ("+15005550002", Kind.SMS, Outcome.PERMANENT, "21612", None),
        ("+15005550003", Kind.SMS, Outcome.PERMANENT, "21408", None),
        ("+15005550004", Kind.SMS, Outcome.PERMANENT, "21610", "unsubscribed"),
        ("+15005550009", Kind.SMS, Outcome.PERMANENT, "21614", "not_sms_capable"),
        ("+15005550130", Kind.SMS, Outcome.PROVIDER_ERROR, "20500", None),
        ("+15005550001", Kind.CALL, Outcome.PERMANENT, "21211", None),
    ],
)
def test_twilio_test_numbers_fail_as_documented(
    sim: SimProcess, to: str, kind: Kind, outcome: Outcome, code: str, suppression: str | None
) -> None:
    fields = {"body": "hi"} if kind is Kind.SMS else {"twiml": "<Response/>"}
    result = run(send(twilio(sim), job(to, kind, **fields)))
    assert (result.outcome, result.error_code) == (outcome, code)
    assert result.provider_ref is None
    hint = suppression_for(result.error_code, kind)
    assert hint == (None if suppression is None else Suppression(Kind.SMS, suppression))


def test_a_429_carries_retry_after_and_the_next_try_goes_through(sim: SimProcess) -> None:
    j = job("+15005550131", Kind.SMS, body="hi")
    first = run(send(twilio(sim), j))
    assert (first.outcome, first.error_code, first.retry_after) == (
        Outcome.RATE_LIMITED,
        "20429",
        1.0,
    )
    assert run(send(twilio(sim), j)).outcome is None  # accepted


def test_wrong_credentials_are_a_provider_error(sim: SimProcess) -> None:
    result = run(send(twilio(sim, auth_token="wrong"), job(FROM, Kind.SMS, body="hi")))
    assert (result.outcome, result.error_code) == (Outcome.PROVIDER_ERROR, "20003")
    assert result.fault is Fault.AUTH  # the provider's, not the job's: its circuit opens


def test_an_sms_without_callbacks_is_polled_to_its_end(quiet: SimProcess) -> None:
    j = job("+12125550102", Kind.SMS, body="hi")
    provider = twilio(quiet)

    async def scenario(p: TwilioProvider) -> list[AttemptResult]:
        sent = await p.send(j)
        assert sent.provider_ref is not None
        return await poll(p, j, sent.provider_ref)

    seen = run(using(provider, scenario))
    assert seen[0].outcome is None
    assert seen[-1].outcome is Outcome.DELIVERED


# -- Twilio: Calls ------------------------------------------------------------------------


def test_a_busy_call_reports_busy_by_signed_callback(sim: SimProcess, receiver: Receiver) -> None:
    j = job("+15005550110", Kind.CALL, url="https://example.org/twiml")
    sent = run(send(twilio(sim, receiver), j))
    assert sent.outcome is None
    assert sent.provider_ref is not None
    assert sent.provider_ref.startswith("CA")

    def parse(url: str, headers: dict[str, str], body: bytes) -> StatusUpdate:
        return parse_twilio_status(url, headers, body, auth_token=SIM["twilio_auth_token"])

    [update] = twilio_updates(receiver, "/twilio", sent.provider_ref, "CallStatus=busy", parse)
    assert (update.kind, update.result.outcome) == (Kind.CALL, Outcome.BUSY)
    assert run(using(twilio(sim), lambda p: p.status(j, sent.provider_ref))).outcome is Outcome.BUSY


@pytest.mark.parametrize(
    ("to", "expected"),
    [("+15005550111", Outcome.NO_ANSWER), ("+12125550103", Outcome.DELIVERED)],
)
def test_calls_are_polled_to_their_end(quiet: SimProcess, to: str, expected: Outcome) -> None:
    j = job(to, Kind.CALL, twiml="<Response><Say>Hello</Say></Response>")

    async def scenario(p: TwilioProvider) -> list[AttemptResult]:
        sent = await p.send(j)
        assert sent.provider_ref is not None
        return await poll(p, j, sent.provider_ref)

    assert run(using(twilio(quiet), scenario))[-1].outcome is expected


# -- Twilio: requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "key", "value"),
    [
        (
            {"api": "lookup", "method": "GET", "params": {"Fields": "line_type_intelligence"}},
            "valid",
            True,
        ),
        ({"api": "verify", "method": "POST", "params": {"ServiceSid": "VA1"}}, "channel", "sms"),
        (
            {
                "api": "studio",
                "method": "POST",
                "params": {"FlowSid": "FW1", "Parameters": {"n": 1}},
            },
            "context",
            {"n": 1},
        ),
        (
            {
                "api": "raw",
                "method": "GET",
                "params": {"domain": "lookups", "path": "/v2/PhoneNumbers/+12125550104"},
            },
            "phone_number",
            "+12125550104",
        ),
    ],
)
def test_requests_return_the_api_answer(
    sim: SimProcess, payload: dict[str, Any], key: str, value: Any
) -> None:
    result = run(send(twilio(sim), job("+12125550104", Kind.REQUEST, **payload)))
    assert result.outcome is Outcome.DELIVERED, result
    assert result.response is not None
    assert result.response[key] == value


def test_request_errors(sim: SimProcess) -> None:
    lookup = {"api": "lookup", "method": "GET", "params": {}}
    invalid = run(send(twilio(sim), job("+15005550001", Kind.REQUEST, **lookup)))
    assert (invalid.outcome, invalid.error_code) == (Outcome.PERMANENT, "21211")
    raw = {"api": "raw", "method": "GET", "params": {"domain": "api", "path": "/v1/Nothing"}}
    missing = run(send(twilio(sim), job(FROM, Kind.REQUEST, **raw)))
    assert (missing.outcome, missing.error_code) == (Outcome.PERMANENT, "404")
    unnamed = {"api": "verify", "method": "POST", "params": {}}
    refused = run(send(twilio(sim), job(FROM, Kind.REQUEST, **unnamed)))
    assert refused.outcome is Outcome.PERMANENT
    assert "ServiceSid" in (refused.error_message or "")


# -- Twilio: reconciliation ---------------------------------------------------------------


def test_find_lists_the_messages_to_a_number_in_a_window(quiet: SimProcess) -> None:
    to = "+12125550105"
    provider = twilio(quiet)

    async def scenario(p: TwilioProvider) -> tuple[list[Any], list[Any], list[Any]]:
        before = time.time() - 1
        refs = [(await p.send(job(to, Kind.SMS, job_id=n, body="hi"))).provider_ref for n in (1, 2)]
        now = time.time() + 1
        # not sent yet: no sent date, still found (through the newest records)
        pending = await p.find(job(to, Kind.SMS), before, now)
        assert sorted(f.ref for f in pending) == sorted(refs)
        for ref in refs:
            await poll(p, job(to, Kind.SMS), str(ref))
        done = await p.find(job(to, Kind.SMS), before, now)
        earlier = await p.find(job(to, Kind.SMS), before - 3600, before - 1800)
        return pending, done, earlier

    pending, done, earlier = run(using(provider, scenario))
    assert {f.result.outcome for f in pending} == {None}
    assert {f.result.outcome for f in done} == {Outcome.DELIVERED}
    assert earlier == []  # nothing in that window: absence, proven


def test_find_calls_and_what_cannot_be_found(sim: SimProcess) -> None:
    to = "+12125550106"

    async def scenario(p: TwilioProvider) -> list[Any]:
        since = time.time() - 1
        sent = await p.send(job(to, Kind.CALL, twiml="<Response/>"))
        found = await p.find(job(to, Kind.CALL), since, time.time() + 1)
        assert [f.ref for f in found] == [sent.provider_ref]
        with pytest.raises(CannotReconcile):
            await p.find(job(to, Kind.REQUEST), since, time.time())
        return found

    run(using(twilio(sim), scenario))


# -- SignalWire ---------------------------------------------------------------------------


def sw_parse(url: str, headers: dict[str, str], body: bytes) -> StatusUpdate:
    return parse_signalwire_status(url, headers, body, signing_key=SIM["signalwire_signing_key"])


def test_a_signalwire_fax_is_delivered_with_a_signed_callback(
    sim: SimProcess, receiver: Receiver
) -> None:
    j = job("+12125550107", Kind.FAX, media_url=PDF)
    sent = run(send(signalwire(sim, receiver), j))
    assert sent.outcome is None
    assert sent.provider_ref is not None
    [update] = twilio_updates(
        receiver, "/signalwire", sent.provider_ref, "FaxStatus=delivered", sw_parse
    )
    assert (update.kind, update.result.outcome) == (Kind.FAX, Outcome.DELIVERED)
    [post] = callbacks_for(receiver, "/signalwire", sent.provider_ref, bool)
    assert "X-SignalWire-Signature" in post.headers
    final = run(using(signalwire(sim), lambda p: p.status(j, sent.provider_ref)))
    assert final.outcome is Outcome.DELIVERED
    line = log_line(sim, sent.provider_ref)
    assert (line["kind"], line["outcome"]) == ("fax", "delivered")
    assert line["ended_at"] - line["started_at"] >= 0.2  # the line was in use for the fax


def test_a_line_busy_twice_then_free(sim: SimProcess, receiver: Receiver) -> None:
    outcomes = []
    for n in range(3):
        j = job("+15005550122", Kind.FAX, job_id=n, media_url=PDF)
        sent = run(send(signalwire(sim, receiver), j))
        assert sent.provider_ref is not None
        [update] = twilio_updates(
            receiver, "/signalwire", sent.provider_ref, "FaxStatus=", sw_parse
        )
        outcomes.append(update.result.outcome)
    assert outcomes == [Outcome.BUSY, Outcome.BUSY, Outcome.DELIVERED]


def test_signalwire_fax_errors(sim: SimProcess) -> None:
    invalid = run(send(signalwire(sim), job("+15005550001", Kind.FAX, media_url=PDF)))
    assert (invalid.outcome, invalid.error_code) == (Outcome.PERMANENT, "21211")
    down = run(send(signalwire(sim), job("+15005550130", Kind.FAX, media_url=PDF)))
    assert down.outcome is Outcome.PROVIDER_ERROR


def test_a_signalwire_fax_is_polled_to_no_answer_and_found(quiet: SimProcess) -> None:
    to = "+15005550111"
    j = job(to, Kind.FAX, media_url=PDF)

    async def scenario(p: SignalWireProvider) -> tuple[list[AttemptResult], list[Any]]:
        since = time.time() - 1
        sent = await p.send(j)
        assert sent.provider_ref is not None
        seen = await poll(p, j, sent.provider_ref)
        return seen, await p.find(j, since, time.time() + 1)

    seen, found = run(using(signalwire(quiet), scenario))
    assert seen[0].outcome is None
    assert (seen[-1].outcome, seen[-1].error_code) == (Outcome.NO_ANSWER, "34003")
    assert [(f.ref, f.result.outcome) for f in found] == [
        (seen[-1].provider_ref, Outcome.NO_ANSWER)
    ]


def test_signalwire_sends_sms_through_laml(sim: SimProcess, receiver: Receiver) -> None:
    sent = run(send(signalwire(sim, receiver), job("+12125550108", Kind.SMS, body="hi")))
    assert sent.provider_ref is not None
    updates = twilio_updates(receiver, "/signalwire", sent.provider_ref, "=delivered", sw_parse)
    assert updates[-1].result.outcome is Outcome.DELIVERED


# -- Telnyx -------------------------------------------------------------------------------


def telnyx_updates(sim: SimProcess, receiver: Receiver, ref: str, final: str) -> list[StatusUpdate]:
    posts = callbacks_for(
        receiver, "/telnyx", ref, lambda mine: any(final in p.body.decode() for p in mine)
    )
    return [
        parse_telnyx_event(p.headers, p.body, public_key=sim.telnyx_public_key, now=time.time())
        for p in posts
    ]


def test_a_telnyx_fax_is_delivered_with_signed_webhooks(
    sim: SimProcess, receiver: Receiver
) -> None:
    j = job("+12125550109", Kind.FAX, media_url=PDF)
    sent = run(send(telnyx(sim, receiver), j))
    assert sent.outcome is None
    assert sent.provider_ref is not None
    updates = telnyx_updates(sim, receiver, sent.provider_ref, "fax.delivered")
    events = [
        json.loads(p.body)["data"]["event_type"]
        for p in callbacks_for(receiver, "/telnyx", sent.provider_ref, bool)
    ]
    assert events == ["fax.queued", "fax.sending.started", "fax.delivered"]
    assert [u.result.outcome for u in updates] == [None, None, Outcome.DELIVERED]
    final = run(using(telnyx(sim), lambda p: p.status(j, sent.provider_ref)))
    assert final.outcome is Outcome.DELIVERED
    assert log_line(sim, sent.provider_ref)["outcome"] == "delivered"


@pytest.mark.parametrize(
    ("to", "outcome", "reason"),
    [
        ("+15005550110", Outcome.BUSY, "user_busy"),
        ("+15005550002", Outcome.PERMANENT, "receiver_unallocated_number"),
    ],
)
def test_telnyx_faxes_that_fail_later(
    sim: SimProcess, receiver: Receiver, to: str, outcome: Outcome, reason: str
) -> None:
    j = job(to, Kind.FAX, media_url=PDF)
    sent = run(send(telnyx(sim, receiver), j))
    assert sent.provider_ref is not None
    updates = telnyx_updates(sim, receiver, sent.provider_ref, "fax.failed")
    assert (updates[-1].result.outcome, updates[-1].result.error_code) == (outcome, reason)


def test_telnyx_api_errors(sim: SimProcess, quiet: SimProcess) -> None:
    invalid = run(send(telnyx(sim), job("+15005550001", Kind.FAX, media_url=PDF)))
    assert (invalid.outcome, invalid.error_code) == (Outcome.PERMANENT, "10016")
    down = run(send(telnyx(sim), job("+15005550130", Kind.FAX, media_url=PDF)))
    assert (down.outcome, down.fault) == (Outcome.PROVIDER_ERROR, Fault.OUTAGE)
    limited = run(send(telnyx(quiet), job("+15005550131", Kind.FAX, media_url=PDF)))
    assert (limited.outcome, limited.retry_after) == (Outcome.RATE_LIMITED, 1.0)
    unauthorized = run(send(telnyx(sim, api_key="wrong"), job(FROM, Kind.FAX, media_url=PDF)))
    assert (unauthorized.outcome, unauthorized.fault) == (Outcome.PROVIDER_ERROR, Fault.AUTH)
    assert invalid.fault is None  # an invalid number is the job's own


def test_a_telnyx_fax_is_polled_to_its_end_and_found(quiet: SimProcess) -> None:
    to = "+12125550110"
    j = job(to, Kind.FAX, media_url=PDF)

    async def scenario(p: Any) -> tuple[list[AttemptResult], list[Any], list[Any]]:
        since = time.time() - 1
        sent = await p.send(j)
        seen = await poll(p, j, sent.provider_ref)
        found = await p.find(j, since, time.time() + 1)
        return seen, found, await p.find(j, since - 7200, since - 3600)

    seen, found, earlier = run(using(telnyx(quiet), scenario))
    assert seen[0].outcome is None
    assert seen[-1].outcome is Outcome.DELIVERED
    assert [(f.ref, f.result.outcome) for f in found] == [
        (seen[-1].provider_ref, Outcome.DELIVERED)
    ]
    assert earlier == []


# -- the simulator's own options ----------------------------------------------------------


def test_dropped_callbacks_are_never_posted(quiet: SimProcess, receiver: Receiver) -> None:
    sent = run(send(twilio(quiet, receiver), job("+12125550111", Kind.SMS, body="hi")))
    assert sent.provider_ref is not None
    quiet.stderr.wait_for(f"dropped .*{sent.provider_ref}", 20, "the dropped callback")
    assert not [p for p in receiver.posts if sent.provider_ref in p.body.decode()]


def test_the_simulator_serves_its_telnyx_public_key(sim: SimProcess) -> None:
    import urllib.request

    with urllib.request.urlopen(sim.url + "/simulator/telnyx-public-key", timeout=10) as r:
        assert r.read().decode() == sim.telnyx_public_key


def test_a_bad_simulator_option_is_one_line(home: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "callgate", "simulator", "--port", "0", "--mix", '{"nope": 1}'],
        cwd=home,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    [line] = [x for x in done.stderr.splitlines() if x.strip()]
    assert "(field: mix)" in line


# -- the whole gateway, switched to the vendors by configuration alone ---------------------


def test_a_worker_sends_through_the_vendors_by_configuration(cg: Any, sim: SimProcess) -> None:
    cg.env |= vendor_env(sim, {"sms": "twilio", "call": "twilio", "fax": "signalwire"})
    cg.env.pop("CALLGATE_SIMULATOR_LOG")  # the HTTP simulator keeps the log now
    store = SQLiteStore(str(cg.db))
    try:
        specs = [
            make_spec("sms", to="+12125550130", body="Your ballot request arrived"),
            make_spec("sms", to="+15005550004", body="unsubscribed"),
            make_spec("call", to="+12125550131", twiml="<Response/>"),
            make_spec("fax", to="+12125550132", media_url=PDF),
        ]
        store.submit(specs, time.time())
    finally:
        store.close()
    done = cg.run("worker", "--drain", timeout=90)
    assert done.returncode == 0, done.stderr
    assert "Unclosed" not in done.stderr  # the adapters' HTTP sessions are closed
    store = SQLiteStore(str(cg.db))
    try:
        jobs = {j.to: {"status": j.status, "reason": j.reason} for j in store.list_jobs(limit=10)}
    finally:
        store.close()
    assert {to: j["status"] for to, j in jobs.items()} == {
        "+12125550130": "delivered",
        "+15005550004": "failed",
        "+12125550131": "delivered",
        "+12125550132": "delivered",
    }
    assert jobs["+15005550004"]["reason"] == "permanent"
    seen = {(x["kind"], x["to"]): x["outcome"] for x in sim.log_lines()}
    assert seen[("sms", "+12125550130")] == "delivered"
    assert seen[("call", "+12125550131")] == "delivered"
    assert seen[("fax", "+12125550132")] == "delivered"
    assert not cg.log.exists()  # nothing went to the built-in simulator
