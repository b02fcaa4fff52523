"""Provider circuits on virtual time, on both backends: a provider that refuses the
credentials or fails for everyone stops being sent to, its jobs wait without using
attempts, and a probe brings them all through once it answers again."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callgate.clock import LoopClock
from callgate.config import Settings
from callgate.domain import AttemptResult, Fault, Job, Outcome, Status
from callgate.gateway import Gateway
from callgate.store import Store
from callgate.testing import run_virtual, wait_until

REFUSED = AttemptResult(
    Outcome.PROVIDER_ERROR, error_code="20003", error_message="Authenticate", fault=Fault.AUTH
)
OUTAGE = AttemptResult(
    Outcome.PROVIDER_ERROR, error_code="503", error_message="unavailable", fault=Fault.OUTAGE
)


@dataclass
class Vendor:
    """A provider whose answer a test decides: ``failing`` (a result) or delivered."""

    name: str = "vendor"
    failing: AttemptResult | None = None
    answer: Callable[[Job], AttemptResult] | None = None
    requests: list[tuple[float, int, bool]] = field(default_factory=list)
    clock: LoopClock | None = None

    async def send(self, job: Job) -> AttemptResult:
        assert self.clock is not None
        self.requests.append((self.clock.now(), job.id, self.failing is not None))
        await asyncio.sleep(0.05)
        if self.failing is not None:
            return self.failing
        if self.answer is not None:
            return self.answer(job)
        return AttemptResult(Outcome.DELIVERED, provider_ref=f"ref-{job.id}")

    async def status(self, job: Job, ref: str) -> AttemptResult:
        return AttemptResult(Outcome.DELIVERED, provider_ref=ref)

    def set_listener(self, listener: Any) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def failed_requests(self) -> int:
        return sum(1 for *_, failing in self.requests if failing)


NUMBERS = [f"+1212200{i:04d}" for i in range(20)]


def system_events(store: Store) -> list[tuple[str, dict[str, Any]]]:
    """The job-less webhook events written so far (claimed: call once)."""
    return [(w.type, w.data) for w in store.claim_outbox(10**12, 100, 30.0, jobs=False)]


def scenario(
    settings: Settings,
    vendor: Vendor,
    during: Callable[[Gateway], Any],
) -> Gateway:
    async def main(clock: LoopClock) -> Gateway:
        vendor.clock = clock
        gw = Gateway(settings, clock=clock, provider=vendor, rng=random.Random(3))
        gw.submit_many([gw.spec("sms", to=n, body="your ballot is ready") for n in NUMBERS])
        worker = gw.worker()
        task = asyncio.create_task(worker.run())
        await during(gw)
        worker.stop()
        await task
        return gw

    return run_virtual(main)


def settled(gw: Gateway, **want: int) -> Callable[[], bool]:
    return lambda: all(gw.store.counts()[s] == n for s, n in want.items())


def test_refused_credentials_stop_sending_and_a_probe_brings_every_job_through(
    make_settings,
) -> None:
    vendor = Vendor(failing=REFUSED)
    seen: dict[str, Any] = {}

    async def during(gw: Gateway) -> None:
        await wait_until(settled(gw, held=20), step=0.5, timeout=600)
        seen["failed"] = vendor.failed_requests()
        seen["jobs"] = gw.store.list_jobs(limit=100)
        seen["circuit"] = gw.store.circuits()
        await asyncio.sleep(300)  # five minutes of probes while still refused
        seen["probes"] = vendor.failed_requests() - seen["failed"]
        vendor.failing = None  # the credentials are fixed
        await wait_until(settled(gw, delivered=20), step=1.0, timeout=3600)

    gw = scenario(make_settings(rate=10), vendor, during)
    assert seen["failed"] <= 3  # the first refusal opened it; a few were under way
    assert {(j.status, j.reason, j.attempts) for j in seen["jobs"]} == {
        (Status.HELD, "provider_unavailable", 0)  # no job used an attempt
    }
    [circuit] = seen["circuit"]
    assert (circuit.name, circuit.open, circuit.fault) == ("vendor", True, "auth")
    assert "20003" in (circuit.detail or "")
    # probes back off: 30 s, then 60, 120, 240 ... at most 4 in five minutes
    assert 1 <= seen["probes"] <= 4
    jobs = gw.store.list_jobs(limit=100)
    assert Counter(j.status for j in jobs) == {Status.DELIVERED: 20}
    assert {j.attempts for j in jobs} == {1}  # the refused tries were not attempts
    (down_type, down), (up_type, up) = system_events(gw.store)
    assert (down_type, down["provider"], down["fault"]) == ("provider.down", "vendor", "auth")
    assert "20003" in down["detail"]
    assert (up_type, up["provider"]) == ("provider.up", "vendor")
    assert up["down_seconds"] > 300
    assert not gw.store.circuits()[0].open
    # every job was sent once it answered, in the order they came
    delivered = [job for _, job, failing in vendor.requests if not failing]
    assert delivered == sorted(delivered)
    assert len(delivered) == 20


def test_a_sustained_outage_opens_it_after_a_run_of_failures(make_settings) -> None:
    vendor = Vendor(failing=OUTAGE)
    seen: dict[str, Any] = {}

    async def during(gw: Gateway) -> None:
        await wait_until(lambda: bool(gw.store.circuits()), step=0.5, timeout=600)
        await wait_until(settled(gw, queued=0, in_flight=0), step=0.5, timeout=600)
        seen["failed"] = vendor.failed_requests()
        seen["counts"] = gw.store.counts()
        vendor.failing = None
        await wait_until(settled(gw, delivered=20), step=1.0, timeout=3600)

    gw = scenario(make_settings(rate=10, provider_circuit={"failures": 5}), vendor, during)
    assert 5 <= seen["failed"] <= 7  # the run that opened it, and what was under way
    # those that failed before it opened retry on their own schedule; the rest wait
    assert seen["counts"]["held"] + seen["counts"]["retrying"] == 20
    assert seen["counts"]["retrying"] <= 4
    assert Counter(j.status for j in gw.store.list_jobs(limit=100)) == {Status.DELIVERED: 20}


def test_per_number_outcomes_never_open_it(make_settings) -> None:
    """Busy lines and invalid numbers are the jobs' own: the retry policy's business."""

    def answer(job: Job) -> AttemptResult:
        if job.to is not None and job.to.endswith(("1", "3", "5", "7", "9")):
            return AttemptResult(Outcome.PERMANENT, error_code="21211")
        return AttemptResult(Outcome.BUSY)

    vendor = Vendor(answer=answer)

    async def during(gw: Gateway) -> None:
        await wait_until(settled(gw, failed=20), step=1.0, timeout=7200)

    gw = scenario(make_settings(rate=10, sms_max_attempts=2, sms_retry_delay=5), vendor, during)
    assert gw.store.circuits() == []
    assert len(vendor.requests) == 10 + 2 * 10  # invalid once; busy twice each


def test_a_worker_that_starts_probes_at_once(make_settings) -> None:
    """Fixing the credentials means a restart: the new worker does not wait for the next
    probe (it may be ten minutes away)."""
    settings = make_settings(rate=10, provider_circuit={"probe_after": 3600})
    vendor = Vendor(failing=REFUSED)

    async def main(clock: LoopClock) -> tuple[Gateway, float, float]:
        vendor.clock = clock
        gw = Gateway(settings, clock=clock, provider=vendor)
        gw.submit_many([gw.spec("sms", to=n, body="hello") for n in NUMBERS[:3]])
        await gw.run_worker(drain=True)  # exits: every job waits for the provider
        assert gw.store.counts()["held"] == 3
        vendor.failing = None
        restart = clock.now()
        await asyncio.sleep(60)
        gw2 = Gateway(settings, clock=clock, store=gw.store, provider=vendor)
        await gw2.run_worker(drain=True)  # probes, closes, sends the rest, exits
        return gw2, restart, clock.now()

    gw, restart, done = run_virtual(main)
    assert gw.store.counts()["delivered"] == 3
    assert done - restart < 120  # not an hour later
