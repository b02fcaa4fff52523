"""The webhook sender: reads the outbox and POSTs each event, signed, until it lands.

Retry schedule after a failure: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
(±20 %); ``Retry-After`` is honoured on 429 and 503. 2xx is delivered; 410 stops
everything to that endpoint; a delivery that exhausts the schedule is dead-lettered
(``failed``) and can be replayed. Per job and endpoint, events go out in order: a later
event waits while an earlier one is still pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import httpx

from callgate import logs
from callgate.clock import Clock
from callgate.config import Settings
from callgate.domain import Delivery, SystemWebhook, from_ts, iso
from callgate.exceptions import CallgateError, StoreError
from callgate.metrics import Metrics
from callgate.store.offload import StoreCalls, set_event
from callgate.store.parts import KeysPart, WebhookStore
from callgate.urls import UrlChecker
from callgate.webhooks.formats import fax_gateway_body, standard_body
from callgate.webhooks.posting import AiohttpPoster, HttpxPoster, Poster, PostFailed
from callgate.webhooks.signing import Signer, generate_secret, parse_secrets

log = logging.getLogger("callgate.webhooks")

#: seconds to wait before attempt 1, 2, ... 8
SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
JITTER = 0.2
MAX_RETRY_AFTER = 86400.0


def active_secrets(settings: Settings, store: KeysPart, now: float) -> list[str]:
    """``CALLGATE_WEBHOOK_SECRETS``, else the generated ones (one is made on first use)."""
    configured = parse_secrets(settings.webhook_secrets)
    if configured:
        return configured
    stored = store.webhook_secrets()
    if not stored:
        store.add_webhook_secret(generate_secret(), now)
        stored = store.webhook_secrets()
    return stored


def retry_after_seconds(value: str | None, now: float) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
        if not math.isfinite(seconds):  # "nan", "inf": not a time to wait
            return None
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class WebhookSender:
    def __init__(
        self,
        store: WebhookStore,
        settings: Settings,
        *,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        poll: float = 0.2,
        urls: UrlChecker | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        #: this process's delivery counters (None: not counted)
        self.metrics = metrics
        self.settings = settings
        self.urls = urls or UrlChecker(settings.environment, settings.url_allowlist)
        self.clock = clock
        self.signer = Signer(active_secrets(settings, store, clock.now()))
        self._transport = transport
        self._rng = rng or random.Random()
        self._poll = poll
        self._active: set[asyncio.Task[None]] = set()
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._db = StoreCalls(False)
        self.sent = 0

    def __repr__(self) -> str:
        return f"WebhookSender(active={len(self._active)})"

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    def wake(self) -> None:
        """Something may be due (from any thread)."""
        if self._changed is not None:
            set_event(self._changed, self._loop)

    async def run(self) -> None:
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._db = StoreCalls(self.store.offload, threads=1, name="callgate-webhooks-db")
        try:
            await self._run()
        finally:
            self._db.close()

    async def _run(self) -> None:
        assert self._changed is not None
        poster: Poster
        if self._transport is not None:
            poster = HttpxPoster(self._transport, timeout=self.settings.webhook_timeout)
        else:
            poster = AiohttpPoster(
                timeout=self.settings.webhook_timeout, connections=self.settings.webhook_concurrency
            )
        async with poster as client:
            while not self._stopping:
                self._changed.clear()
                try:
                    claimed = await self._dispatch(client)
                    wait = await self._db(self._idle_timeout)
                    wait = wait if claimed else max(wait, 0.05)
                except StoreError as exc:
                    log.warning("webhook outbox unavailable, backing off: %s", exc)
                    wait = 1.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
            if self._active:
                await asyncio.wait(self._active, timeout=self.settings.webhook_timeout + 1)

    async def _dispatch(self, client: Poster) -> int:
        """Fan out new events, start the due outbox items; return how many started."""
        now = self.clock.now()
        await self._db(self.store.fan_out, now, self.settings.webhook_url)
        room = self.settings.webhook_concurrency - len(self._active)
        if room <= 0:
            return 0
        lease = self.settings.webhook_timeout + 5.0
        # events about callgate itself (breaker.tripped) go to the default endpoint only
        system = self.settings.webhook_url is not None
        claimed = await self._db(self.store.claim_outbox, now, room, lease, system=system)
        for item in claimed:
            task = asyncio.create_task(self._deliver(client, item))
            self._active.add(task)
            task.add_done_callback(self._finished)
        return len(claimed)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._active.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # the item stays pending; its lease runs out and it is tried again
            log.error("webhook delivery crashed", exc_info=task.exception())
        self.wake()

    def _idle_timeout(self) -> float:
        due = self.store.next_outbox_at(system=self.settings.webhook_url is not None)
        if due is None:
            return self._poll
        return min(self._poll, max(0.0, due - self.clock.now()))

    async def _deliver(self, client: Poster, item: Delivery | SystemWebhook) -> None:
        """Post one item, signed; settle it by the answer."""
        if isinstance(item, Delivery):  # this task's log lines are about the job
            logs.bind(job_id=item.job_id)
        try:
            url, message_id, body = await self._db(self._message, item)
            if isinstance(item, Delivery):
                await self.urls.acheck(url, "callback_url")
        except CallgateError as exc:  # the URL became unsafe, or the job is gone
            now = self.clock.now()
            await self._db(self.store.outbox_failed, item, now, None, exc.message, None)
            return
        headers = self.signer.headers(message_id, self.clock.now(), body)
        try:
            response = await client.post(url, body, headers)
        except PostFailed as exc:
            await self._failed(item, url, None, str(exc), None)
            return
        now = self.clock.now()
        if 200 <= response.status < 300:
            await self._db(self.store.outbox_done, item, now, response.status)
            self.sent += 1
            self._count("delivered")
        elif response.status == 410 and isinstance(item, Delivery):
            stopped = await self._db(self.store.endpoint_gone, url, now)
            self._count("gone")
            log.warning("%s answered 410 Gone: %d deliveries stopped", url, stopped)
        else:
            wait = None
            if response.status in (429, 503):
                wait = retry_after_seconds(_header(response.headers, "retry-after"), now)
            await self._failed(item, url, response.status, response.text, wait)

    async def _failed(
        self,
        item: Delivery | SystemWebhook,
        url: str,
        status: int | None,
        error: str,
        wait: float | None,
    ) -> None:
        now = self.clock.now()
        attempt = item.attempts + 1  # the one that just failed
        retry_at = self._retry_at(attempt, now, wait)
        self._count("failed" if retry_at is not None else "dead_lettered")
        if retry_at is None:
            what = f"webhook {item.id}" if isinstance(item, Delivery) else f"{item.type} webhook"
            log.error("%s to %s dead-lettered after %d attempts: %s", what, url, attempt, error)
        await self._db(self.store.outbox_failed, item, now, status, error, retry_at)

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.delivery(result)

    def _retry_at(self, attempt: int, now: float, wait: float | None) -> float | None:
        """When to try again after failed attempt number ``attempt`` (``wait``: what the
        endpoint asked for); None: the schedule is spent, dead-letter it."""
        if attempt >= len(SCHEDULE):
            return None
        if wait is not None:
            return now + wait
        return now + SCHEDULE[attempt] * self._rng.uniform(1 - JITTER, 1 + JITTER)

    def _message(self, item: Delivery | SystemWebhook) -> tuple[str, str, str]:
        """(url, message id, body) of an item. A job-less event is
        ``{"type", "timestamp", "data"}`` with id ``sys_<n>``, to the default endpoint."""
        if isinstance(item, SystemWebhook):
            doc = {"type": item.type, "timestamp": iso(from_ts(item.created_at)), "data": item.data}
            url = self.settings.webhook_url
            assert url is not None  # claimed only when there is one
            return url, f"sys_{item.id}", json.dumps(doc, separators=(",", ":"), default=str)
        [event] = self.store.events(after_id=item.event_id - 1, limit=1)
        job = self.store.get_job(item.job_id)
        if item.format == "fax_gateway":
            policy = self.settings.kind_policies()[job.kind]
            attempts = self.store.attempts(job.id)
            last = next((str(a.outcome) for a in reversed(attempts) if a.outcome), None)
            body = fax_gateway_body(event, job, job.max_attempts or policy.max_attempts, last)
        else:
            body = standard_body(event, job)
        text = json.dumps(body, separators=(",", ":"), default=str)
        return item.url, f"msg_{item.event_id}", text


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


__all__ = ["SCHEDULE", "WebhookSender", "active_secrets"]
