"""``GET /metrics`` on both backends, on virtual time: parsed with prometheus-client's own
parser; the per-process counters count what this gateway did, the gauges read the
database (so a second gateway on the same database reports the same gauges); the token;
``callgate worker --metrics-port``'s app; JSON log lines of a worker's job.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from callgate import logs
from callgate.api import create_app
from callgate.api.app import metrics_app
from callgate.clock import LoopClock
from callgate.config import Settings
from callgate.gateway import Gateway
from callgate.testing import run_virtual

OK = "+15005550006"  # the simulator delivers to it
INVALID = "+15005550001"  # the simulator fails it for good
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample, by name and labels, read with prometheus-client's parser."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def scrape(gw: Gateway, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(gw))
    async with httpx.AsyncClient(transport=transport, base_url="http://cg") as client:
        return await client.get("/metrics", headers=headers or {})


def test_the_metrics_count_and_parse(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()

    async def main(clock: LoopClock) -> tuple[Samples, Samples, Samples]:
        gw = Gateway(settings, clock=clock)
        other = Gateway(settings, clock=clock)  # another process on the same database
        try:
            for to in (OK, OK, INVALID):
                gw.send("sms", to=to, body="hello")
            await gw.run_worker(drain=True)
            after_work = await scrape(gw)
            assert after_work.status_code == 200
            assert after_work.headers["content-type"].startswith("text/plain; version=")
            gw.send("sms", to=OK, body="later")  # waits: no worker runs now
            await asyncio.sleep(120)  # virtual time
            return (
                parse(after_work.text),
                parse((await scrape(gw)).text),
                parse((await scrape(other)).text),
            )
        finally:
            gw.close()
            other.close()

    worked, waiting, elsewhere = run_virtual(main)
    # counters: what this process did
    assert value(worked, "callgate_jobs_submitted_total", kind="sms") == 3
    assert value(worked, "callgate_jobs_submitted_total", kind="fax") == 0
    delivered = {"kind": "sms", "provider": "simulator", "outcome": "delivered"}
    assert value(worked, "callgate_attempts_total", **delivered) == 2
    failed = {"kind": "sms", "provider": "simulator", "outcome": "permanent"}
    assert value(worked, "callgate_attempts_total", **failed) == 1
    assert value(worked, "callgate_send_seconds_count") == 3
    assert value(worked, "callgate_send_seconds_bucket", le="+Inf") == 3
    # gauges: the database's
    assert value(worked, "callgate_database_up") == 1
    assert value(worked, "callgate_jobs", status="queued") == 0
    assert value(worked, "callgate_oldest_queued_seconds") == 0
    assert value(worked, "callgate_dead_letters_last_hour") == 1
    assert value(worked, "callgate_breaker_open") == 0
    assert value(worked, "callgate_provider_up", provider="simulator") == 1
    assert value(waiting, "callgate_jobs", status="queued") == 1
    assert 120 <= value(waiting, "callgate_oldest_queued_seconds") < 121
    # the other gateway counted nothing, and reports the same gauges
    assert value(elsewhere, "callgate_jobs_submitted_total", kind="sms") == 0
    assert not any(name == "callgate_attempts_total" for name, _ in elsewhere)
    for name, labels in [("callgate_jobs", {"status": "queued"}), ("callgate_breaker_open", {})]:
        assert value(elsewhere, name, **labels) == value(waiting, name, **labels)


def test_each_gateway_has_its_own_registry(make_settings: Callable[..., Settings]) -> None:
    with Gateway(make_settings()) as a, Gateway(make_settings()) as b:
        a.send("sms", to=OK, body="one")
        one = parse(a.metrics.render().decode())
        other = parse(b.metrics.render().decode())
    assert value(one, "callgate_jobs_submitted_total", kind="sms") == 1
    assert value(other, "callgate_jobs_submitted_total", kind="sms") == 0


def test_running_batches_only_and_a_provider_down(make_settings: Callable[..., Settings]) -> None:
    with Gateway(make_settings()) as gw:
        rows = "to,body\n" + "".join(f"{OK},row {i}\n" for i in range(3))
        running = gw.submit_batch(io.BytesIO(rows.encode()), kind="sms")
        stopped = gw.submit_batch(io.BytesIO(rows.encode()), kind="sms")
        gw.batches.cancel(stopped.id)
        now = gw.clock.now()
        gw.store.open_circuit(
            "simulator", now, fault="auth", detail="401", probe_at=now + 30, kinds=["sms"]
        )
        seen = parse(gw.metrics.render().decode())
    assert value(seen, "callgate_jobs_submitted_total", kind="sms") == 6
    batches = {labels for name, labels in seen if name == "callgate_batch_rows"}
    assert batches == {(("batch", str(running.id)), ("status", "queued"))}
    assert value(seen, "callgate_batch_rows", batch=str(running.id), status="queued") == 3
    assert value(seen, "callgate_provider_up", provider="simulator") == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_token_guards_the_metrics(make_settings: Callable[..., Settings]) -> None:
    token = "metrics-token-5ec2e7"
    settings = make_settings(metrics_token=token)
    assert token in settings.secret_values()  # redacted wherever it would appear

    async def main(clock: LoopClock) -> list[httpx.Response]:
        with Gateway(settings, clock=clock) as gw:
            api_key, _ = gw.keys.ensure_first()
            assert api_key is not None
            return [
                await scrape(gw),
                await scrape(gw, {"Authorization": f"Bearer {api_key}"}),
                await scrape(gw, {"Authorization": f"Bearer {token}x"}),
                await scrape(gw, {"Authorization": f"Bearer {token}"}),
            ]

    *refused, allowed = run_virtual(main)
    for r in refused:
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
    assert allowed.status_code == 200
    assert value(parse(allowed.text), "callgate_jobs", status="queued") == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_workers_own_metrics_app(make_settings: Callable[..., Settings]) -> None:
    async def main(clock: LoopClock) -> tuple[httpx.Response, httpx.Response]:
        with Gateway(make_settings(), clock=clock) as gw:
            transport = httpx.ASGITransport(app=metrics_app(gw))
            async with httpx.AsyncClient(transport=transport, base_url="http://w") as client:
                return await client.get("/metrics"), await client.get("/v1/jobs")

    metrics, other = run_virtual(main)
    assert metrics.status_code == 200
    assert value(parse(metrics.text), "callgate_database_up") == 1
    assert other.status_code == 404  # the metrics alone: no API on the metrics port
    assert other.json()["error"]["code"] == "not_found"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    logs.configure("json", "debug", stream)
    yield stream
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_jobs_log_lines_carry_its_fields(
    make_settings: Callable[..., Settings], json_logs: io.StringIO
) -> None:
    settings = make_settings()

    async def main(clock: LoopClock) -> int:
        with Gateway(settings, clock=clock) as gw:
            job = gw.send("sms", to=OK, body="hello").job
            await gw.run_worker(drain=True)
            return job.id

    job_id = run_virtual(main)
    lines: list[dict[str, Any]] = [json.loads(x) for x in json_logs.getvalue().splitlines()]
    ended = [x for x in lines if x["event"] == "attempt 1 ended: delivered"]
    assert len(ended) == 1, lines
    [line] = ended
    assert line["job_id"] == job_id
    assert line["attempt"] == 1
    assert line["provider"] == "simulator"
    assert line["provider_ref"].startswith("SM")
    assert line["level"] == "debug"
    assert "batch_id" not in line  # not a batch's job
    assert {"timestamp", "level", "event"} <= set(line)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_openmetrics_when_prometheus_asks_for_it(make_settings: Callable[..., Settings]) -> None:
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as openmetrics_families,
    )

    accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )  # what Prometheus sends

    async def main(clock: LoopClock) -> httpx.Response:
        with Gateway(make_settings(), clock=clock) as gw:
            gw.send("sms", to=OK, body="hello")
            return await scrape(gw, {"Accept": accept})

    r = run_virtual(main)
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(r.text)}
    counted = {
        (s.name, s.labels["kind"]): s.value for s in families["callgate_jobs_submitted"].samples
    }
    assert counted[("callgate_jobs_submitted_total", "sms")] == 1
    assert families["callgate_jobs"].type == "gauge"


def test_webhook_deliveries_by_result(make_settings: Callable[..., Settings]) -> None:
    from callgate.testing import wait_until

    settings = make_settings(webhook_secrets="whsec_" + "A" * 32)
    answers = iter([500, 204, 410])
    hook = "https://app.example.org/hooks"

    def receive(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers, 410))

    async def main(clock: LoopClock) -> Samples:
        with Gateway(settings, clock=clock) as gw:
            sender = gw.webhook_sender(httpx.MockTransport(receive), poll=3600)
            sending = asyncio.create_task(sender.run())
            gw.send("sms", to=OK, body="one", callback_url=hook)
            gw.send("sms", to="+15005550007", body="two", callback_url=hook)
            await gw.run_worker(drain=True)
            await wait_until(
                lambda: not gw.store.list_deliveries(status="pending"), step=1.0, timeout=10**4
            )
            sender.stop()
            await sending
            return parse(gw.metrics.render().decode())

    seen = run_virtual(main, epoch=1_800_000_000.0)
    results = {r: value(seen, "callgate_webhook_deliveries_total", result=r) for r in
               ("delivered", "failed", "dead_lettered", "gone")}  # fmt: skip
    # three posts of two jobs' final events, whichever went first: a 500 (retried), a
    # 204, a 410 (the endpoint is gone: nothing more is sent to it)
    assert results["failed"] == 1
    assert results["delivered"] == 1
    assert results["gone"] == 1
    assert results["dead_lettered"] == 0
