"""Alerts on both backends: each raises once and resolves once, whichever of several
gateways (processes) on the same database evaluates the rules; the signed ``alert.raised``
/ ``alert.resolved`` system webhooks; the log lines; ``callgate_alerts_open``; the
monitor in the background on virtual time; the workers' heartbeats; ``GET /v1/alerts``
and ``callgate alerts``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook
from typer.testing import CliRunner

from callgate.api import create_app
from callgate.cli import app as cli_app
from callgate.clock import LoopClock, ManualClock
from callgate.config import Settings
from callgate.gateway import Gateway
from callgate.testing import run_virtual, wait_until
from callgate.webhooks.signing import generate_secret
from tests.integration.batch_support import claim

OK = "+15005550006"
HOOK = "https://ops.example.org/alerts"
SECRET = generate_secret()


def types(gw: Gateway) -> list[tuple[str, str]]:
    """The alert webhooks queued, oldest first: (type, rule)."""
    rows = reversed(gw.store.system_webhooks())
    return [(r["type"], r["data"]["rule"]) for r in rows if r["type"].startswith("alert.")]


def alerts_open(gw: Gateway) -> dict[str, float]:
    """``callgate_alerts_open`` per rule, as a scrape reads it."""
    text = gw.metrics.render().decode()
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "callgate_alerts_open"]
    return {s.labels["rule"]: s.value for s in family.samples}


def test_an_alert_raises_once_and_resolves_once(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()
    clock = ManualClock(time.time())
    with Gateway(settings, clock=clock) as one, Gateway(settings, clock=clock) as two:
        job = one.send("sms", to=OK, body="nobody sends me").job  # no worker runs
        assert one.alerts.check() == ([], [])
        clock.advance(16 * 60)
        with caplog.at_level(logging.INFO, logger="callgate.alerts"):
            raised, resolved = one.alerts.check()
            assert {a.rule for a in raised} == {"oldest_queued", "no_worker"}
            assert resolved == []
            # the other process finds them open: it raises nothing again
            assert two.alerts.check() == ([], [])
            assert one.alerts.check() == ([], [])
            errors = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 2
            assert all(r.getMessage().startswith("alert raised: ") for r in errors)
            assert {r.alert for r in errors} == {"oldest_queued", "no_worker"}  # type: ignore[attr-defined]
            zero = dict.fromkeys(one.alerts.rules, 0.0)
            assert alerts_open(one) == zero | {"oldest_queued": 1, "no_worker": 1}

            one.cancel(job.id)  # nothing waits any more
            clock.advance(15)
            raised, resolved = two.alerts.check()
            assert raised == []
            assert {a.rule for a in resolved} == {"oldest_queued", "no_worker"}
            assert one.alerts.check() == ([], [])
            infos = [r for r in caplog.records if r.getMessage().startswith("alert resolved: ")]
            assert len(infos) == 2
            assert {r.levelno for r in infos} == {logging.INFO}
        rules = ("oldest_queued", "no_worker")
        want = [(kind, rule) for kind in ("alert.raised", "alert.resolved") for rule in rules]
        assert sorted(types(one)) == sorted(want)
        assert one.alerts.open() == []
        history = one.alerts.history()
        assert [a.open for a in history] == [False, False]
        assert all(a.resolved_at == clock.now() for a in history)
        assert alerts_open(one) == zero  # every rule, none open
        # it can raise again later: a new alert, not the old one reopened
        one.send("sms", to=OK, body="again")
        clock.advance(16 * 60)
        raised, _ = one.alerts.check()
        assert {a.rule for a in raised} == {"oldest_queued", "no_worker"}
        assert len(one.alerts.history()) == 4


def test_faxes_waiting_behind_their_lines_fax_are_not_stuck(
    make_settings: Callable[..., Settings],
) -> None:
    """One office's line takes one fax at a time: the ones behind it wait, by design."""
    clock = ManualClock(time.time())
    office, other = "+12025550100", "+12025550111"
    with Gateway(make_settings(), clock=clock) as gw:
        for i in range(3):
            gw.send("fax", to=office, media_url=f"https://example.org/ballot-{i}.pdf")
        [sending] = claim(gw.store, clock.now())  # the first is on the line
        assert sending.job.to == office
        clock.advance(16 * 60)
        assert "oldest_queued" not in {a.rule for a in gw.alerts.check()[0]}
        seen = gw.alerts.observe()
        assert seen.oldest_queued_seconds >= 16 * 60  # the gauge says how long they waited
        assert seen.oldest_free is None
        # a fax to a free line that no claim takes is stuck
        gw.send("fax", to=other, media_url="https://example.org/ballot-x.pdf")
        clock.advance(16 * 60)
        assert "oldest_queued" in {a.rule for a in gw.alerts.check()[0]}


