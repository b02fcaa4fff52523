"""The HTTP API in-process: ``create_app(Gateway(settings))`` over a fresh SQLite file per
test, driven through ``httpx.ASGITransport`` (no sockets, no server).

Every endpoint, happy and unhappy: the error contract (``{"error": {"code", "message",
"field"}}`` with stable codes, a 4xx never a 500), API keys, idempotency, listing and
paging, cancel/retry, health, URL safety (SSRF) and the fax_gateway drop-in.

DNS is faked for every test here (see ``fake_dns``), so no test depends on the network.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from callgate import auth, urls
from callgate.api import create_app
from callgate.api.models import ErrorOut, Health, JobDetail, JobOut, JobPage
from callgate.clock import Clock, ManualClock
from callgate.config import Settings
from callgate.exceptions import StoreError
from callgate.gateway import Gateway
from callgate.testing import run_virtual

PDF = "https://example.org/ballot-request.pdf"
OK_NUMBER = "+15005550006"  # the simulator delivers to it
INVALID_NUMBER = "+15005550001"  # the simulator fails it permanently
OTHER_NUMBER = "+15005550007"

# -- fake DNS ---------------------------------------------------------------------------

DNS: dict[str, list[str]] = {
    "example.org": ["93.184.215.14"],
    "hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "internal.example": ["10.1.2.3"],
    "metadata.example": ["169.254.169.254"],
    "localhost": ["127.0.0.1", "::1"],
}


REAL_RESOLVE = urls.resolve


def fake_resolve(host: str) -> list[str]:
    try:
        return DNS[host]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve names from ``DNS`` only (``check_url`` looks ``callgate.urls.resolve`` up
    when it is called, so patching the module attribute reaches it)."""
    monkeypatch.setattr(urls, "resolve", fake_resolve)


# -- an in-process client ---------------------------------------------------------------

_KEY = object()  # "use the API's own key"


