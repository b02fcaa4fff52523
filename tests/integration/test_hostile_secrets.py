"""Credentials a provider echoes back (issue 15, item 6): one redaction for every text
that is stored or sent, plain and encoded: no secret in any table, log line or webhook
body. (The audit log's own redaction: tests/acceptance/test_audit_secrets.py.)"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from callgate.clock import LoopClock
from callgate.config import Settings
from callgate.domain import AttemptResult, Job, Outcome
from callgate.gateway import Gateway
from callgate.testing import run_virtual, wait_until
from callgate.webhooks.signing import generate_secret

TOKEN = "s3cr3t-Auth-T0ken-9f8e7d"
SID = "AC0123456789abcdef0123456789abcdef"
BASIC = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
FORMS = [TOKEN, BASIC, base64.b64encode(TOKEN.encode()).decode(), quote(TOKEN)]
HOOK = "https://app.example.org/hooks"
MESSAGE = f"Authenticate failed for {SID}:{TOKEN} (Authorization: Basic {BASIC})"


class EchoingProvider:
    """A provider whose error messages repeat the request's credentials."""

    name = "twilio"

    def __init__(self) -> None:
        self.sent = self.polled = 0

    async def send(self, job: Job) -> AttemptResult:
        self.sent += 1
        if self.sent == 1:
            return AttemptResult(None, "SM1")  # accepted: its status is polled
        outcome = Outcome.BUSY if self.sent < 3 else Outcome.PERMANENT
        return AttemptResult(outcome, None, f"20003 {TOKEN}", MESSAGE)

    async def status(self, job: Job, ref: str) -> AttemptResult:
        self.polled += 1
        if self.polled == 1:  # the worker logs a failed poll: with the credentials in it
            raise RuntimeError(f"GET /Messages/SM1 with Authorization: Basic {BASIC}")
        return AttemptResult(Outcome.BUSY, ref, "20003", MESSAGE)

    def set_listener(self, listener: Any) -> None:
        pass

    async def aclose(self) -> None:
        pass


def every_row(gw: Gateway, backend: str) -> str:
    store: Any = gw.store
    if backend == "sqlite":
        tables = store._read("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        tables = store._read(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    return "\n".join(str(store._read(f"SELECT * FROM {name}")) for (name,) in tables)


def test_echoed_credentials_are_in_no_table_log_line_or_webhook(
    make_settings: Callable[..., Settings], backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(twilio_auth_token=TOKEN, webhook_secrets=generate_secret())
    bodies: list[bytes] = []

    def receive(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(204)

    async def main(clock: LoopClock) -> Gateway:
        gw = Gateway(settings, clock=clock, provider=EchoingProvider(), rng=random.Random(3))
        sender = gw.webhook_sender(httpx.MockTransport(receive), poll=3600)
        gw.send("call", to="+15005550006", twiml="<Response/>", callback_url=HOOK)
        sending = asyncio.create_task(sender.run())
        await gw.run_worker(drain=True)
        await wait_until(
            lambda: not gw.store.list_deliveries(status="pending"), step=60.0, timeout=10**6
        )
        sender.stop()
        await sending
        return gw

    with caplog.at_level(logging.DEBUG):
        gw = run_virtual(main, epoch=time.time())
    try:
        job = gw.store.get_job(1)
        assert job.status == "failed"
        attempts = gw.store.attempts(1)
        assert len(attempts) == 3
        assert "[redacted]" in (attempts[0].error_message or "")
        assert [e.type for e in gw.store.events(1)].count("job.retrying") == 2
        assert len(bodies) == 3  # two job.retrying, one job.failed
        texts = {
            "tables": every_row(gw, backend),
            "logs": caplog.text,
            "webhooks": b"\n".join(bodies).decode(),
        }
        assert "Authenticate failed" in texts["tables"]
        assert "status poll failed" in texts["logs"]
        for where, text in texts.items():
            for form in FORMS:
                assert form not in text, (where, form)
    finally:
        gw.close()
