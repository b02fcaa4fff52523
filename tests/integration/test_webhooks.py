"""Webhooks from the outbox, on virtual time, to an in-memory receiver (httpx.MockTransport).

Signatures are checked with the ``standardwebhooks`` library itself, not with our code.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from callgate.clock import LoopClock
from callgate.config import Settings
from callgate.gateway import Gateway
from callgate.testing import run_virtual, wait_until
from callgate.webhooks import InvalidSignature, verify
from callgate.webhooks.sender import SCHEDULE
from callgate.webhooks.signing import generate_secret

HOOK = "https://app.example.org/hooks"
PDF = "https://example.org/ballot.pdf"
SECRET = generate_secret()


@dataclass
class Receiver:
    """Records every request; ``answer`` decides the response."""

    answer: Callable[[httpx.Request, int], httpx.Response] = lambda r, n: httpx.Response(204)
    calls: list[tuple[float, httpx.Request]] = field(default_factory=list)
    clock: LoopClock | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert self.clock is not None
        self.calls.append((self.clock.now(), request))
        return self.answer(request, len(self.calls))

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for _, r in self.calls]


def run_gateway(
    settings: Settings,
    receiver: Receiver,
    setup: Callable[[Gateway], object],
    after: Callable[[Gateway], object] | None = None,
) -> Gateway:
    """Submit, run a worker to the end and the sender until no delivery is pending."""

    async def main(clock: LoopClock) -> Gateway:
        receiver.clock = clock
        gw = Gateway(settings, clock=clock, rng=random.Random(5))
        sender = gw.webhook_sender(httpx.MockTransport(receiver.handler), poll=3600)
        setup(gw)
        sending = asyncio.create_task(sender.run())
        await gw.run_worker(drain=True)
        if after is not None:
            after(gw)
        await wait_until(
            lambda: not gw.store.list_deliveries(status="pending"), step=60.0, timeout=10**6
        )
        sender.stop()
        await sending
        return gw

    # virtual time starts at the real now: receivers check webhook-timestamp against it
    return run_virtual(main, epoch=time.time())


@pytest.fixture
def hook_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return make_settings(webhook_secrets=SECRET, **overrides)

    return make


def test_events_are_signed_per_standard_webhooks(hook_settings) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver()
    run_gateway(
        hook_settings(),
        receiver,
        lambda gw: gw.send("sms", to="+15005550006", body="hi", callback_url=HOOK),
    )
    [(_, request)] = receiver.calls
    body = Webhook(SECRET).verify(request.content, dict(request.headers))
    assert body["type"] == "job.delivered"
    assert body["data"]["status"] == "delivered"
    assert body["data"]["id"] == 1
    assert request.headers["webhook-id"] == f"msg_{body['data']['event_id']}"
    assert request.headers["webhook-signature"].startswith("v1,")
    assert verify(SECRET, request.headers, request.content) == body
    with pytest.raises(InvalidSignature):
        verify(generate_secret(), request.headers, request.content)


def test_rotation_signs_with_every_active_secret(make_settings) -> None:  # type: ignore[no-untyped-def]
    old, new = generate_secret(), generate_secret()
    receiver = Receiver()
    run_gateway(
        make_settings(webhook_secrets=f"{new},{old}"),
        receiver,
        lambda gw: gw.send("sms", to="+15005550006", body="hi", callback_url=HOOK),
    )
    [(_, request)] = receiver.calls
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(request.content, dict(request.headers))


def test_a_500_then_a_200_is_retried_after_five_seconds(hook_settings) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver(answer=lambda r, n: httpx.Response(500 if n == 1 else 200))
    gw = run_gateway(
        hook_settings(),
        receiver,
        lambda gw: gw.send("sms", to="+15005550006", body="hi", callback_url=HOOK),
    )
    (t1, first), (t2, second) = receiver.calls
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert 4.0 <= t2 - t1 <= 6.0
    [delivery] = gw.store.list_deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)


def test_receiver_down_follows_the_schedule_then_dead_letters_and_replay_delivers(
    hook_settings,  # type: ignore[no-untyped-def]
) -> None:
    up = False

    def answer(request: httpx.Request, n: int) -> httpx.Response:
        if not up:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200)

    receiver = Receiver(answer=answer)
    gw = run_gateway(
        hook_settings(),
        receiver,
        lambda gw: gw.send("sms", to="+15005550006", body="hi", callback_url=HOOK),
    )
    times = [t for t, _ in receiver.calls]
    assert len(times) == len(SCHEDULE) == 8
    for gap, planned in zip(
        [b - a for a, b in itertools.pairwise(times)], SCHEDULE[1:], strict=True
    ):
        assert planned * 0.8 <= gap <= planned * 1.2 + 0.01
    [dead] = gw.store.list_deliveries(status="failed")
    assert "ConnectError" in (dead.last_error or "")

    up = True

    async def replay(clock: LoopClock) -> None:
        receiver.clock = gw.clock = clock  # a new loop: the gateway must read its time
        sender = gw.webhook_sender(httpx.MockTransport(receiver.handler), poll=3600)
        task = asyncio.create_task(sender.run())
        assert gw.store.replay_deliveries(clock.now(), delivery_id=dead.id) == 1
        sender.wake()
        await wait_until(lambda: gw.store.delivery(dead.id).status == "delivered", step=0.5)  # type: ignore[union-attr]
        sender.stop()
        await task

    run_virtual(replay)
    assert len(receiver.calls) == 9


def test_events_of_a_job_arrive_in_order(hook_settings) -> None:  # type: ignore[no-untyped-def]
    # the first event (job.retrying) fails twice: the later job.delivered must wait for it
    receiver = Receiver(answer=lambda r, n: httpx.Response(503 if n <= 2 else 200))
    run_gateway(
        hook_settings(fax_retry_delay=1.0),
        receiver,
        lambda gw: gw.send("fax", to="+15005550121", media_url=PDF, callback_url=HOOK),
    )
    types = [b["type"] for b in receiver.bodies()]
    assert types == ["job.retrying", "job.retrying", "job.retrying", "job.delivered"]


def test_retry_after_is_honoured(hook_settings) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver(
        answer=lambda r, n: (
            httpx.Response(429, headers={"Retry-After": "42"}) if n == 1 else httpx.Response(200)
        )
    )
    run_gateway(
        hook_settings(),
        receiver,
        lambda gw: gw.send("sms", to="+15005550006", body="hi", callback_url=HOOK),
    )
    (t1, _), (t2, _) = receiver.calls
    assert t2 - t1 == pytest.approx(42, abs=0.01)


def test_410_stops_everything_to_that_endpoint(hook_settings) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver(answer=lambda r, n: httpx.Response(410))

    def setup(gw: Gateway) -> None:
        gw.send("sms", to="+15005550006", body="a", callback_url=HOOK)
        gw.send("sms", to="+15005550006", body="b", callback_url=HOOK)

    def after(gw: Gateway) -> None:
        gw.send("sms", to="+12025550143", body="c", callback_url=HOOK)

    gw = run_gateway(hook_settings(), receiver, setup, after)
    # only what was already under way when the first 410 came back (the two jobs' events
    # may go out together); nothing after it, and nothing of the third job
    assert 1 <= len(receiver.calls) <= 2
    assert len({t for t, _ in receiver.calls}) == 1
    assert all(b"+12025550143" not in r.content for _, r in receiver.calls)
    deliveries = gw.store.list_deliveries()
    assert deliveries
    assert {d.status for d in deliveries} == {"stopped"}
    assert len(gw.store.events()) > 6  # both jobs delivered, and job 3 too


def test_default_endpoint_gets_every_job(hook_settings) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver()
    run_gateway(
        hook_settings(webhook_url="https://ops.example.org/all"),
        receiver,
        lambda gw: [
            gw.send("sms", to="+15005550006", body="x"),
            gw.send("sms", to="+15005550001", body="y", callback_url=HOOK),
        ],
    )
    sent = sorted((str(r.url), json.loads(r.content)["type"]) for _, r in receiver.calls)
    assert sent == [
        (HOOK, "job.failed"),
        ("https://ops.example.org/all", "job.delivered"),
        ("https://ops.example.org/all", "job.failed"),
    ]


def test_fax_gateway_callbacks_busy_twice_then_sent(hook_settings) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver()

    def setup(gw: Gateway) -> None:
        gw.send(
            "fax",
            to="+15005550122",
            media_url=PDF,
            callback_url=HOOK,
            idempotency_key="9b7c1d2e",
            metadata={"compat": "fax_gateway", "fax_id": "9b7c1d2e"},
        )

    run_gateway(hook_settings(fax_retry_delay=1.0, fax_max_attempts=20), receiver, setup)
    bodies = receiver.bodies()
    assert [(b["fax_id"], b["status"]) for b in bodies] == [
        ("9b7c1d2e", "tmp_fail"),
        ("9b7c1d2e", "tmp_fail"),
        ("9b7c1d2e", "sent"),
    ]
    assert bodies[0]["message"] == ("Failed to deliver fax (attempt 1 of 20). Fax status: busy")
    assert bodies[1]["message"].startswith("Failed to deliver fax (attempt 2 of 20)")
    assert all(isinstance(b["timestamp"], int) for b in bodies)
    assert [b["timestamp"] for b in bodies] == sorted(b["timestamp"] for b in bodies)


def test_fax_gateway_perm_fail_after_the_last_try(hook_settings) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver()
    run_gateway(
        hook_settings(fax_retry_delay=1.0, fax_max_attempts=3),
        receiver,
        lambda gw: gw.send(
            "fax",
            to="+15005550110",
            media_url=PDF,
            callback_url=HOOK,
            metadata={"compat": "fax_gateway", "fax_id": "f1"},
        ),
    )
    last = receiver.bodies()[-1]
    assert last["status"] == "perm_fail"
    assert last["message"] == "Failed to deliver fax after 3 tries. Last attempt status: busy"


def test_a_breaker_trip_is_a_signed_webhook_to_the_default_endpoint(hook_settings) -> None:  # type: ignore[no-untyped-def]
    failures = iter([httpx.Response(500), httpx.Response(204)])
    receiver = Receiver(answer=lambda r, n: next(failures))

    async def main(clock: LoopClock) -> Gateway:
        receiver.clock = clock
        gw = Gateway(hook_settings(webhook_url=HOOK), clock=clock, rng=random.Random(5))
        sender = gw.webhook_sender(httpx.MockTransport(receiver.handler), poll=3600)
        sending = asyncio.create_task(sender.run())
        assert gw.trip_breaker("the kill switch, for a test", actor="ops")
        sender.wake()
        await wait_until(lambda: len(receiver.calls) == 2, step=1.0, timeout=10**5)
        sender.stop()
        await sending
        return gw

    gw = run_virtual(main, epoch=time.time())
    first, second = (request for _, request in receiver.calls)
    assert str(second.url) == HOOK
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # the same event, again
    assert second.headers["webhook-id"].startswith("sys_")
    body = Webhook(SECRET).verify(second.content, dict(second.headers))
    assert body["type"] == "breaker.tripped"
    assert body["data"]["detail"] == "the kill switch, for a test"
    assert body["data"]["by"] == "ops"
    [row] = gw.store.system_webhooks()
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("delivered", 2, 204)


def test_one_outbox_claims_and_settles_job_deliveries_and_job_less_events(  # type: ignore[no-untyped-def]
    hook_settings,
) -> None:
    """A job's deliveries first, then job-less events in the room left, each settled in
    its own table; without a default endpoint the job-less ones are not claimed."""
    gw = Gateway(hook_settings(webhook_url=HOOK))
    try:
        job = gw.send("sms", to="+15005550006", body="hi", callback_url=HOOK).job
        gw.cancel(job.id)
        assert gw.trip_breaker("a test", actor="ops")
        now = time.time()
        assert gw.store.fan_out(now, None) == 1  # job.canceled, to its callback_url
        assert gw.store.next_outbox_at(system=False) == pytest.approx(now)
        [only] = gw.store.claim_outbox(now, 10, 30.0, system=False)
        assert (type(only).__name__, only.job_id) == ("Delivery", job.id)
        assert gw.store.next_outbox_at(system=False) == pytest.approx(now + 30.0)  # its lease
        [system] = gw.store.claim_outbox(now, 10, 30.0)
        assert (type(system).__name__, system.type) == ("SystemWebhook", "breaker.tripped")
        assert gw.store.claim_outbox(now, 10, 30.0) == []
        gw.store.outbox_done(only, now + 1, 204)
        gw.store.outbox_failed(system, now + 1, 500, "no", None)  # dead-lettered
        [delivery] = gw.store.list_deliveries()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            "delivered",
            1,
            204,
        )
        [row] = gw.store.system_webhooks()
        assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 1, "no")
        assert gw.store.next_outbox_at() is None
    finally:
        gw.store.close()