@dataclass
class Api:
    """A synchronous face over an ``httpx.AsyncClient`` on the app's ASGI interface."""

    gw: Gateway
    token: str
    runner: asyncio.Runner
    client: httpx.AsyncClient
    app: Any
    key_id: str = ""

    @property
    def settings(self) -> Settings:
        return self.gw.settings

    def request(
        self,
        method: str,
        url: str,
        *,
        token: Any = _KEY,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        sent: dict[str, str] = {}
        if token is _KEY:
            token = self.token
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        return self.runner.run(self.client.request(method, url, headers=sent, **kw))

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def submit(self, path: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        """POST a job that must be accepted; return it (checked against the schema)."""
        r = self.post(path, json=body, **kw)
        assert r.status_code == 202, r.text
        job = valid(JobOut, r)
        assert r.headers["location"] == f"/v1/jobs/{job['id']}"
        return job

    def sms(self, to: str = OK_NUMBER, **body: Any) -> dict[str, Any]:
        return self.submit("/v1/messages", {"to": to, "body": "hi", **body})

    def new_key(self, name: str = "other") -> tuple[str, str]:
        key, token = auth.create_key(self.gw.store, name, time.time())
        return key.id, token

    def work(self) -> None:
        """Run a worker (on virtual time, against the same database) until drained."""

        async def main(clock: Clock) -> None:
            gw = Gateway(self.settings, clock=clock)
            try:
                await gw.run_worker(drain=True)
            finally:
                gw.close()

        run_virtual(main, epoch=time.time() + 1)


def valid(model: type[BaseModel], r: httpx.Response) -> Any:
    """The response body, after checking it against the model the schema is made of."""
    body = r.json()
    model.model_validate(body)
    return body


def error(r: httpx.Response, status: int, code: str, field: Any = ...) -> dict[str, Any]:
    """Check an error response: status, the JSON error contract, the code (and field)."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = valid(ErrorOut, r)
    assert set(body) == {"error"}
    err: dict[str, Any] = body["error"]
    assert set(err) == {"code", "message", "field"}
    assert err["code"] == code, err
    assert isinstance(err["message"], str)
    assert err["message"].strip()
    if field is not ...:
        assert err["field"] == field, err
    return err


MakeApi = Callable[..., Api]


@pytest.fixture
def make_api(make_settings: Any) -> Iterator[MakeApi]:
    made: list[Api] = []

    def make(clock: Clock | None = None, **overrides: Any) -> Api:
        settings = make_settings(**overrides)
        gw = Gateway(settings, clock=clock)
        key, token = auth.create_key(gw.store, "test", time.time())
        app = create_app(gw)
        runner = asyncio.Runner()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cg")
        api = Api(gw=gw, token=token, runner=runner, client=client, app=app, key_id=key.id)
        made.append(api)
        return api

    yield make
    for api in made:
        api.runner.run(api.client.aclose())
        api.runner.close()
        api.gw.close()


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api()


def iso(ts: float, offset_hours: int = 0) -> str:
    return datetime.fromtimestamp(ts, timezone(timedelta(hours=offset_hours))).isoformat()


# -- submit: each kind ------------------------------------------------------------------

SUBMITS = [
    pytest.param(
        "/v1/faxes", {"to": OK_NUMBER, "media_url": PDF}, "fax", {"media_url": PDF}, id="fax"
    ),
    pytest.param(
        "/v1/messages", {"to": OK_NUMBER, "body": "hello"}, "sms", {"body": "hello"}, id="sms"
    ),
    pytest.param(
        "/v1/messages",
        {"to": OK_NUMBER, "media_url": PDF},
        "sms",
        {"media_url": PDF},
        id="mms-only",
    ),
    pytest.param(
        "/v1/calls",
        {"to": OK_NUMBER, "twiml": "<Response><Say>hi</Say></Response>"},
        "call",
        {"twiml": "<Response><Say>hi</Say></Response>"},
        id="call-twiml",
    ),
    pytest.param(
        "/v1/calls",
        {"to": OK_NUMBER, "url": "https://example.org/twiml"},
        "call",
        {"url": "https://example.org/twiml"},
        id="call-url",
    ),
    pytest.param(
        "/v1/requests",
        {"api": "lookup", "to": OK_NUMBER, "method": "GET", "params": {"type": "carrier"}},
        "request",
        {"api": "lookup", "method": "GET", "params": {"type": "carrier"}},
        id="request",
    ),
]


@pytest.mark.parametrize(("path", "body", "kind", "payload"), SUBMITS)
def test_submit_answers_202_with_the_job_its_location_and_links(
    api: Api, path: str, body: dict[str, Any], kind: str, payload: dict[str, Any]
) -> None:
    r = api.post(path, json=body)
    assert r.status_code == 202, r.text
    job = valid(JobOut, r)
    assert job["kind"] == kind
    assert job["status"] == "queued"
    assert job["attempts"] == 0
    assert job["to"] == OK_NUMBER
    assert job["payload"] == payload
    assert isinstance(job["id"], int)
    base = f"/v1/jobs/{job['id']}"
    assert r.headers["location"] == base
    assert job["links"] == {"self": base, "cancel": f"{base}/cancel", "retry": f"{base}/retry"}
    assert "idempotent-replayed" not in r.headers
    # and it is there to read back
    shown = api.get(base)
    assert shown.status_code == 200, shown.text
    detail = valid(JobDetail, shown)
    assert {k: detail[k] for k in job if not k.endswith("_at")} == {
        k: v for k, v in job.items() if not k.endswith("_at")
    }


@pytest.mark.parametrize(("path", "body", "kind", "payload"), SUBMITS)
def test_a_submitted_job_reads_back_the_same(
    api: Api, path: str, body: dict[str, Any], kind: str, payload: dict[str, Any]
) -> None:
    job = api.submit(path, body)
    detail = valid(JobDetail, api.get(job["links"]["self"]))
    assert {k: detail[k] for k in job} == job


def test_a_request_that_contacts_someone_needs_its_number(api: Api) -> None:
    r = api.post("/v1/requests", json={"api": "verify", "params": {"ServiceSid": "VA1"}})
    err = error(r, 400, "missing_field", "to")
    assert "contacts someone" in err["message"]
    raw = {"domain": "api", "path": "/2010-04-01/Accounts/AC1/Messages.json", "params": {}}
    r = api.post("/v1/requests", json={"api": "raw", "params": raw})
    error(r, 400, "missing_field", "to")


def test_a_request_is_the_number_its_params_name(api: Api) -> None:
    job = api.submit(
        "/v1/requests", {"api": "verify", "params": {"ServiceSid": "VA1", "To": "+1 500 555 0006"}}
    )
    assert (job["to"], job["group_key"]) == (OK_NUMBER, OK_NUMBER)
    raw = {"domain": "api", "path": "/Calls.json", "params": {"To": OK_NUMBER, "Url": "x"}}
    assert api.submit("/v1/requests", {"api": "raw", "params": raw})["to"] == OK_NUMBER
    r = api.post(
        "/v1/requests",
        json={"api": "verify", "to": "+15005550007", "params": {"To": OK_NUMBER}},
    )
    err = error(r, 400, "invalid_request", "params.To")
    assert "different numbers" in err["message"]
    r = api.post("/v1/requests", json={"api": "studio", "params": {"To": "call me maybe"}})
    error(r, 400, "invalid_phone_number", "params.To")


def test_a_request_that_contacts_nobody_needs_no_number(api: Api) -> None:
    read = {"domain": "api", "method": "GET", "path": "/2010-04-01/Accounts/AC1.json"}
    job = api.submit("/v1/requests", {"api": "raw", "method": "GET", "params": read})
    assert job["to"] is None
    update = {"domain": "messaging", "path": "/v1/Services", "params": {"FriendlyName": "x"}}
    assert api.submit("/v1/requests", {"api": "raw", "params": update})["to"] is None


def test_numbers_are_normalised_to_e164(api: Api) -> None:
    job = api.submit(
        "/v1/messages", {"to": "+1 (500) 555-0006", "from": "+1 500 555 0007", "body": "x"}
    )
    assert job["to"] == OK_NUMBER
    assert job["payload"]["from"] == OTHER_NUMBER


def test_optional_fields_are_kept_on_the_job(api: Api) -> None:
    not_before = datetime.now(UTC) + timedelta(hours=1)
    body = {
        "to": OK_NUMBER,
        "media_url": PDF,
        "callback_url": "https://hooks.example.com/callgate",
        "metadata": {"voter": 17, "tags": ["a", "b"]},
        "strict_order": True,
        "max_attempts": 3,
        "not_before": not_before.isoformat(),
        "expires_at": (not_before + timedelta(days=1)).isoformat(),
    }
    job = api.submit("/v1/faxes", body)
    assert job["callback_url"] == body["callback_url"]
    assert job["metadata"] == body["metadata"]
    assert job["strict_order"] is True
    assert job["max_attempts"] == 3
    assert datetime.fromisoformat(job["not_before"]) == not_before
    assert datetime.fromisoformat(job["run_at"]) == not_before
    assert datetime.fromisoformat(job["expires_at"]) == not_before + timedelta(days=1)


# -- submit: bad input is a 400 with a stable code ------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/messages", {"to": "not a number", "body": "x"}, "to"),
        ("/v1/messages", {"to": "+1555", "body": "x"}, "to"),
        ("/v1/faxes", {"to": "+99912345", "media_url": PDF}, "to"),
        ("/v1/calls", {"to": "12", "twiml": "<x/>"}, "to"),
        ("/v1/requests", {"api": "lookup", "to": "abc"}, "to"),
        ("/v1/messages", {"to": OK_NUMBER, "from": "nope", "body": "x"}, "from"),
    ],
)
def test_invalid_phone_number(api: Api, path: str, body: dict[str, Any], field: str) -> None:
    error(api.post(path, json=body), 400, "invalid_phone_number", field)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/faxes", {"to": OK_NUMBER, "media_url": "ftp://example.org/a.pdf"}, "media_url"),
        ("/v1/faxes", {"to": OK_NUMBER, "media_url": "ballot.pdf"}, "media_url"),
        ("/v1/messages", {"to": OK_NUMBER, "media_url": "file:///etc/passwd"}, "media_url"),
        ("/v1/calls", {"to": OK_NUMBER, "url": "javascript:alert(1)"}, "url"),
        (
            "/v1/messages",
            {"to": OK_NUMBER, "body": "x", "callback_url": "mailto:a@example.org"},
            "callback_url",
        ),
        ("/v1/requests", {"api": "lookup", "callback_url": "//example.org/x"}, "callback_url"),
    ],
)
def test_invalid_url(api: Api, path: str, body: dict[str, Any], field: str) -> None:
    error(api.post(path, json=body), 400, "invalid_url", field)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/messages", {"to": "", "body": "x"}, "to"),
        ("/v1/messages", {"to": "   ", "body": "x"}, "to"),
        ("/v1/messages", {"to": OK_NUMBER}, "body"),
        ("/v1/messages", {"to": OK_NUMBER, "body": ""}, "body"),
        ("/v1/faxes", {"to": OK_NUMBER, "media_url": ""}, "media_url"),
        ("/v1/calls", {"to": OK_NUMBER}, "twiml"),
        ("/v1/calls", {"to": OK_NUMBER, "twiml": "<x/>", "url": "https://example.org/t"}, "twiml"),
        ("/v1/requests", {"api": ""}, "api"),
    ],
)
def test_missing_field(api: Api, path: str, body: dict[str, Any], field: str) -> None:
    error(api.post(path, json=body), 400, "missing_field", field)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/faxes", {"media_url": PDF}, "to"),
        ("/v1/faxes", {"to": OK_NUMBER}, "media_url"),
        ("/v1/requests", {}, "api"),
        ("/compat/fax-gateway/faxes", {"to": OK_NUMBER, "pdf_url": PDF}, "fax_id"),
    ],
)
def test_a_required_field_left_out_is_missing_field(
    api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    error(api.post(path, json=body), 400, "missing_field", field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": 15005550006, "body": "x"}, "to"),
        ({"to": OK_NUMBER, "body": "x", "metadata": "voter 17"}, "metadata"),
        ({"to": OK_NUMBER, "body": "x", "max_attempts": "many"}, "max_attempts"),
        ({"to": OK_NUMBER, "body": "x", "max_attempts": 0}, "max_attempts"),
        ({"to": OK_NUMBER, "body": "x", "max_attempts": 101}, "max_attempts"),
        ({"to": OK_NUMBER, "body": "x", "strict_order": {"yes": 1}}, "strict_order"),
        ({"to": OK_NUMBER, "body": "x", "not_before": "tomorrow"}, "not_before"),
        ({"to": OK_NUMBER, "body": "x", "idempotency_key": "k" * 256}, "idempotency_key"),
        ({"to": OK_NUMBER, "body": "x", "priority": "high"}, "priority"),
        ({"to": OK_NUMBER, "body": "x", "kind": "fax"}, "kind"),
    ],
)
def test_wrong_types_and_extra_fields_are_invalid_request(
    api: Api, body: dict[str, Any], field: str
) -> None:
    err = error(api.post("/v1/messages", json=body), 400, "invalid_request", field)
    assert err["message"].startswith(f"{field}: ")


@pytest.mark.parametrize("value", [["x"], "x" * 1601, 7])
def test_an_error_in_the_sms_body_field_names_it(api: Api, value: Any) -> None:
    r = api.post("/v1/messages", json={"to": OK_NUMBER, "body": value})
    err = error(r, 400, "invalid_request", "body")
    assert err["message"].startswith("body: ")


def test_an_unknown_request_method_is_invalid_request(api: Api) -> None:
    r = api.post("/v1/requests", json={"api": "lookup", "method": "TRACE"})
    error(r, 400, "invalid_request", "method")


@pytest.mark.parametrize("raw", [b"[]", b'["to"]', b'"text"', b"42", b"null", b"true"])
def test_a_body_that_is_not_an_object_is_invalid_request(api: Api, raw: bytes) -> None:
    r = api.post("/v1/messages", content=raw, headers={"Content-Type": "application/json"})
    error(r, 400, "invalid_request")


@pytest.mark.parametrize("raw", [b"{", b"{'to': 1}", b"to=+15005550006", b"\xff\xfe"])
def test_a_body_that_is_not_json_is_invalid_request(api: Api, raw: bytes) -> None:
    r = api.post("/v1/messages", content=raw, headers={"Content-Type": "application/json"})
    error(r, 400, "invalid_request")


def test_a_form_body_is_invalid_request(api: Api) -> None:
    r = api.post("/v1/messages", data={"to": OK_NUMBER, "body": "x"})
    error(r, 400, "invalid_request")


def test_an_empty_body_is_invalid_request(api: Api) -> None:
    error(api.post("/v1/faxes"), 400, "invalid_request", None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"not_before": "2031-01-01T09:00:00"}, "not_before"),
        ({"expires_at": "2031-01-01T09:00:00"}, "expires_at"),
        (
            {"not_before": "2031-01-02T00:00:00Z", "expires_at": "2031-01-01T00:00:00Z"},
            "expires_at",
        ),
    ],
)
def test_bad_times_are_invalid_request(api: Api, body: dict[str, Any], field: str) -> None:
    r = api.post("/v1/messages", json={"to": OK_NUMBER, "body": "x", **body})
    error(r, 400, "invalid_request", field)


@pytest.mark.parametrize(
    "body",
    [
        # outside years 1-9999 once in UTC: these could be stored but never read back
        {"not_before": "0001-01-01T00:00:00+14:00"},
        {"expires_at": "9999-12-31T23:59:59-14:00"},
        # before the unix epoch
        {"not_before": "1969-07-20T20:17:00Z"},
    ],
)
def test_times_out_of_range_are_invalid_time(api: Api, body: dict[str, Any]) -> None:
    r = api.post("/v1/messages", json={"to": OK_NUMBER, "body": "x", **body})
    (field,) = body
    error(r, 400, "invalid_time", field)


# -- body size ----------------------------------------------------------------------------


@pytest.fixture
def small(make_api: MakeApi) -> Api:
    return make_api(max_body_bytes=1024)


def test_a_body_over_the_limit_is_413_by_its_content_length(small: Api) -> None:
    raw = b'{"to": "+15005550006", "body": "' + b"x" * 1100 + b'"}'
    r = small.post("/v1/messages", content=raw, headers={"Content-Type": "application/json"})
    assert r.request.headers["content-length"] == str(len(raw))
    error(r, 413, "payload_too_large")


def test_a_chunked_body_over_the_limit_is_413_as_it_arrives(small: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"to": "+15005550006", "body": "'
        for _ in range(8):
            yield b"x" * 200
        yield b'"}'

    r = small.post("/v1/messages", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    error(r, 413, "payload_too_large")
    assert small.gw.store.list_jobs() == []


def test_a_chunked_body_within_the_limit_is_accepted(small: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"to": "+15005550006", '
        yield b'"body": "' + b"x" * 500 + b'"}'

    r = small.post("/v1/messages", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text


def test_the_limit_applies_before_authentication(small: Api) -> None:
    r = small.post("/v1/messages", content=b"x" * 2048, token=None)
    error(r, 413, "payload_too_large")


# -- idempotency --------------------------------------------------------------------------


def test_same_idempotency_key_in_the_header_gives_the_same_job(api: Api) -> None:
    body = {"to": OK_NUMBER, "media_url": PDF}
    first = api.post("/v1/faxes", json=body, headers={"Idempotency-Key": "ballot-17"})
    again = api.post("/v1/faxes", json=body, headers={"Idempotency-Key": "ballot-17"})
    assert first.status_code == again.status_code == 202
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert first.json()["idempotency_key"] == "ballot-17"
    assert len(api.gw.store.list_jobs()) == 1


def test_same_idempotency_key_in_the_body_gives_the_same_job(api: Api) -> None:
    body = {"to": OK_NUMBER, "body": "hi", "idempotency_key": "k-1"}
    first = api.submit("/v1/messages", body)
    again = api.post("/v1/messages", json=body)
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first["id"]
    assert len(api.gw.store.list_jobs()) == 1


def test_header_and_field_are_the_same_key(api: Api) -> None:
    by_header = api.submit(
        "/v1/messages", {"to": OK_NUMBER, "body": "hi"}, headers={"Idempotency-Key": "k-2"}
    )
    by_field = api.submit("/v1/messages", {"to": OK_NUMBER, "body": "hi", "idempotency_key": "k-2"})
    both = api.submit(
        "/v1/messages",
        {"to": OK_NUMBER, "body": "hi", "idempotency_key": "k-2"},
        headers={"Idempotency-Key": "k-2"},
    )
    assert by_header["id"] == by_field["id"] == both["id"]


def test_header_and_field_that_differ_are_refused(api: Api) -> None:
    r = api.post(
        "/v1/messages",
        json={"to": OK_NUMBER, "body": "hi", "idempotency_key": "a"},
        headers={"Idempotency-Key": "b"},
    )
    error(r, 400, "invalid_request", "idempotency_key")
    assert api.gw.store.list_jobs() == []


@pytest.mark.parametrize(
    ("path", "other"),
    [
        ("/v1/messages", {"to": OK_NUMBER, "body": "something else"}),
        ("/v1/messages", {"to": OTHER_NUMBER, "body": "hi"}),
        ("/v1/messages", {"to": OK_NUMBER, "body": "hi", "metadata": {"v": 2}}),
        ("/v1/faxes", {"to": OK_NUMBER, "media_url": PDF}),
    ],
)
def test_same_key_for_another_request_is_409(api: Api, path: str, other: dict[str, Any]) -> None:
    first = api.submit(
        "/v1/messages", {"to": OK_NUMBER, "body": "hi"}, headers={"Idempotency-Key": "k-3"}
    )
    r = api.post(path, json=other, headers={"Idempotency-Key": "k-3"})
    err = error(r, 409, "idempotency_conflict", "idempotency_key")
    assert str(first["id"]) in err["message"]
    assert len(api.gw.store.list_jobs()) == 1


def test_idempotency_keys_are_scoped_per_api_key(api: Api) -> None:
    _, other = api.new_key("another app")
    body = {"to": OK_NUMBER, "body": "hi"}
    mine = api.submit("/v1/messages", body, headers={"Idempotency-Key": "shared"})
    theirs = api.submit("/v1/messages", body, headers={"Idempotency-Key": "shared"}, token=other)
    assert mine["id"] != theirs["id"]
    # ... and each key still maps to its own job
    again = api.submit("/v1/messages", body, headers={"Idempotency-Key": "shared"}, token=other)
    assert again["id"] == theirs["id"]
    # a different body under the other key is no conflict with mine
    api.submit(
        "/v1/messages", {"to": OTHER_NUMBER, "body": "x"}, headers={"Idempotency-Key": "shared2"}
    )
    api.submit(
        "/v1/messages",
        {"to": OK_NUMBER, "body": "y"},
        headers={"Idempotency-Key": "shared2"},
        token=other,
    )


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_a_bad_idempotency_header_is_invalid_request(api: Api, key: str) -> None:
    r = api.post(
        "/v1/messages", json={"to": OK_NUMBER, "body": "hi"}, headers={"Idempotency-Key": key}
    )
    error(r, 400, "invalid_request")


# -- authentication -----------------------------------------------------------------------


def secured_routes(app: Any) -> list[tuple[str, str]]:
    """Every operation the OpenAPI document lists under /v1 and /compat, ids set to 1."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith(("/v1/", "/compat/")):
            concrete = re.sub(r"\{[^}]+\}", "1", path)
            found += [(method.upper(), concrete) for method in sorted(operations)]
    return found


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": ""}, id="empty"),
        pytest.param({"Authorization": "Bearer"}, id="bearer-no-token"),
        pytest.param({"Authorization": "Bearer    "}, id="bearer-blank"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic"),
        pytest.param({"Authorization": "Token cg_abc"}, id="other-scheme"),
        pytest.param({"Authorization": "cg_abcdef"}, id="no-scheme"),
        pytest.param({"Authorization": "Bearer cg_" + "A" * 43}, id="unknown-key"),
        pytest.param({"Authorization": "Bearer not-a-callgate-key"}, id="not-a-key"),
        pytest.param({"X-Api-Key": "whatever"}, id="wrong-header"),
    ],
)
def test_every_secured_route_is_401_without_a_valid_key(api: Api, headers: dict[str, str]) -> None:
    routes = secured_routes(api.app)
    assert ("POST", "/v1/faxes") in routes
    assert ("GET", "/v1/jobs/1") in routes
    assert ("POST", "/compat/fax-gateway/faxes") in routes
    for method, path in routes:
        r = api.request(method, path, token=None, headers=headers, json={})
        err = error(r, 401, "unauthorized", None)
        assert r.headers["www-authenticate"] == "Bearer", (method, path)
        assert err["message"]
    assert api.gw.store.list_jobs() == []


def test_the_right_key_with_the_scheme_in_any_case_is_accepted(api: Api) -> None:
    r = api.get("/v1/jobs", token=None, headers={"Authorization": f"bearer {api.token}"})
    assert r.status_code == 200, r.text


def test_a_revoked_key_is_401(api: Api) -> None:
    key_id, token = api.new_key("soon revoked")
    assert api.get("/v1/jobs", token=token).status_code == 200
    assert api.gw.keys.revoke(key_id)  # in this process: at once, reads included
    error(api.get("/v1/jobs", token=token), 401, "unauthorized")
    error(
        api.post("/v1/messages", json={"to": OK_NUMBER, "body": "x"}, token=token),
        401,
        "unauthorized",
    )
    # the other keys still work
    assert api.get("/v1/jobs").status_code == 200


def test_a_key_revoked_elsewhere_sends_nothing_more_and_reads_until_the_cache_ends(
    make_api: MakeApi,
) -> None:
    """Another process (``callgate keys revoke``) revokes the key: the API's look-up of
    it may be remembered (PostgreSQL: ``api_key_cache_seconds``), but its submits are
    refused at once (the submit's transaction checks the key) and its reads end when
    the cache does."""
    clock = ManualClock(1_700_000_000.0)
    api = make_api(clock=clock, api_key_cache_seconds=5)
    key_id, token = api.new_key("revoked elsewhere")
    assert api.get("/v1/jobs", token=token).status_code == 200
    assert api.gw.store.revoke_api_key(key_id, clock.now())  # not through this gateway
    for path, body in [
        ("/v1/messages", {"to": OK_NUMBER, "body": "x"}),
        ("/v1/faxes", {"to": OK_NUMBER, "media_url": PDF}),
    ]:
        error(api.post(path, json=body, token=token), 401, "unauthorized")
    assert api.gw.store.list_jobs() == []
    clock.advance(5.01)
    error(api.get("/v1/jobs", token=token), 401, "unauthorized")
    assert api.get("/v1/jobs").status_code == 200


def test_valid_keys_are_looked_up_once_per_cache_period_on_postgres(
    make_api: MakeApi, backend: str
) -> None:
    clock = ManualClock(1_700_000_000.0)
    api = make_api(clock=clock, api_key_cache_seconds=5)
    looked: list[str] = []
    real = api.gw.store.api_key_by_hash
    api.gw.store.api_key_by_hash = lambda h: looked.append(h) or real(h)  # type: ignore[method-assign]
    for _ in range(3):
        assert api.get("/v1/jobs").status_code == 200
    clock.advance(5.01)
    assert api.get("/v1/jobs").status_code == 200
    bad = "cg_" + "x" * 43  # an unknown key is never remembered
    for _ in range(2):
        error(api.get("/v1/jobs", token=bad), 401, "unauthorized")
    # PostgreSQL (a store over the network): one look-up per period; SQLite: every time
    assert len(looked) == (2 + 2 if backend == "postgres" else 4 + 2)


def test_keys_are_stored_hashed(api: Api) -> None:
    rows = api.gw.store._read("SELECT * FROM api_keys")  # type: ignore[attr-defined]
    flat = [str(v) for row in rows for v in row]
    assert api.token not in flat
    assert hashlib.sha256(api.token.encode()).hexdigest() in flat


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json", "/docs"])
def test_health_and_docs_need_no_key(api: Api, path: str) -> None:
    assert api.get(path, token=None).status_code == 200


# -- listing --------------------------------------------------------------------------------


def ids(page: dict[str, Any]) -> list[int]:
    return [j["id"] for j in page["data"]]


def list_jobs(api: Api, **params: Any) -> dict[str, Any]:
    r = api.get("/v1/jobs", params=params)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = valid(JobPage, r)
    return page


def test_jobs_are_listed_newest_first(api: Api) -> None:
    made = [api.sms()["id"] for _ in range(3)]
    page = list_jobs(api)
    assert ids(page) == made[::-1]
    assert page["next_cursor"] is None
    for job in page["data"]:
        assert job["links"]["self"] == f"/v1/jobs/{job['id']}"


def test_an_empty_list(api: Api) -> None:
    assert list_jobs(api) == {"data": [], "next_cursor": None}


def test_filter_by_status(api: Api) -> None:
    a, b, c = (api.sms()["id"] for _ in range(3))
    assert api.post(f"/v1/jobs/{b}/cancel").status_code == 200
    assert ids(list_jobs(api, status="canceled")) == [b]
    assert ids(list_jobs(api, status="queued")) == [c, a]
    assert ids(list_jobs(api, status="delivered")) == []


@pytest.mark.parametrize("spelling", ["+15005550006", "+1 500 555 0006", "+1 (500) 555-0006"])
def test_filter_by_number_in_any_spelling(api: Api, spelling: str) -> None:
    mine = api.sms(OK_NUMBER)["id"]
    api.sms(OTHER_NUMBER)
    assert ids(list_jobs(api, to=spelling)) == [mine]


def test_filter_by_a_national_number_uses_the_default_region(make_api: MakeApi) -> None:
    api = make_api(default_region="US")
    job = api.submit("/v1/messages", {"to": "(500) 555-0006", "body": "hi"})
    assert job["to"] == OK_NUMBER
    r = api.get("/v1/jobs", params={"to": "(500) 555-0006"})
    assert r.status_code == 200, r.text
    assert ids(r.json()) == [job["id"]]


@pytest.mark.parametrize(
    ("to", "code"), [("not a number", "invalid_phone_number"), ("", "missing_field")]
)
def test_filter_by_a_bad_number_is_400(api: Api, to: str, code: str) -> None:
    error(api.get("/v1/jobs", params={"to": to}), 400, code, "to")


@pytest.fixture
def timeline(make_api: MakeApi) -> tuple[Api, list[int], float]:
    """Three jobs one minute apart, at t0, t0+60 and t0+120."""
    clock = ManualClock(1_800_000_000.0)
    api = make_api(clock=clock)
    made = []
    for _ in range(3):
        made.append(api.sms()["id"])
        clock.advance(60)
    return api, made, 1_800_000_000.0


def test_filter_by_creation_time(timeline: tuple[Api, list[int], float]) -> None:
    api, (a, b, c), t0 = timeline
    assert ids(list_jobs(api, created_after=iso(t0 + 30))) == [c, b]
    assert ids(list_jobs(api, created_before=iso(t0 + 90))) == [b, a]
    assert ids(list_jobs(api, created_after=iso(t0 + 30), created_before=iso(t0 + 90))) == [b]
    assert ids(list_jobs(api, created_after=iso(t0 + 500))) == []


def test_creation_times_may_carry_any_offset(timeline: tuple[Api, list[int], float]) -> None:
    api, (_, b, c), t0 = timeline
    after = iso(t0 + 30, offset_hours=-5)
    assert after.endswith("-05:00")
    assert ids(list_jobs(api, created_after=after)) == [c, b]


def test_the_creation_range_is_half_open(timeline: tuple[Api, list[int], float]) -> None:
    api, (_, b, _), t0 = timeline
    at_b = iso(t0 + 60)
    assert b in ids(list_jobs(api, created_after=at_b))
    assert b not in ids(list_jobs(api, created_before=at_b))


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("created_after", "2030-01-01T00:00:00"),
        ("created_after", "yesterday"),
        ("created_before", "yesterday"),
    ],
)
def test_bad_creation_times_are_400(api: Api, param: str, value: str) -> None:
    error(api.get("/v1/jobs", params={param: value}), 400, "invalid_request", param)