def test_a_provider_down_and_up_again(make_settings: Callable[..., Settings]) -> None:
    clock = ManualClock(time.time())
    with Gateway(make_settings(), clock=clock) as gw:
        now = clock.now()
        gw.store.open_circuit(
            "simulator", now, fault="auth", detail="401", probe_at=now + 30, kinds=["sms"]
        )
        [alert], _ = gw.alerts.check()
        assert (alert.rule, alert.subject, alert.detail["fault"]) == (
            "provider_down",
            "simulator",
            "auth",
        )
        gw.store.close_circuit("simulator", clock.now(), kinds=["sms"], detail="probe ok")
        clock.advance(15)
        assert [a.subject for a in gw.alerts.check()[1]] == ["simulator"]


def test_dead_letters_above_the_threshold(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(alert_dead_letters=2)

    async def main(clock: LoopClock) -> tuple[list[str], list[str]]:
        with Gateway(settings, clock=clock) as gw:
            for i in range(3):
                gw.send("sms", to="+15005550001", body=f"invalid {i}")  # fails for good
            await gw.run_worker(drain=True)
            raised = [a.rule for a in gw.alerts.check()[0]]
            await asyncio.sleep(3700)  # virtual: the hour has passed
            return raised, [a.rule for a in gw.alerts.check()[1]]

    raised, resolved = run_virtual(main)
    assert raised == ["dead_letters"]
    assert resolved == ["dead_letters"]


def test_alert_webhooks_are_signed_and_sent(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(webhook_url=HOOK, webhook_secrets=SECRET)
    got: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        got.append(request)
        return httpx.Response(204)

    async def main(clock: LoopClock) -> None:
        with Gateway(settings, clock=clock, rng=random.Random(3)) as gw:
            sender = gw.webhook_sender(httpx.MockTransport(receive), poll=3600)
            sending = asyncio.create_task(sender.run())
            gw.send("sms", to=OK, body="waits")
            await asyncio.sleep(16 * 60)
            await gw.db(gw.alerts.check)  # wakes the sender
            await wait_until(lambda: len(got) == 2, step=1.0, timeout=600)
            sender.stop()
            await sending

    # virtual time ends near the real now: the receiver checks webhook-timestamp against it
    run_virtual(main, epoch=time.time() - 16 * 60)
    bodies = [Webhook(SECRET).verify(r.content, dict(r.headers)) for r in got]
    assert all(str(r.url) == HOOK for r in got)
    assert {b["type"] for b in bodies} == {"alert.raised"}
    assert {b["data"]["rule"] for b in bodies} == {"oldest_queued", "no_worker"}
    assert all(b["data"]["open"] and b["data"]["message"] for b in bodies)


def test_the_monitor_runs_with_serve_and_worker(make_settings: Callable[..., Settings]) -> None:
    """The background task of ``serve`` and ``worker``, on the injected clock; a worker
    that beats keeps ``no_worker`` quiet, and the alert comes once it stops."""
    settings = make_settings(alert_interval=15.0, lease=30.0)

    async def main(clock: LoopClock) -> tuple[list[str], list[str], float | None, float | None]:
        with Gateway(settings, clock=clock) as gw:
            tasks = [asyncio.create_task(t, name=n) for n, t in gw.background_tasks()]
            assert [t.get_name() for t in tasks] == ["callgate-webhooks", "callgate-alerts"]
            worker = gw.worker()
            working = asyncio.create_task(worker.run())
            await asyncio.sleep(1)
            beat = gw.alerts.observe().last_heartbeat  # beats at once
            # a job that waits for a release a long way off keeps nothing queued
            gw.trip_breaker("hold everything")
            gw.send("sms", to=OK, body="held back by the breaker")
            await asyncio.sleep(120)
            while_working = [a.rule for a in gw.alerts.open()]
            worker.stop()
            await working
            gone = gw.alerts.observe().last_heartbeat  # its row goes with it
            await asyncio.sleep(120)
            after = [a.rule for a in gw.alerts.open()]
            gw.stop_background()
            await asyncio.gather(*tasks)
            return while_working, after, beat, gone

    while_working, after, beat, gone = run_virtual(main)
    assert beat is not None
    assert while_working == []
    assert gone is None
    assert after == ["no_worker"]


def test_the_monitor_can_be_turned_off(make_settings: Callable[..., Settings]) -> None:
    with Gateway(make_settings(alert_interval=0)) as gw:
        tasks = gw.background_tasks()
        assert [n for n, _ in tasks] == ["callgate-webhooks"]
        for _, t in tasks:
            t.close()


def test_get_v1_alerts(make_settings: Callable[..., Settings]) -> None:
    clock = ManualClock(time.time())

    async def call(gw: Gateway, url: str, token: str | None) -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(gw))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://cg") as client:
            return await client.get(url, headers=headers)

    with Gateway(make_settings(), clock=clock) as gw:
        token, _ = gw.keys.ensure_first()
        job = gw.send("sms", to=OK, body="waits").job
        clock.advance(16 * 60)
        gw.alerts.check()
        gw.cancel(job.id)
        clock.advance(15)
        gw.alerts.check()
        gw.send("sms", to=OK, body="waits too")
        clock.advance(61)
        gw.alerts.check()  # no_worker again (no worker ever beat, the job waited 61 s)

        def get(url: str, key: str | None = token) -> httpx.Response:
            return asyncio.run(call(gw, url, key))

        anonymous = get("/v1/alerts", None)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "unauthorized"
        everything = get("/v1/alerts").json()
        assert [(a["rule"], a["open"]) for a in everything["data"]] == [
            ("no_worker", True),
            ("no_worker", False),
            ("oldest_queued", False),
        ] or [(a["rule"], a["open"]) for a in everything["data"]] == [
            ("no_worker", True),
            ("oldest_queued", False),
            ("no_worker", False),
        ]
        assert everything["next_cursor"] is None
        opened = get("/v1/alerts?status=open").json()["data"]
        assert [a["rule"] for a in opened] == ["no_worker"]
        assert opened[0]["resolved_at"] is None
        page = get("/v1/alerts?limit=2").json()
        assert len(page["data"]) == 2
        rest = get(f"/v1/alerts?limit=2&cursor={page['next_cursor']}").json()
        assert len(rest["data"]) == 1
        bad = get("/v1/alerts?status=closed")
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_callgate_alerts(make_settings: Callable[..., Settings], monkeypatch: Any) -> None:
    settings = make_settings()
    monkeypatch.setenv("CALLGATE_DATABASE_URL", settings.database_url)
    with Gateway(settings) as gw:
        gw.send("sms", to=OK, body="waits")
        gw.store.open_circuit(
            "simulator", time.time(), fault="outage", detail="503", probe_at=0, kinds=["sms"]
        )
    runner = CliRunner()
    listed = runner.invoke(cli_app, ["alerts", "--check", "--json"])
    assert listed.exit_code == 0, listed.output
    import json

    [alert] = json.loads(listed.stdout)
    assert (alert["rule"], alert["subject"], alert["open"]) == ("provider_down", "simulator", True)
    table = runner.invoke(cli_app, ["alerts", "--all"])
    assert table.exit_code == 0
    assert "provider_down" in table.stdout


def test_a_webhook_endpoint_failing_for_over_an_hour(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(webhook_url=HOOK + "?token=s3cr3t-value", webhook_secrets=SECRET)
    answers = {"status": 500}

    def receive(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers["status"])

    async def main(clock: LoopClock) -> tuple[list[Any], list[Any], list[Any]]:
        with Gateway(settings, clock=clock, rng=random.Random(3)) as gw:
            sender = gw.webhook_sender(httpx.MockTransport(receive), poll=60)
            sending = asyncio.create_task(sender.run())
            gw.send("sms", to=OK, body="hello")
            await gw.run_worker(drain=True)
            await asyncio.sleep(30 * 60)
            early = gw.alerts.check()[0]  # failing for half an hour: not yet
            await asyncio.sleep(40 * 60)
            raised = gw.alerts.check()[0]
            answers["status"] = 204  # the endpoint is back: the next retry gets through
            await wait_until(
                lambda: not gw.store.list_deliveries(status="pending"), step=60.0, timeout=10**5
            )
            resolved = gw.alerts.check()[1]
            sender.stop()
            await sending
            return early, raised, resolved

    early, raised, resolved = run_virtual(main, epoch=time.time() - 6 * 3600)
    assert [a.rule for a in early if a.rule == "webhook_failing"] == []
    [alert] = [a for a in raised if a.rule == "webhook_failing"]
    assert alert.subject.startswith(HOOK)
    assert "s3cr3t-value" not in repr(alert)  # a credential in the URL never shows
    assert [a.rule for a in resolved if a.rule == "webhook_failing"] == ["webhook_failing"]


def test_a_running_batch_with_too_many_errors(make_settings: Callable[..., Settings]) -> None:
    clock = ManualClock(time.time())
    with Gateway(make_settings(), clock=clock) as gw:
        rows = "to,body\n" + "".join(f"{OK},row {i}\n" for i in range(40))
        batch = gw.submit_batch(io.BytesIO(rows.encode()), kind="sms")
        with gw.store._write() as c:  # type: ignore[attr-defined]
            # 18 rows delivered, 4 failed for good (18 % of 22), 18 still queued
            c.execute("UPDATE jobs SET status = 'delivered' WHERE batch_id = ? AND line_no <= 19",
                      (batch.id,))  # fmt: skip
            c.execute("UPDATE jobs SET status = 'failed' WHERE batch_id = ? AND line_no "
                      "BETWEEN 20 AND 23", (batch.id,))  # fmt: skip
        [alert] = gw.alerts.check()[0]
        assert (alert.rule, alert.subject) == ("batch_errors", str(batch.id))
        assert alert.detail["errors"] == 4
        assert alert.detail["done"] == 22
        gw.batches.cancel(batch.id)  # no longer running: resolved
        assert [a.subject for a in gw.alerts.check()[1]] == [str(batch.id)]
