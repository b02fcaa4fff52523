"""A verified status callback ends the attempt it names: in this process at once, in
other processes through the store (PostgreSQL's NOTIFY).

The provider here is a small pushing provider: it accepts every job and never finishes
one by itself, so only a pushed status (or the tracker's next poll, set an hour away)
can end it.
"""

from __future__ import annotations

import asyncio
import itertools
import queue

from callgate.clock import LoopClock
from callgate.domain import AttemptResult, Job, Kind, Outcome, Status
from callgate.gateway import Gateway
from callgate.providers.base import PushedStatuses, StatusListener
from callgate.providers.routing import RoutingProvider
from callgate.store import open_store
from callgate.testing import run_virtual, wait_until

PDF = "https://example.org/ballot.pdf"


class Pushing:
    """Accepts every job; a job ends only by a pushed status (as a vendor's callback)."""

    name = "twilio"

    def __init__(self, *, early: bool = False) -> None:
        self.pushed = PushedStatuses()
        self.polls = 0
        self.early = early  # the callback comes before the worker recorded the answer
        self._ids = itertools.count(1)

    async def send(self, job: Job) -> AttemptResult:
        ref = f"SM{next(self._ids)}"
        if self.early:
            done = AttemptResult(Outcome.DELIVERED, provider_ref=ref)
            asyncio.get_running_loop().call_soon(self.push, ref, done)
        return AttemptResult(None, provider_ref=ref)

    async def status(self, job: Job, ref: str) -> AttemptResult:
        self.polls += 1
        return self.pushed.pop(ref) or AttemptResult(None, provider_ref=ref)

    def push(self, ref: str, result: AttemptResult) -> None:
        self.pushed.push(ref, result)

    def set_listener(self, listener: StatusListener | None) -> None:
        self.pushed.listener = listener

    async def aclose(self) -> None:
        pass


def test_a_callback_ends_the_attempt_at_once(make_settings) -> None:
    vendor = Pushing()

    async def main(clock: LoopClock) -> tuple[Gateway, float]:
        routing = RoutingProvider(dict.fromkeys(Kind, vendor))
        gw = Gateway(make_settings(poll_initial=3600.0), clock=clock, provider=routing)
        job = gw.send("sms", to="+12125550100", body="Your ballot is on its way").job
        worker = gw.worker()
        task = asyncio.create_task(worker.run())
        await wait_until(lambda: gw.job(job.id).provider_ref is not None)
        polls = vendor.polls
        # still under way: changes nothing
        assert not await gw.provider_status("twilio", "SM1", AttemptResult(None, "SM1"))
        start = clock.now()
        done = AttemptResult(Outcome.DELIVERED, provider_ref="SM1")
        assert await gw.provider_status("twilio", "SM1", done)
        await wait_until(lambda: gw.job(job.id).status is Status.DELIVERED)
        took = clock.now() - start
        assert vendor.polls == polls + 1  # one look at the pushed result, no vendor request
        # a duplicate, or one for an attempt nobody tracks, is harmless
        assert await gw.provider_status("twilio", "SM1", done)
        assert await gw.provider_status("twilio", "SM999", done)
        assert not await gw.provider_status("telnyx", "SM1", done)  # not a provider here
        worker.stop()
        await task
        return gw, took

    gw, took = run_virtual(main)
    assert took < 0.05
    [job] = gw.store.list_jobs()
    assert (job.status, job.attempts) == (Status.DELIVERED, 1)


def test_a_callback_that_beats_the_tracker_is_not_lost(make_settings) -> None:
    vendor = Pushing(early=True)

    async def main(clock: LoopClock) -> tuple[Gateway, float]:
        routing = RoutingProvider(dict.fromkeys(Kind, vendor))
        gw = Gateway(make_settings(poll_initial=3600.0), clock=clock, provider=routing)
        start = clock.now()
        job = gw.send("sms", to="+12125550100", body="Your ballot is on its way").job
        await gw.run_worker(drain=True)
        assert gw.job(job.id).status is Status.DELIVERED
        return gw, clock.now() - start

    _, took = run_virtual(main)
    assert took < 1.0  # not the hour until the first poll


def test_a_published_status_reaches_a_worker_in_another_process(pg_databases) -> None:
    # PostgreSQL only: SQLite has no cross-process notifications (polling covers them)
    database_url = pg_databases.fresh()
    heard: queue.Queue[tuple[str, str, AttemptResult]] = queue.Queue()
    listening, publishing = open_store(database_url), open_store(database_url)
    woken: queue.Queue[None] = queue.Queue()
    try:
        stop = listening.listen(lambda: woken.put(None), lambda *status: heard.put(status))
        woken.get(timeout=10)  # connected and LISTENing
        result = AttemptResult(
            Outcome.BUSY, provider_ref="FX1", error_code="34002", error_message="busy"
        )
        publishing.publish_status("signalwire", "FX1", result)
        provider, ref, got = heard.get(timeout=10)
        assert (provider, ref) == ("signalwire", "FX1")
        assert got == result
        stop()
    finally:
        listening.close()
        publishing.close()
        pg_databases.drop(database_url)