def test_a_naive_created_before_names_its_own_field(api: Api) -> None:
    r = api.get("/v1/jobs", params={"created_before": "2030-01-01T00:00:00"})
    error(r, 400, "invalid_request", "created_before")


@pytest.mark.parametrize(("total", "limit"), [(10, 3), (9, 3), (5, 1), (4, 10), (6, 6)])
def test_cursor_pagination_visits_every_job_exactly_once(api: Api, total: int, limit: int) -> None:
    made = [api.sms()["id"] for _ in range(total)]
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(total + 2):
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        page = list_jobs(api, **params)
        assert len(page["data"]) <= limit
        seen += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    else:
        pytest.fail("pagination did not end")
    assert seen == made[::-1]


def test_pagination_keeps_the_filters(api: Api) -> None:
    mine = []
    for i in range(7):
        mine.append(api.sms(OK_NUMBER, body=f"m{i}")["id"])
        api.sms(OTHER_NUMBER, body=f"o{i}")
    seen: list[int] = []
    page = list_jobs(api, to=OK_NUMBER, limit=2)
    while True:
        seen += ids(page)
        if page["next_cursor"] is None:
            break
        page = list_jobs(api, to=OK_NUMBER, limit=2, cursor=page["next_cursor"])
    assert seen == mine[::-1]


