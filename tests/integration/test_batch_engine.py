"""Batches through the engine on virtual time, checked from the simulator's log: a batch
at its own rate, an urgent fax overtaking a running campaign, the 429 and 21610 rules,
completion with its webhook event, and two workers sharing one batch's rate."""

from __future__ import annotations

import asyncio
import io
import random
from pathlib import Path
from typing import Any

from callgate.clock import LoopClock
from callgate.domain import AttemptResult, Job, Outcome
from callgate.gateway import Gateway
from callgate.providers.simulator import Simulator
from callgate.testing import run_virtual
from tests.simlog import max_in_window, read_log

PDF = "https://example.org/ballot.pdf"


def _csv(rows: int, *, to: str | None = None, start: int = 0) -> io.BytesIO:
    lines = "".join(
        f"{to or f'+1202555{start + i:04d}'},+15005550006,reminder {i}\n" for i in range(rows)
    )
    return io.BytesIO(("To,From,Body\n" + lines).encode())


def _run(settings: Any, body: Any, provider: Any = None) -> Any:
    async def main(clock: LoopClock) -> Any:
        gw = Gateway(settings, clock=clock, rng=random.Random(7), provider=provider)
        return await body(gw, clock)

    return run_virtual(main)


def test_a_batch_is_sent_at_its_own_rate_and_completes(make_settings, tmp_path: Path) -> None:
    settings = make_settings(rate=50.0, simulator_latency=0.003)

    async def body(gw: Gateway, clock: LoopClock) -> Any:
        batch = gw.submit_batch(_csv(100), rate=5.0, name="reminders")
        await gw.worker().run(drain=True)
        return batch.id, gw.store.get_batch(batch.id, clock.now())

    batch_id, done = _run(settings, body)
    starts = sorted(c["started_at"] for c in read_log(tmp_path / "sim.log"))
    assert len(starts) == 100
    assert max_in_window(starts) <= 5
    achieved = (len(starts) - 1) / (starts[-1] - starts[0])
    assert abs(achieved - 5.0) / 5.0 < 0.02
    assert done.status == "completed"
    assert done.counts == {"delivered": 100}
    assert done.eta_seconds is None  # over
    [event] = [w for w in _system_events(settings) if w.type == "batch.completed"]
    assert event.data["batch_id"] == batch_id
    assert event.data["counts"] == {"delivered": 100}


def _system_events(settings: Any) -> list[Any]:
    gw = Gateway(settings)
    try:
        return gw.store.claim_outbox(10**12, 100, 30.0, jobs=False)
    finally:
        gw.store.close()


def test_an_urgent_fax_overtakes_a_running_campaign(make_settings, tmp_path: Path) -> None:
    rate = 10.0
    settings = make_settings(rate=rate, burst=1.0, simulator_latency=0.01)

    async def body(gw: Gateway, clock: LoopClock) -> float:
        gw.submit_batch(_csv(300))
        task = asyncio.create_task(gw.worker().run(drain=True))
        await asyncio.sleep(5.0)  # the campaign is well under way
        submitted = clock.now()
        gw.send("fax", to="+15005550006", media_url=PDF)
        await task
        return submitted

    submitted = _run(settings, body)
    calls = sorted(read_log(tmp_path / "sim.log"), key=lambda c: c["started_at"])
    [fax] = [c for c in calls if c["kind"] == "fax"]
    ahead = [
        c for c in calls if c["kind"] == "sms" and submitted <= c["started_at"] < fax["started_at"]
    ]
    # only rows already claimed when the fax came (one burst of the meter) go before it
    assert len(ahead) <= rate * 1.0 + 1
    assert fax["started_at"] - submitted <= 1.0 + 2 / rate
    assert len(calls) == 301
    assert max_in_window([c["started_at"] for c in calls]) <= rate


class _Throttled(Simulator):
    """Answers 429 to the first ``n`` calls to one number, whatever the number."""

    def __init__(self, *args: Any, n: int, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.left = n

    def outcome_for(self, job: Job) -> AttemptResult:
        if self.left > 0 and job.to == "+12025550000":
            self.left -= 1
            return AttemptResult(Outcome.RATE_LIMITED, error_code="20429")
        return super().outcome_for(job)


def test_repeated_429s_lower_the_batch_rate(make_settings, tmp_path: Path) -> None:
    settings = make_settings(rate=0, simulator_latency=0.003)

    async def body(gw: Gateway, clock: LoopClock) -> Any:
        gw._provider = _Throttled(clock=clock, log_path=tmp_path / "sim.log", n=3)
        batch = gw.submit_batch(_csv(60), rate=4.0)
        await gw.worker().run(drain=True)
        return gw.store.get_batch(batch.id)

    done = _run(settings, body)
    assert (done.rate, done.current_rate) == (4.0, 2.0)
    assert done.counts == {"delivered": 60}
    starts = sorted(c["started_at"] for c in read_log(tmp_path / "sim.log"))
    assert max_in_window(starts[-30:]) <= 2  # the rest at the lowered rate


def test_21610_suppresses_the_number_and_blocks_its_later_rows(
    make_settings, tmp_path: Path
) -> None:
    settings = make_settings(rate=0, simulator_latency=0.003)

    async def body(gw: Gateway, clock: LoopClock) -> Any:
        first = gw.submit_batch(_csv(1, to="+15005550004"))
        await gw.worker().run(drain=True)
        later = gw.submit_batch(_csv(2, to="+15005550004"))
        return gw.store.batch_results(first.id), gw.store.batch_results(later.id)

    first, later = _run(settings, body)
    assert [(r["status"], r["error_code"]) for r in first] == [("failed", "21610")]
    assert [r["status"] for r in later] == ["blocked", "blocked"]
    assert len(read_log(tmp_path / "sim.log")) == 1  # never called again


def test_two_workers_keep_one_batch_rate(make_settings, tmp_path: Path) -> None:
    settings = make_settings(rate=100.0, simulator_latency=0.02, simulator_latency_jitter=0.02)

    async def body(gw: Gateway, clock: LoopClock) -> Any:
        batch = gw.submit_batch(_csv(200), rate=8.0)
        workers = [gw.worker(), gw.worker()]
        await asyncio.gather(*(w.run(drain=True) for w in workers))
        return batch.id, [w.stats.sent for w in workers]

    _batch_id, sent = _run(settings, body)
    assert all(sent)
    assert sum(sent) == 200
    starts = sorted(c["started_at"] for c in read_log(tmp_path / "sim.log"))
    assert len(starts) == 200
    assert max_in_window(starts) <= 8
    assert (len(starts) - 1) / (starts[-1] - starts[0]) > 8 * 0.97
