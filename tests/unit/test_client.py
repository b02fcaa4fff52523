"""callgate.Client and AsyncClient against httpx.MockTransport: what goes on the wire,
how answers and errors come back, pagination and wait_for on fake time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import FrozenInstanceError, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from callgate import AsyncClient, Client
from callgate.client import RemoteJob, RemoteJobDetail
from callgate.domain import AttemptState, Kind, Outcome, Status
from callgate.exceptions import (
    ApiUnavailable,
    CallgateError,
    IdempotencyConflict,
    InvalidTransition,
    NotFound,
    StoreError,
    Unauthorized,
    ValidationError,
    WaitTimeout,
)

BASE = "http://callgate.test"
KEY = "cg_test-key"
T0 = "2027-01-15T12:00:00Z"

Handler = Callable[[httpx.Request], httpx.Response]


def job_doc(job_id: int = 1, status: str = "queued", **over: Any) -> dict[str, Any]:
    base = f"/v1/jobs/{job_id}"
    doc: dict[str, Any] = {
        "id": job_id,
        "kind": "fax",
        "to": "+15005550006",
        "group_key": "+15005550006",
        "status": status,
        "attempts": 0,
        "reason": None,
        "detail": None,
        "payload": {"media_url": "https://example.org/a.pdf"},
        "created_at": T0,
        "updated_at": T0,
        "run_at": T0,
        "not_before": None,
        "expires_at": None,
        "strict_order": False,
        "idempotency_key": None,
        "callback_url": None,
        "metadata": {},
        "max_attempts": None,
        "cancel_requested": False,
        "provider_ref": None,
        "links": {"self": base, "cancel": f"{base}/cancel", "retry": f"{base}/retry"},
    }
    return doc | over


def detail_doc(job_id: int = 1, status: str = "queued", **over: Any) -> dict[str, Any]:
    return job_doc(job_id, status, **over) | {"attempt_log": [], "events": []}


def error(status: int, code: str, message: str = "nope", field: str | None = None) -> Handler:
    body = {"error": {"code": code, "message": message, "field": field}}
    return lambda request: httpx.Response(status, json=body)


@dataclass
class Api:
    """A MockTransport handler that records every request and answers with ``handler``."""

    handler: Handler = field(default=lambda request: httpx.Response(202, json=job_doc()))
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


@dataclass
class FakeTime:
    """``monotonic`` and ``sleep`` for wait_for: sleeping moves time, instantly."""

    now: float = 100.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def client(api: Api, clock: FakeTime) -> Iterator[Client]:
    with Client(
        BASE,
        KEY,
        transport=httpx.MockTransport(api),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    ) as c:
        yield c


def async_client(api: Api, clock: FakeTime | None = None) -> AsyncClient:
    clock = clock or FakeTime()
    return AsyncClient(
        BASE, KEY, transport=httpx.MockTransport(api), sleep=clock.asleep, monotonic=clock.monotonic
    )


# -- requests on the wire ------------------------------------------------------------------


def test_send_fax_posts_the_fields_with_the_key_and_the_idempotency_header(
    client: Client, api: Api
) -> None:
    not_before = datetime(2027, 1, 16, 9, 0, tzinfo=UTC)
    client.send_fax(
        "+15005550006",
        "https://example.org/a.pdf",
        from_="+15005550007",
        callback_url="https://app.example.org/hook",
        idempotency_key="ballot-42",
        not_before=not_before,
        expires_at=not_before + timedelta(hours=2),
        strict_order=True,
        max_attempts=5,
        metadata={"voter": 7},
    )
    request = api.last
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/v1/faxes"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Idempotency-Key"] == "ballot-42"
    assert request.headers["Content-Type"] == "application/json"
    assert api.body() == {
        "to": "+15005550006",
        "media_url": "https://example.org/a.pdf",
        "from": "+15005550007",
        "callback_url": "https://app.example.org/hook",
        "not_before": "2027-01-16T09:00:00+00:00",
        "expires_at": "2027-01-16T11:00:00+00:00",
        "strict_order": True,
        "max_attempts": 5,
        "metadata": {"voter": 7},
    }


def test_unset_options_are_left_out_and_no_idempotency_header_is_sent(
    client: Client, api: Api
) -> None:
    client.send_sms("+15005550006", body="hi", callback_url=None)
    assert str(api.last.url) == f"{BASE}/v1/messages"
    assert "Idempotency-Key" not in api.last.headers
    assert api.body() == {"to": "+15005550006", "body": "hi"}

    client.send_sms("+15005550006", media_url="https://example.org/p.png")
    assert api.body() == {"to": "+15005550006", "media_url": "https://example.org/p.png"}


def test_send_call_and_request_bodies(client: Client, api: Api) -> None:
    client.send_call("+15005550006", twiml="<Response><Say>hi</Say></Response>")
    assert str(api.last.url) == f"{BASE}/v1/calls"
    assert api.body() == {"to": "+15005550006", "twiml": "<Response><Say>hi</Say></Response>"}
    client.send_call("+15005550006", url="https://example.org/twiml")
    assert api.body() == {"to": "+15005550006", "url": "https://example.org/twiml"}

    client.request("lookup", "GET", {"Type": "carrier"}, to="+15005550006", idempotency_key="l1")
    assert str(api.last.url) == f"{BASE}/v1/requests"
    assert api.last.headers["Idempotency-Key"] == "l1"
    assert api.body() == {
        "api": "lookup",
        "method": "GET",
        "params": {"Type": "carrier"},
        "to": "+15005550006",
    }
    client.request("verify")
    assert api.body() == {"api": "verify", "method": "POST"}
    client.request("lookup", "get")  # type: ignore[arg-type]
    assert api.body() == {"api": "lookup", "method": "GET"}


def test_an_unknown_option_is_a_type_error_before_any_request(client: Client, api: Api) -> None:
    with pytest.raises(TypeError, match="colour"):
        client.send_fax("+15005550006", "https://example.org/a.pdf", colour="blue")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="strict_order"):
        client.request("lookup", strict_order=True)  # type: ignore[call-arg]
    assert api.requests == []


def test_read_and_steer_paths(client: Client, api: Api) -> None:
    api.handler = lambda request: httpx.Response(200, json=detail_doc(7))
    client.get_job(7)
    assert (api.last.method, str(api.last.url)) == ("GET", f"{BASE}/v1/jobs/7")
    client.cancel(7)
    assert (api.last.method, str(api.last.url)) == ("POST", f"{BASE}/v1/jobs/7/cancel")
    client.retry(7)
    assert (api.last.method, str(api.last.url)) == ("POST", f"{BASE}/v1/jobs/7/retry")
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in api.requests)


def test_a_base_url_with_a_path_prefix_is_kept(api: Api) -> None:
    with Client(f"{BASE}/callgate/", KEY, transport=httpx.MockTransport(api)) as c:
        c.send_fax("+15005550006", "https://example.org/a.pdf")
    assert str(api.last.url) == f"{BASE}/callgate/v1/faxes"


# -- typed results -------------------------------------------------------------------------


def test_a_submit_returns_a_typed_frozen_job(client: Client, api: Api) -> None:
    api.handler = lambda request: httpx.Response(
        202,
        json=job_doc(
            3,
            "queued",
            not_before="2027-01-16T09:00:00+00:00",
            idempotency_key="k",
            metadata={"a": 1},
        ),
        headers={"Location": "/v1/jobs/3"},
    )
    job = client.send_fax("+15005550006", "https://example.org/a.pdf")
    assert isinstance(job, RemoteJob)
    assert job.id == 3
    assert job.kind is Kind.FAX
    assert job.status is Status.QUEUED
    assert not job.terminal
    assert job.created_at == datetime(2027, 1, 15, 12, 0, tzinfo=UTC)
    assert job.not_before == datetime(2027, 1, 16, 9, 0, tzinfo=UTC)
    assert job.expires_at is None
    assert job.metadata == {"a": 1}
    assert job.links["cancel"] == "/v1/jobs/3/cancel"
    assert job.replayed is False
    with pytest.raises(FrozenInstanceError):
        job.status = Status.FAILED  # type: ignore[misc]


def test_a_replayed_submit_says_so(client: Client, api: Api) -> None:
    api.handler = lambda request: httpx.Response(
        202, json=job_doc(3), headers={"Idempotent-Replayed": "true"}
    )
    job = client.send_fax("+15005550006", "https://example.org/a.pdf", idempotency_key="k")
    assert job.replayed is True


def test_get_job_parses_attempts_and_events(client: Client, api: Api) -> None:
    doc = job_doc(5, "delivered", attempts=2, provider_ref="FX2") | {
        "attempt_log": [
            {
                "number": 1,
                "state": "done",
                "started_at": T0,
                "ended_at": "2027-01-15T12:00:01Z",
                "outcome": "busy",
                "provider_ref": "FX1",
                "error_code": None,
                "error_message": "the line was busy",
                "counted": True,
            },
            {
                "number": 2,
                "state": "sending",
                "started_at": T0,
                "ended_at": None,
                "outcome": None,
                "provider_ref": None,
                "error_code": None,
                "error_message": None,
                "counted": True,
            },
        ],
        "events": [
            {
                "id": 9,
                "job_id": 5,
                "type": "job.delivered",
                "status": "delivered",
                "created_at": T0,
                "reason": None,
                "detail": None,
                "attempts": 2,  # a field this client does not know yet is ignored
            }
        ],
    }
    api.handler = lambda request: httpx.Response(200, json=doc)
    job = client.get_job(5)
    assert isinstance(job, RemoteJobDetail)
    assert job.status is Status.DELIVERED
    assert job.terminal
    assert job.attempts == 2
    first, second = job.attempt_log
    assert first.outcome is Outcome.BUSY
    assert first.state is AttemptState.DONE
    assert first.ended_at == datetime(2027, 1, 15, 12, 0, 1, tzinfo=UTC)
    assert second.outcome is None
    assert second.ended_at is None
    (event,) = job.events
    assert event.type == "job.delivered"
    assert event.status is Status.DELIVERED
    assert event.job_id == 5


def test_an_unreadable_success_is_an_invalid_response_error(client: Client, api: Api) -> None:
    api.handler = lambda request: httpx.Response(200, text="<html>hello</html>")
    with pytest.raises(CallgateError) as info:
        client.get_job(1)
    assert info.value.code == "invalid_response"
    assert info.value.http_status == 200

    api.handler = lambda request: httpx.Response(200, json=job_doc(status="sleeping"))
    with pytest.raises(CallgateError) as info:
        client.cancel(1)
    assert info.value.code == "invalid_response"
    assert "sleeping" in info.value.message


# -- pagination ----------------------------------------------------------------------------


def paged(pages: dict[str | None, tuple[list[int], str | None]]) -> Handler:
    """Serve ``GET /v1/jobs``: the page for each cursor (None: the first)."""

    def handle(request: httpx.Request) -> httpx.Response:
        ids, next_cursor = pages[request.url.params.get("cursor")]
        return httpx.Response(
            200, json={"data": [job_doc(i) for i in ids], "next_cursor": next_cursor}
        )

    return handle


THREE_PAGES: dict[str | None, tuple[list[int], str | None]] = {
    None: ([9, 8], "8"),
    "8": ([7, 6], "6"),
    "6": ([5], None),
}


def test_list_jobs_follows_next_cursor_across_three_pages(client: Client, api: Api) -> None:
    api.handler = paged(THREE_PAGES)
    after = datetime(2027, 1, 1, tzinfo=UTC)
    before = datetime(2027, 2, 1, tzinfo=UTC)
    jobs = list(
        client.list_jobs(
            status=Status.FAILED,
            to="+15005550006",
            created_after=after,
            created_before=before,
            page_size=2,
        )
    )
    assert [j.id for j in jobs] == [9, 8, 7, 6, 5]
    assert all(isinstance(j, RemoteJob) for j in jobs)
    assert [r.url.params.get("cursor") for r in api.requests] == [None, "8", "6"]
    for request in api.requests:
        assert request.method == "GET"
        assert request.url.path == "/v1/jobs"
        params = request.url.params
        assert params["limit"] == "2"
        assert params["status"] == "failed"
        assert params["to"] == "+15005550006"
        assert params["created_after"] == "2027-01-01T00:00:00+00:00"
        assert params["created_before"] == "2027-02-01T00:00:00+00:00"
    assert b"%2B15005550006" in api.requests[0].url.raw_path  # "+" is not a space


def test_list_jobs_fetches_pages_only_as_they_are_needed(client: Client, api: Api) -> None:
    api.handler = paged(THREE_PAGES)
    jobs = client.list_jobs(page_size=2)
    assert api.requests == []
    assert [next(jobs).id, next(jobs).id] == [9, 8]
    assert len(api.requests) == 1
    assert next(jobs).id == 7
    assert len(api.requests) == 2
    assert api.last.url.params["limit"] == "2"
    assert "status" not in api.last.url.params


def test_list_jobs_stops_on_an_empty_page(client: Client, api: Api) -> None:
    api.handler = paged({None: ([2, 1], "1"), "1": ([], "1")})
    assert [j.id for j in client.list_jobs(page_size=2)] == [2, 1]
    assert len(api.requests) == 2


# -- errors --------------------------------------------------------------------------------

ERRORS = [
    pytest.param(400, "invalid_phone_number", "to", ValidationError, id="400-validation"),
    pytest.param(400, "invalid_request", "status", ValidationError, id="400-request"),
    pytest.param(409, "idempotency_conflict", "idempotency_key", IdempotencyConflict, id="409-key"),
    pytest.param(409, "invalid_state", None, InvalidTransition, id="409-state"),
    pytest.param(404, "not_found", "id", NotFound, id="404"),
    pytest.param(401, "unauthorized", None, Unauthorized, id="401"),
    pytest.param(503, "store_error", None, StoreError, id="503-store"),
    pytest.param(413, "payload_too_large", None, ValidationError, id="413"),
    pytest.param(500, "internal_error", None, CallgateError, id="500"),
    pytest.param(405, "method_not_allowed", None, CallgateError, id="405"),
]


@pytest.mark.parametrize(("status", "code", "field_name", "cls"), ERRORS)
def test_api_errors_become_the_callgate_error_family(
    client: Client,
    api: Api,
    status: int,
    code: str,
    field_name: str | None,
    cls: type[CallgateError],
) -> None:
    api.handler = error(status, code, "what went wrong", field_name)
    with pytest.raises(CallgateError) as info:
        client.send_fax("+15005550006", "https://example.org/a.pdf")
    exc = info.value
    assert type(exc) is cls
    assert exc.code == code
    assert exc.field == field_name
    assert exc.message == "what went wrong"
    assert exc.http_status == status


def test_an_error_without_the_json_body_keeps_the_status(client: Client, api: Api) -> None:
    api.handler = lambda request: httpx.Response(502, text="Bad Gateway")
    with pytest.raises(ApiUnavailable) as info:
        client.get_job(1)
    assert info.value.code == "api_unavailable"
    assert info.value.http_status == 502
    assert "502" in info.value.message
    assert "Bad Gateway" in info.value.message

    api.handler = lambda request: httpx.Response(418, json={"detail": "teapot"})
    with pytest.raises(CallgateError) as other:
        client.get_job(1)
    assert type(other.value) is CallgateError
    assert other.value.code == "http_error"
    assert other.value.http_status == 418


def test_a_transport_failure_is_api_unavailable_from_the_httpx_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        Client(BASE, KEY, transport=httpx.MockTransport(refuse)) as c,
        pytest.raises(ApiUnavailable) as info,
    ):
        c.send_sms("+15005550006", body="hi")
    assert info.value.code == "api_unavailable"
    assert info.value.http_status is None
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert "callgate.test" in info.value.message
    assert KEY not in info.value.message


# -- wait_for ------------------------------------------------------------------------------


def statuses(*sequence: str) -> Handler:
    """Serve ``GET /v1/jobs/1`` with these statuses in turn (the last one repeats)."""
    remaining = list(sequence)

    def handle(request: httpx.Request) -> httpx.Response:
        status = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return httpx.Response(200, json=detail_doc(1, status))

    return handle


def test_wait_for_polls_until_the_job_is_terminal(
    client: Client, api: Api, clock: FakeTime
) -> None:
    api.handler = statuses("queued", "in_flight", "retrying", "delivered")
    job = client.wait_for(1, timeout=10)
    assert isinstance(job, RemoteJobDetail)
    assert job.status is Status.DELIVERED
    assert len(api.requests) == 4
    assert clock.sleeps == [0.5, 0.5, 0.5]


def test_wait_for_returns_at_once_when_already_terminal(
    client: Client, api: Api, clock: FakeTime
) -> None:
    api.handler = statuses("failed")
    assert client.wait_for(1, timeout=0).status is Status.FAILED
    assert clock.sleeps == []


def test_wait_for_times_out_with_a_timeout_error_of_the_family(
    client: Client, api: Api, clock: FakeTime
) -> None:
    api.handler = statuses("retrying")
    with pytest.raises(WaitTimeout) as info:
        client.wait_for(1, timeout=1.2, poll=0.5)
    exc = info.value
    assert isinstance(exc, TimeoutError)
    assert isinstance(exc, CallgateError)
    assert exc.code == "timeout"
    assert "job 1" in exc.message
    assert "retrying" in exc.message
    # the last nap is cut short at the deadline, and the job is looked at once more there
    assert clock.sleeps == pytest.approx([0.5, 0.5, 0.2])
    assert clock.now == pytest.approx(101.2)
    assert len(api.requests) == 4


def test_wait_for_another_condition(client: Client, api: Api, clock: FakeTime) -> None:
    api.handler = statuses("queued", "in_flight", "delivered")
    assert client.wait_for(1, 5, poll=0.1, until={Status.IN_FLIGHT}).status is Status.IN_FLIGHT
    api.handler = statuses("queued", "held")
    job = client.wait_for(1, 5, poll=0.1, until=lambda j: j.status == "held")
    assert job.status is Status.HELD
    assert clock.sleeps == pytest.approx([0.1, 0.1])


def test_wait_for_raises_the_api_error_rather_than_waiting(client: Client, api: Api) -> None:
    api.handler = error(404, "not_found", "no job 1", "id")
    with pytest.raises(NotFound):
        client.wait_for(1, timeout=5)
    assert len(api.requests) == 1


# -- the async client ----------------------------------------------------------------------


def test_async_submit_and_read() -> None:
    api = Api()

    async def scenario() -> tuple[RemoteJob, RemoteJobDetail]:
        async with async_client(api) as c:
            job = await c.send_fax(
                "+15005550006", "https://example.org/a.pdf", idempotency_key="a1"
            )
            api.handler = lambda request: httpx.Response(200, json=detail_doc(1, "held"))
            return job, await c.get_job(job.id)

    job, detail = asyncio.run(scenario())
    assert job.status is Status.QUEUED
    assert detail.status is Status.HELD
    first, second = api.requests
    assert (first.method, first.url.path) == ("POST", "/v1/faxes")
    assert first.headers["Authorization"] == f"Bearer {KEY}"
    assert first.headers["Idempotency-Key"] == "a1"
    assert api.body(0) == {"to": "+15005550006", "media_url": "https://example.org/a.pdf"}
    assert (second.method, second.url.path) == ("GET", "/v1/jobs/1")


def test_async_other_submits_and_steering() -> None:
    api = Api()

    async def scenario() -> None:
        async with async_client(api) as c:
            await c.send_sms("+15005550006", body="hi", from_="+15005550007")
            await c.send_call("+15005550006", url="https://example.org/twiml")
            await c.request("lookup", "GET", to="+15005550006")
            api.handler = lambda request: httpx.Response(200, json=job_doc(4, "canceled"))
            assert (await c.cancel(4)).status is Status.CANCELED
            await c.retry(4)

    asyncio.run(scenario())
    assert [(r.method, r.url.path) for r in api.requests] == [
        ("POST", "/v1/messages"),
        ("POST", "/v1/calls"),
        ("POST", "/v1/requests"),
        ("POST", "/v1/jobs/4/cancel"),
        ("POST", "/v1/jobs/4/retry"),
    ]
    assert api.body(0) == {"to": "+15005550006", "body": "hi", "from": "+15005550007"}
    assert api.body(2) == {"api": "lookup", "method": "GET", "to": "+15005550006"}


def test_async_list_jobs_follows_next_cursor() -> None:
    api = Api(paged(THREE_PAGES))

    async def scenario() -> list[int]:
        async with async_client(api) as c:
            return [job.id async for job in c.list_jobs(status="failed", page_size=2)]

    assert asyncio.run(scenario()) == [9, 8, 7, 6, 5]
    assert [r.url.params.get("cursor") for r in api.requests] == [None, "8", "6"]
    assert all(r.url.params["status"] == "failed" for r in api.requests)


@pytest.mark.parametrize(("status", "code", "field_name", "cls"), ERRORS)
def test_async_errors_are_the_same_family(
    status: int, code: str, field_name: str | None, cls: type[CallgateError]
) -> None:
    api = Api(error(status, code, "what went wrong", field_name))

    async def scenario() -> None:
        async with async_client(api) as c:
            await c.get_job(1)

    with pytest.raises(CallgateError) as info:
        asyncio.run(scenario())
    assert type(info.value) is cls
    assert (info.value.code, info.value.field, info.value.http_status) == (
        code,
        field_name,
        status,
    )


def test_async_transport_failure_is_api_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async def scenario() -> None:
        async with AsyncClient(BASE, KEY, transport=httpx.MockTransport(refuse)) as c:
            await c.get_job(1)

    with pytest.raises(ApiUnavailable) as info:
        asyncio.run(scenario())
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


def test_async_wait_for_polls_then_times_out() -> None:
    api = Api(statuses("queued", "delivered"))
    clock = FakeTime()

    async def delivered() -> RemoteJobDetail:
        async with async_client(api, clock) as c:
            return await c.wait_for(1, timeout=10, poll=0.25)

    assert asyncio.run(delivered()).status is Status.DELIVERED
    assert clock.sleeps == [0.25]

    api.handler = statuses("retrying")
    clock.sleeps.clear()

    async def stuck() -> RemoteJobDetail:
        async with async_client(api, clock) as c:
            return await c.wait_for(1, timeout=0.6, poll=0.25)

    with pytest.raises(WaitTimeout) as info:
        asyncio.run(stuck())
    assert isinstance(info.value, TimeoutError)
    assert clock.sleeps == pytest.approx([0.25, 0.25, 0.1])


def test_guardrail_paths(client: Client, api: Api) -> None:
    api.handler = lambda request: httpx.Response(200, json={"data": [], "state": "closed"})
    client.allowlist()
    client.allowlist_add("+12125550123", note="Ana")
    assert api.body() == {"number": "+12125550123", "note": "Ana"}
    client.suppressions("+12125550123")
    client.suppress("+12125550123", kind="sms")
    assert api.body() == {"number": "+12125550123", "kind": "sms", "reason": "manual"}
    client.breaker()
    client.trip_breaker("wrong list")
    client.reset_breaker("fixed")
    assert api.body() == {"reason": "fixed"}
    api.handler = lambda request: httpx.Response(204)
    client.allowlist_remove("+1808555*")
    client.unsuppress("+12125550123", kind="sms")
    assert b"/v1/allowlist/%2B1808555%2A" in api.requests[-2].url.raw_path  # quoted
    assert [(r.method, r.url.path, r.url.query.decode()) for r in api.requests] == [
        ("GET", "/v1/allowlist", ""),
        ("POST", "/v1/allowlist", ""),
        ("GET", "/v1/suppressions", "number=%2B12125550123"),
        ("POST", "/v1/suppressions", ""),
        ("GET", "/v1/breaker", ""),
        ("POST", "/v1/breaker/trip", ""),
        ("POST", "/v1/breaker/reset", ""),
        ("DELETE", "/v1/allowlist/+1808555*", ""),
        ("DELETE", "/v1/suppressions/+12125550123", "kind=sms"),
    ]


def test_the_async_client_has_the_guardrail_methods(api: Api, clock: FakeTime) -> None:
    import asyncio

    api.handler = lambda request: httpx.Response(200, json={"state": "open"})

    async def main() -> dict[str, Any]:
        async with async_client(api, clock) as client:
            return await client.trip_breaker("kill switch")

    assert asyncio.run(main()) == {"state": "open"}
    assert (api.last.method, api.last.url.path) == ("POST", "/v1/breaker/trip")