def test_jobs_submitted_while_paging_do_not_disturb_the_pages(api: Api) -> None:
    made = [api.sms()["id"] for _ in range(4)]
    first = list_jobs(api, limit=2)
    api.sms()
    second = list_jobs(api, limit=2, cursor=first["next_cursor"])
    assert ids(first) + ids(second) == made[::-1]


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "", " 3", "x" * 33])
def test_a_bad_cursor_is_400(api: Api, cursor: str) -> None:
    error(api.get("/v1/jobs", params={"cursor": cursor}), 400, "invalid_request", "cursor")


@pytest.mark.parametrize("cursor", ["9" * 19, "9" * 20, str(2**63)])
def test_a_cursor_too_large_for_sqlite_is_400(api: Api, cursor: str) -> None:
    error(api.get("/v1/jobs", params={"cursor": cursor}), 400, "invalid_request", "cursor")


@pytest.mark.parametrize("cursor", ["\u00b2", "\u00b9\u2075"])
def test_a_cursor_of_non_ascii_digits_is_400(api: Api, cursor: str) -> None:
    error(api.get("/v1/jobs", params={"cursor": cursor}), 400, "invalid_request", "cursor")


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 1001}, {"limit": "ten"}, {"status": "lost"}]
)
def test_bad_list_parameters_are_400(api: Api, params: dict[str, Any]) -> None:
    (name,) = params
    error(api.get("/v1/jobs", params=params), 400, "invalid_request", name)


