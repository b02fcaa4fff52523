"""Reconciliation of uncertain attempts, on both backends and virtual time.

A "ghost" worker claims a job and writes its attempt row the way a real worker does, and
then dies at a chosen point: before the request, after it, or after the provider's
answer was recorded. A live worker's reconciler must then settle the job by asking the
simulator, and never send it again unless the simulator proves it never arrived.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from callgate.clock import LoopClock
from callgate.domain import Kind, Outcome, Status
from callgate.engine.reconcile import ABSENT, UNRECONCILABLE
from callgate.gateway import Gateway
from callgate.store.base import Accepted, StartAttempt
from callgate.testing import run_virtual, wait_until
from tests.simlog import read_log

PDF = "https://example.org/ballot.pdf"
LINE = "+15005550006"  # a fax line that answers


def ghost_starts(gw: Gateway, clock: LoopClock, to: str = LINE) -> tuple[Any, int]:
    """Submit a fax; a ghost worker claims it and writes attempt 1 (``sending``)."""
    [r] = gw.store.submit([gw.spec(Kind.FAX, to=to, media_url=PDF)], clock.now())
    [claimed] = gw.store.claim(
        "ghost", clock.now(), limit=1, lease=5, max_concurrency=10, meter=gw.worker().meter
    )
    [number] = gw.store.write_batch([StartAttempt(r.job.id, "ghost", clock.now())])
    assert number == 1
    return claimed.job, number


async def live_worker_until(gw: Gateway, done: Any) -> None:
    worker = gw.worker(worker_id="live")
    task = asyncio.create_task(worker.run())
    await wait_until(done, timeout=600)
    worker.stop()
    await task


def test_an_attempt_found_at_the_provider_is_adopted_not_resent(make_settings, tmp_path: Path):
    async def main(clock: LoopClock) -> Gateway:
        gw = Gateway(make_settings(reconcile_pad=0), clock=clock)
        job, _ = ghost_starts(gw, clock)
        sent = await gw.provider.send(job)  # the request went out ...
        assert sent.outcome is Outcome.DELIVERED
        await asyncio.sleep(10)  # ... and the ghost died before recording the answer
        await live_worker_until(gw, lambda: gw.job(job.id).status is Status.DELIVERED)
        return gw

    gw = run_virtual(main)
    [job] = gw.store.list_jobs()
    assert (job.status, job.attempts) == (Status.DELIVERED, 1)
    [attempt] = gw.store.attempts(job.id)
    assert attempt.outcome is Outcome.DELIVERED
    assert attempt.provider_ref is not None
    assert len(read_log(tmp_path / "sim.log")) == 1  # sent once
    events = [e.type for e in gw.store.events(job.id)]
    assert events[-1] == "job.delivered"


def test_an_attempt_the_provider_never_saw_is_queued_again_and_sent(make_settings, tmp_path):
    async def main(clock: LoopClock) -> Gateway:
        gw = Gateway(make_settings(reconcile_pad=0), clock=clock)
        _ = gw.provider  # the simulator is up before the attempt: it can prove absence
        job, _ = ghost_starts(gw, clock)
        await asyncio.sleep(10)  # the ghost died before the request
        await live_worker_until(gw, lambda: gw.job(job.id).status is Status.DELIVERED)
        return gw

    gw = run_virtual(main)
    [job] = gw.store.list_jobs()
    assert (job.status, job.attempts) == (Status.DELIVERED, 1)  # the lost one did not count
    first, second = gw.store.attempts(job.id)
    assert (first.outcome, first.counted) == (Outcome.UNKNOWN, False)
    assert first.error_message == "not found at the provider"
    assert second.outcome is Outcome.DELIVERED
    assert len(read_log(tmp_path / "sim.log")) == 1
    reasons = [(e.status, e.reason) for e in gw.store.events(job.id)]
    assert (Status.QUEUED, ABSENT) in reasons


def test_a_provider_that_cannot_tell_holds_the_job_for_a_person(make_settings, tmp_path):
    async def main(clock: LoopClock) -> Gateway:
        gw = Gateway(make_settings(), clock=clock)
        job, _ = ghost_starts(gw, clock)
        await asyncio.sleep(10)
        # this simulator was made after the attempt (another process's): it cannot tell
        await live_worker_until(gw, lambda: gw.job(job.id).status is Status.HELD)
        assert read_log(tmp_path / "sim.log") == []  # never resent blindly
        held = gw.job(job.id)
        assert held.reason == UNRECONCILABLE
        assert "cannot tell whether it was sent" in (held.detail or "")
        assert f"callgate jobs retry {job.id}" in (held.detail or "")
        assert [j.id for j in gw.store.list_jobs(status=Status.HELD)] == [job.id]
        gw.retry(job.id)  # a person decides to send it again
        await live_worker_until(gw, lambda: gw.job(job.id).status is Status.DELIVERED)
        return gw

    run_virtual(main)
    assert len(read_log(tmp_path / "sim.log")) == 1


def test_several_records_in_the_window_are_held(make_settings, tmp_path: Path):
    async def main(clock: LoopClock) -> Gateway:
        gw = Gateway(make_settings(reconcile_pad=0), clock=clock)
        job, _ = ghost_starts(gw, clock)
        await gw.provider.send(job)
        await gw.provider.send(job)  # another sender reached the same number meanwhile
        await asyncio.sleep(10)
        await live_worker_until(gw, lambda: gw.job(job.id).status is Status.HELD)
        return gw

    gw = run_virtual(main)
    [job] = gw.store.list_jobs()
    assert job.reason == UNRECONCILABLE
    assert "holds 2 records to this number" in (job.detail or "")
    assert len(read_log(tmp_path / "sim.log")) == 2  # and no third


def test_a_recorded_reference_is_looked_up_until_it_ends(make_settings, tmp_path: Path):
    async def main(clock: LoopClock) -> Gateway:
        settings = make_settings(simulator_fax_duration=200.0)
        gw = Gateway(settings, clock=clock)
        job, number = ghost_starts(gw, clock)
        sent = await gw.provider.send(job)
        assert sent.outcome is None  # a 200-second fax, under way
        gw.store.write_batch([Accepted(job.id, number, sent.provider_ref, clock.now())])
        await asyncio.sleep(10)  # the ghost died while tracking it
        start = clock.now()
        await live_worker_until(gw, lambda: gw.job(job.id).status is Status.DELIVERED)
        # looked up when found uncertain, then every retry_delay until the fax ended
        assert clock.now() - start < 200 + 60 + 1
        return gw

    gw = run_virtual(main)
    [job] = gw.store.list_jobs()
    assert (job.status, job.attempts) == (Status.DELIVERED, 1)
    assert len(read_log(tmp_path / "sim.log")) == 1


def test_two_reconcilers_never_take_the_same_job(store) -> None:
    from callgate.domain import make_spec
    from callgate.engine.meter import GCRA

    now = 1000.0
    store.submit([make_spec("fax", to=f"+1212555{i:04d}", media_url=PDF) for i in range(3)], now)
    claimed = store.claim("ghost", now, limit=3, lease=5, max_concurrency=10, meter=GCRA(None))
    store.write_batch([StartAttempt(c.job.id, "ghost", now) for c in claimed])
    assert store.expire_leases(now + 10) == 3
    assert store.uncertain_due(now + 10) == 3
    first = store.claim_uncertain("a", now + 10, limit=2, lease=60)
    second = store.claim_uncertain("b", now + 10, limit=5, lease=60)
    assert len(first) == 2
    assert len(second) == 1
    assert {u.job.id for u in first}.isdisjoint(u.job.id for u in second)
    assert store.claim_uncertain("c", now + 20, limit=5, lease=60) == []
    # only the holder settles it; the lease running out frees it for another
    u = first[0]
    assert not store.settle_uncertain(u.job.id, u.number, "b", now + 20, retry_at=now + 30)
    assert [x.job.id for x in store.claim_uncertain("c", now + 71, limit=5, lease=60)] == [
        first[0].job.id,
        first[1].job.id,
        second[0].job.id,
    ]


def test_a_reference_the_provider_does_not_know_is_held(make_settings, tmp_path: Path):
    async def main(clock: LoopClock) -> Gateway:
        gw = Gateway(make_settings(), clock=clock)
        job, number = ghost_starts(gw, clock)
        gw.store.write_batch([Accepted(job.id, number, "FX-unknown", clock.now())])
        await asyncio.sleep(10)
        await live_worker_until(gw, lambda: gw.job(job.id).status is Status.HELD)
        return gw

    gw = run_virtual(main)
    [job] = gw.store.list_jobs()
    assert job.reason == UNRECONCILABLE
    assert "no record of FX-unknown" in (job.detail or "")
    assert read_log(tmp_path / "sim.log") == []