# -- one job, cancel and retry --------------------------------------------------------------


def test_a_queued_job_has_one_event_and_no_attempts(api: Api) -> None:
    job = api.sms()
    detail = valid(JobDetail, api.get(job["links"]["self"]))
    assert detail["attempt_log"] == []
    assert [e["type"] for e in detail["events"]] == ["job.queued"]
    assert detail["events"][0]["job_id"] == job["id"]


def test_a_delivered_job_shows_its_attempt_and_events(api: Api) -> None:
    job = api.sms(OK_NUMBER)
    api.work()
    detail = valid(JobDetail, api.get(job["links"]["self"]))
    assert detail["status"] == "delivered"
    assert detail["attempts"] == 1
    [attempt] = detail["attempt_log"]
    assert (attempt["number"], attempt["state"], attempt["outcome"]) == (1, "done", "delivered")
    assert attempt["counted"] is True
    assert attempt["provider_ref"]
    types = [e["type"] for e in detail["events"]]
    assert types[0] == "job.queued"
    assert types[-1] == "job.delivered"
    assert "job.in_flight" in types
    assert [e["id"] for e in detail["events"]] == sorted(e["id"] for e in detail["events"])


def test_a_failed_job_shows_the_provider_error(api: Api) -> None:
    job = api.sms(INVALID_NUMBER)
    api.work()
    detail = valid(JobDetail, api.get(job["links"]["self"]))
    assert detail["status"] == "failed"
    assert detail["reason"]
    [attempt] = detail["attempt_log"]
    assert attempt["outcome"] == "permanent"
    assert attempt["error_code"]
    assert detail["events"][-1]["type"] == "job.failed"


def test_cancel_a_queued_job_then_retry_it(api: Api) -> None:
    job = api.sms()
    r = api.post(job["links"]["cancel"])
    assert r.status_code == 200, r.text
    canceled = valid(JobOut, r)
    assert canceled["status"] == "canceled"
    assert canceled["id"] == job["id"]
    assert canceled["links"] == job["links"]
    error(api.post(job["links"]["cancel"]), 409, "invalid_state")
    r = api.post(job["links"]["retry"])
    assert r.status_code == 200, r.text
    again = valid(JobOut, r)
    assert (again["status"], again["attempts"]) == ("queued", 0)
    types = [e["type"] for e in valid(JobDetail, api.get(job["links"]["self"]))["events"]]
    assert types == ["job.queued", "job.canceled", "job.queued"]


def test_retry_a_failed_job(api: Api) -> None:
    job = api.sms(INVALID_NUMBER)
    api.work()
    r = api.post(job["links"]["retry"])
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["attempts"]) == ("queued", 0)


def test_a_delivered_job_can_be_neither_canceled_nor_retried(api: Api) -> None:
    job = api.sms()
    api.work()
    err = error(api.post(job["links"]["cancel"]), 409, "invalid_state")
    assert "delivered" in err["message"]
    error(api.post(job["links"]["retry"]), 409, "invalid_state")
    assert api.gw.job(job["id"]).status == "delivered"


def test_a_queued_job_cannot_be_retried(api: Api) -> None:
    job = api.sms()
    err = error(api.post(job["links"]["retry"]), 409, "invalid_state")
    assert "queued" in err["message"]


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("POST", "/cancel"), ("POST", "/retry")]
)
def test_an_unknown_job_is_404(api: Api, method: str, suffix: str) -> None:
    api.sms()
    error(api.request(method, f"/v1/jobs/999{suffix}"), 404, "not_found")


@pytest.mark.parametrize("job_id", ["abc", "1.5", "-"])
def test_a_job_id_that_is_not_a_number_is_400(api: Api, job_id: str) -> None:
    error(api.get(f"/v1/jobs/{job_id}"), 400, "invalid_request", "job_id")


@pytest.mark.parametrize("job_id", [2**63, -(2**63) - 1, 0, -1])
@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("POST", "/cancel"), ("POST", "/retry")]
)
def test_a_job_id_out_of_range_is_400(api: Api, method: str, suffix: str, job_id: int) -> None:
    r = api.request(method, f"/v1/jobs/{job_id}{suffix}")
    error(r, 400, "invalid_request", "job_id")


def test_an_unknown_route_is_404_in_the_error_format(api: Api) -> None:
    error(api.get("/v1/nothing-here"), 404, "not_found")


def test_a_wrong_method_is_405_in_the_error_format(api: Api) -> None:
    error(api.request("DELETE", "/v1/faxes"), 405, "method_not_allowed")


def test_a_405_says_which_methods_are_allowed(api: Api) -> None:
    r = api.request("DELETE", "/v1/faxes")
    assert r.status_code == 405
    assert r.headers.get("allow") == "POST"


# -- health ---------------------------------------------------------------------------------


def test_healthz(api: Api) -> None:
    r = api.get("/healthz", token=None)
    assert r.status_code == 200
    assert valid(Health, r) == {"status": "ok"}


def test_readyz_when_the_database_answers(api: Api) -> None:
    r = api.get("/readyz", token=None)
    assert r.status_code == 200
    assert valid(Health, r) == {"status": "ok"}


def test_readyz_is_503_when_the_store_is_closed(api: Api) -> None:
    api.gw.store.close()
    error(api.get("/readyz", token=None), 503, "store_error")
    # the process itself is still alive
    assert api.get("/healthz", token=None).status_code == 200


def test_readyz_is_503_when_the_database_fails(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise StoreError("database error: disk I/O error")

    monkeypatch.setattr(api.gw.store, "ping", broken)
    err = error(api.get("/readyz", token=None), 503, "store_error")
    assert "disk I/O error" in err["message"]


def test_a_database_failure_on_submit_is_503(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("database error: database is locked")

    monkeypatch.setattr(api.gw.store, "submit", broken)
    error(api.post("/v1/messages", json={"to": OK_NUMBER, "body": "x"}), 503, "store_error")


def test_openapi_and_docs_are_served(api: Api) -> None:
    doc = api.get("/openapi.json", token=None).json()
    for path in [
        "/v1/faxes",
        "/v1/messages",
        "/v1/calls",
        "/v1/requests",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/jobs/{job_id}/retry",
        "/healthz",
        "/readyz",
        "/compat/fax-gateway/faxes",
    ]:
        assert path in doc["paths"], path
    docs = api.get("/docs", token=None)
    assert docs.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in docs.text


# -- URL safety (SSRF) ------------------------------------------------------------------------

URL_FIELDS = [
    pytest.param("/v1/faxes", {"to": OK_NUMBER}, "media_url", id="fax-media"),
    pytest.param("/v1/messages", {"to": OK_NUMBER}, "media_url", id="mms-media"),
    pytest.param("/v1/messages", {"to": OK_NUMBER, "body": "x"}, "callback_url", id="callback"),
    pytest.param("/v1/calls", {"to": OK_NUMBER}, "url", id="call-url"),
    pytest.param("/v1/requests", {"api": "lookup"}, "callback_url", id="request-callback"),
    pytest.param(
        "/compat/fax-gateway/faxes",
        {"fax_id": "f-1", "to": OK_NUMBER},
        "pdf_url",
        id="compat-pdf",
    ),
]


def with_url(path: str, base: dict[str, Any], name: str, url: str) -> dict[str, Any]:
    body = dict(base, **{name: url})
    if path == "/v1/faxes" and name != "media_url":
        body["media_url"] = PDF
    if path.startswith("/compat") and name != "pdf_url":
        body["pdf_url"] = PDF
    return body


@pytest.fixture
def production(make_api: MakeApi) -> Api:
    return make_api(environment="production", url_allowlist=["internal.example", "10.9.9.9"])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://[::1]:8080/hook",
        "http://10.0.0.8/doc.pdf",
        "http://192.168.1.20/doc.pdf",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.example/latest/meta-data/",  # resolves to 169.254.169.254
        "http://localhost:8000/hook",  # resolves to loopback
        "https://nowhere.invalid/doc.pdf",  # does not resolve
    ],
)
@pytest.mark.parametrize(("path", "base", "name"), URL_FIELDS)
def test_private_urls_are_refused_in_production(
    production: Api, path: str, base: dict[str, Any], name: str, url: str
) -> None:
    r = production.post(path, json=with_url(path, base, name, url))
    error(r, 400, "unsafe_url", name)
    assert production.gw.store.list_jobs() == []


@pytest.mark.parametrize(
    "url",
    [
        "http://internal.example/hook",  # allowlisted, resolves to 10.1.2.3
        "http://10.9.9.9:9000/doc.pdf",  # allowlisted literal
        "https://example.org/doc.pdf",  # public
        "https://hooks.example.com/x",  # public, v4 and v6
    ],
)
@pytest.mark.parametrize(("path", "base", "name"), URL_FIELDS)
def test_allowlisted_and_public_urls_pass_in_production(
    production: Api, path: str, base: dict[str, Any], name: str, url: str
) -> None:
    r = production.post(path, json=with_url(path, base, name, url))
    assert r.status_code == 202, r.text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost:8000/hook",
        "http://[::1]/hook",
        "https://offline.invalid/doc.pdf",
    ],
)
@pytest.mark.parametrize(("path", "base", "name"), URL_FIELDS)
def test_loopback_and_unresolved_hosts_pass_in_development(
    api: Api, path: str, base: dict[str, Any], name: str, url: str
) -> None:
    assert api.settings.environment == "development"
    r = api.post(path, json=with_url(path, base, name, url))
    assert r.status_code == 202, r.text


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://172.16.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://internal.example/hook",
    ],
)
@pytest.mark.parametrize(("path", "base", "name"), URL_FIELDS)
def test_private_urls_are_refused_in_development(
    api: Api, path: str, base: dict[str, Any], name: str, url: str
) -> None:
    error(api.post(path, json=with_url(path, base, name, url)), 400, "unsafe_url", name)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://[oops/x", "invalid_url"),
        ("http://example.org:99999/x", "invalid_url"),
        # names IDNA cannot encode are not host names at all: invalid in every environment
        ("http://a..b/x", "invalid_url"),
        ("http://" + "x" * 64 + ".example.org/x", "invalid_url"),
    ],
)
def test_an_unparseable_url_is_a_400(
    make_api: MakeApi, monkeypatch: pytest.MonkeyPatch, url: str, code: str
) -> None:
    api = make_api(environment="production")
    # the real resolver: IDNA-encoding fails before any DNS query is made
    monkeypatch.setattr(urls, "resolve", REAL_RESOLVE)
    r = api.post("/v1/messages", json={"to": OK_NUMBER, "body": "x", "callback_url": url})
    error(r, 400, code, "callback_url")


# -- the fax_gateway drop-in -------------------------------------------------------------------

COMPAT = "/compat/fax-gateway/faxes"


def test_compat_queues_a_fax_keyed_by_fax_id(api: Api) -> None:
    body = {
        "fax_id": "fg-1001",
        "to": "+1 500 555 0006",
        "pdf_url": PDF,
        "callback_url": "https://hooks.example.com/fax",
    }
    r = api.post(COMPAT, json=body)
    assert r.status_code == 202, r.text
    job = valid(JobOut, r)
    assert job["kind"] == "fax"
    assert job["to"] == OK_NUMBER
    assert job["status"] == "queued"
    assert job["payload"] == {"media_url": PDF}
    assert job["callback_url"] == "https://hooks.example.com/fax"
    assert job["idempotency_key"] == "fg-1001"
    assert job["metadata"] == {"compat": "fax_gateway", "fax_id": "fg-1001"}
    assert job["links"]["self"] == f"/v1/jobs/{job['id']}"
    # the same fax again is the same job
    again = api.post(COMPAT, json=body)
    assert again.status_code == 202
    assert again.json() == job
    assert len(api.gw.store.list_jobs()) == 1
    # and it is an ordinary job to the /v1 routes
    assert valid(JobDetail, api.get(job["links"]["self"]))["id"] == job["id"]


def test_compat_callback_url_is_optional_and_extra_fields_are_ignored(api: Api) -> None:
    r = api.post(COMPAT, json={"fax_id": "fg-2", "to": OK_NUMBER, "pdf_url": PDF, "pages": 3})
    assert r.status_code == 202, r.text
    assert r.json()["callback_url"] is None


def test_compat_fax_id_reused_for_another_fax_is_409(api: Api) -> None:
    api.post(COMPAT, json={"fax_id": "fg-3", "to": OK_NUMBER, "pdf_url": PDF})
    r = api.post(
        COMPAT, json={"fax_id": "fg-3", "to": OK_NUMBER, "pdf_url": "https://example.org/b.pdf"}
    )
    error(r, 409, "idempotency_conflict", "idempotency_key")


def test_compat_fax_ids_are_scoped_per_api_key(api: Api) -> None:
    _, other = api.new_key()
    body = {"fax_id": "fg-4", "to": OK_NUMBER, "pdf_url": PDF}
    assert (
        api.post(COMPAT, json=body).json()["id"]
        != api.post(COMPAT, json=body, token=other).json()["id"]
    )


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"fax_id": "f", "to": "nope", "pdf_url": PDF}, 400, "invalid_phone_number", "to"),
        (
            {"fax_id": "f", "to": OK_NUMBER, "pdf_url": "ftp://x/y.pdf"},
            400,
            "invalid_url",
            "pdf_url",
        ),
        (
            {"fax_id": "f", "to": OK_NUMBER, "pdf_url": PDF, "callback_url": "nope"},
            400,
            "invalid_url",
            "callback_url",
        ),
        ({"fax_id": "", "to": OK_NUMBER, "pdf_url": PDF}, 400, "invalid_request", "fax_id"),
        ({"fax_id": 7, "to": OK_NUMBER, "pdf_url": PDF}, 400, "invalid_request", "fax_id"),
    ],
)
def test_compat_bad_input(
    api: Api, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    error(api.post(COMPAT, json=body), status, code, field)


@pytest.mark.parametrize("number", [1795449600, 1.5, "1795449600"])
def test_a_number_is_not_a_time(api: Api, number: object) -> None:
    body = {"to": OK_NUMBER, "body": "x", "not_before": number}
    error(api.post("/v1/messages", json=body), 400, "invalid_request", "not_before")


def test_twilios_parameters_pass_through_the_api(api: Api) -> None:
    service = "MG" + "a" * 32
    body = {"to": "+12125550100", "params": {"MessagingServiceSid": service, "Attempt": 2}}
    r = api.post("/v1/messages", json=body | {"body": "hi"})
    assert r.status_code == 202, r.text
    assert r.json()["payload"]["params"] == {"MessagingServiceSid": service, "Attempt": 2}
    call = {"to": "+12125550100", "twiml": "<Response/>", "params": {"MachineDetection": "Enable"}}
    assert api.post("/v1/calls", json=call).status_code == 202
    err = error(
        api.post(
            "/v1/messages", json={"to": "+12125550100", "body": "hi", "params": {"Sender": "x"}}
        ),
        400,
        "unknown_param",
        "params.Sender",
    )
    assert "MessagingServiceSid" in err["message"]
    error(
        api.post("/v1/calls", json=call | {"params": {"StatusCallbackEvent": ["x"]}}),
        400,
        "reserved_param",
        "params.StatusCallbackEvent",
    )
