"""The engine end to end on virtual time: each invariant checked from the simulator log."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import socket
from collections import defaultdict
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from callgate.clock import LoopClock
from callgate.config import Settings
from callgate.domain import Kind, Outcome, Status
from callgate.engine.worker import Worker
from callgate.gateway import Gateway
from callgate.store.base import StartAttempt
from callgate.testing import run_virtual, wait_until
from tests.simlog import max_in_window, overlaps, read_log

PDF = "https://example.org/ballot.pdf"


def drive(
    settings: Settings,
    setup: Callable[[Gateway], object],
    during: Callable[[Gateway, Worker], Coroutine[Any, Any, None]] | None = None,
) -> tuple[Gateway, Worker, float]:
    """Submit with ``setup``, run a worker until drained; returns (gateway, worker, elapsed)."""

    async def main(clock: LoopClock) -> tuple[Gateway, Worker, float]:
        gw = Gateway(settings, clock=clock, rng=random.Random(7))
        setup(gw)
        worker = gw.worker()
        start = clock.now()
        if during is None:
            await worker.run(drain=True)
        else:
            task = asyncio.create_task(worker.run(drain=True))
            await during(gw, worker)
            await task
        return gw, worker, clock.now() - start

    return run_virtual(main)


def test_twenty_attempt_fax_runs_to_its_end_in_milliseconds(make_settings, tmp_path: Path):
    settings = make_settings(simulator_fax_duration=30.0, simulator_seed=1)
    gw, _, elapsed = drive(settings, lambda gw: gw.send("fax", to="+15005550110", media_url=PDF))
    [job] = gw.store.list_jobs()
    assert (job.status, job.attempts, job.reason) == (Status.FAILED, 20, "max_attempts")
    log = read_log(tmp_path / "sim.log")
    assert len(log) == 20
    assert [line["outcome"] for line in log] == ["busy"] * 20
    gaps = [b["started_at"] - a["started_at"] for a, b in itertools.pairwise(log)]
    # retry delay 600 s ± 10 % after each busy signal (which takes 30 s × 0.25 to come)
    assert all(540 + 7.5 <= g <= 660 + 7.5 + 1.0 for g in gaps), gaps
    assert elapsed > 19 * 540
    events = [e.type for e in gw.store.events(job.id)]
    assert events.count("job.retrying") == 19
    assert events[-1] == "job.failed"


def test_busy_twice_then_delivered(make_settings, tmp_path: Path) -> None:
    gw, _, _ = drive(
        make_settings(fax_retry_delay=60),
        lambda gw: gw.send("fax", to="+15005550122", media_url=PDF),
    )
    [job] = gw.store.list_jobs()
    assert (job.status, job.attempts) == (Status.DELIVERED, 3)
    assert [a.outcome for a in gw.store.attempts(job.id)] == [
        Outcome.BUSY,
        Outcome.BUSY,
        Outcome.DELIVERED,
    ]


def test_retrying_job_steps_aside_for_the_next_fax(make_settings, tmp_path: Path) -> None:
    def setup(gw: Gateway) -> None:
        gw.send("fax", to="+15005550121", media_url=PDF)  # busy once
        gw.send("fax", to="+15005550121", media_url=PDF)

    _gw, _, _ = drive(make_settings(simulator_fax_duration=10), setup)
    log = read_log(tmp_path / "sim.log")
    assert [(line["job_id"], line["outcome"]) for line in log] == [
        (1, "busy"),
        (2, "delivered"),
        (1, "delivered"),
    ]


def test_strict_order_job_keeps_its_place(make_settings, tmp_path: Path) -> None:
    def setup(gw: Gateway) -> None:
        gw.send("fax", to="+15005550121", media_url=PDF, strict_order=True)
        gw.send("fax", to="+15005550121", media_url=PDF)

    drive(make_settings(simulator_fax_duration=10), setup)
    log = read_log(tmp_path / "sim.log")
    assert [(line["job_id"], line["outcome"]) for line in log] == [
        (1, "busy"),
        (1, "delivered"),
        (2, "delivered"),
    ]


def test_one_in_flight_per_number_and_fifo_under_a_random_mix(make_settings, tmp_path: Path):
    numbers = [f"+1202555{i:04d}" for i in range(20)]
    settings = make_settings(
        simulator_fax_duration=40,
        simulator_latency=0.5,
        fax_retry_delay=120,
        simulator_mix={"busy": 0.3, "provider_error": 0.1, "no_answer": 0.05},
        simulator_seed=3,
        max_concurrency=50,
    )

    def setup(gw: Gateway) -> None:
        gw.submit_many([gw.spec("fax", to=numbers[i % 20], media_url=PDF) for i in range(200)])

    gw, _, _ = drive(settings, setup)
    log = read_log(tmp_path / "sim.log")
    assert overlaps(log) == []
    counts = gw.store.counts()
    assert counts["delivered"] + counts["failed"] == 200
    # FIFO within a number: first attempts go out in submit order
    first_try: dict[str, list[int]] = defaultdict(list)
    seen: set[int] = set()
    for line in sorted(log, key=lambda c: c["started_at"]):
        if line["job_id"] not in seen:
            seen.add(line["job_id"])
            first_try[line["to"]].append(line["job_id"])
    assert all(ids == sorted(ids) for ids in first_try.values())


def test_next_fax_starts_within_a_second_of_the_last(make_settings, tmp_path: Path) -> None:
    settings = make_settings(simulator_fax_duration=95, poll_initial=30, poll_max=60)
    drive(settings, lambda gw: [gw.send("fax", to="+15005550006", media_url=PDF) for _ in range(5)])
    log = sorted(read_log(tmp_path / "sim.log"), key=lambda c: c["started_at"])
    gaps = [b["started_at"] - a["ended_at"] for a, b in itertools.pairwise(log)]
    assert len(gaps) == 4
    assert all(0 <= g < 1.0 for g in gaps), gaps


def test_concurrency_cap_holds(make_settings, tmp_path: Path) -> None:
    settings = make_settings(simulator_fax_duration=20, max_concurrency=7)
    drive(
        settings,
        lambda gw: gw.submit_many(
            [gw.spec("fax", to=f"+1202555{i:04d}", media_url=PDF) for i in range(60)]
        ),
    )
    log = read_log(tmp_path / "sim.log")
    edges = sorted(
        [(c["started_at"], 1) for c in log] + [(c["ended_at"], -1) for c in log],
        key=lambda e: (e[0], e[1]),
    )
    level, peak = 0, 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    assert peak == 7


@pytest.mark.parametrize("rate", [5.0, 50.0])
def test_metering_never_exceeds_the_rate_in_any_second(
    make_settings, tmp_path: Path, rate: float
) -> None:
    n = int(rate * 20)
    settings = make_settings(rate=rate, burst=2.0, simulator_latency=0.003)
    drive(
        settings,
        lambda gw: gw.submit_many(
            [gw.spec("sms", to=f"+1202555{i % 300:04d}", body=f"m{i}") for i in range(n)]
        ),
    )
    starts = sorted(c["started_at"] for c in read_log(tmp_path / "sim.log"))
    assert len(starts) == n
    assert max_in_window(starts) <= rate
    achieved = (len(starts) - 1) / (starts[-1] - starts[0])
    assert abs(achieved - rate) / rate < 0.01


def test_429_is_not_an_attempt_and_lowers_the_rate(make_settings, tmp_path: Path) -> None:
    gw, _worker, _ = drive(
        make_settings(rate=20.0), lambda gw: gw.send("sms", to="+15005550131", body="hi")
    )
    [job] = gw.store.list_jobs()
    assert (job.status, job.attempts) == (Status.DELIVERED, 1)
    attempts = gw.store.attempts(job.id)
    assert [(a.outcome, a.counted) for a in attempts] == [
        (Outcome.RATE_LIMITED, False),
        (Outcome.DELIVERED, True),
    ]
    [row] = gw.store._read("SELECT rate FROM meter")  # type: ignore[attr-defined]
    assert row[0] == pytest.approx(10.0)


def test_provider_errors_back_off_exponentially_then_dead_letter(make_settings, tmp_path):
    gw, _, _ = drive(
        make_settings(backoff_base=5.0), lambda gw: gw.send("sms", to="+15005550130", body="hi")
    )
    [job] = gw.store.list_jobs()
    assert (job.status, job.reason, job.attempts) == (Status.FAILED, "max_attempts", 5)
    starts = [c["started_at"] for c in read_log(tmp_path / "sim.log")]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    for i, gap in enumerate(gaps):
        assert 5 * 2**i * 0.8 <= gap <= 5 * 2**i * 1.2 + 0.01, gaps


def test_permanent_failure_is_not_retried(make_settings, tmp_path: Path) -> None:
    gw, _, _ = drive(make_settings(), lambda gw: gw.send("sms", to="+15005550001", body="x"))
    [job] = gw.store.list_jobs()
    assert (job.status, job.attempts, job.reason) == (Status.FAILED, 1, "permanent")
    assert "21211" in (job.detail or "")


def test_cancel_in_flight_takes_effect_when_the_attempt_ends(make_settings, tmp_path):
    async def during(gw: Gateway, worker: Worker) -> None:
        await wait_until(
            lambda: gw.job(1).status is Status.IN_FLIGHT and bool(gw.store.attempts(1))
        )
        assert gw.cancel(1).cancel_requested

    gw, _, _ = drive(
        make_settings(simulator_fax_duration=100),
        lambda gw: gw.send("fax", to="+15005550110", media_url=PDF),
        during,
    )
    job = gw.job(1)
    assert (job.status, job.attempts) == (Status.CANCELED, 1)
    assert len(read_log(tmp_path / "sim.log")) == 1


def test_job_expiring_while_it_waits_for_its_slot_is_not_sent(make_settings, tmp_path):
    from datetime import timedelta

    def setup(gw: Gateway) -> None:
        now = gw.clock.now()
        gw.submit_many([gw.spec("sms", to=f"+1202555{i:04d}", body="x") for i in range(5)])
        from callgate.domain import from_ts

        gw.send(
            "sms", to="+12025559999", body="late", expires_at=from_ts(now) + timedelta(seconds=2)
        )

    gw, _, _ = drive(make_settings(rate=1.0, burst=10.0), setup)
    late = gw.job(6)
    assert (late.status, late.attempts) == (Status.EXPIRED, 0)
    assert [c["job_id"] for c in read_log(tmp_path / "sim.log")] == [1, 2, 3, 4, 5]


def test_stopping_releases_unsent_and_a_new_worker_finishes(make_settings, tmp_path):
    settings = make_settings(rate=10.0, simulator_fax_duration=5, shutdown_grace=60)

    async def main(clock: LoopClock) -> Gateway:
        gw = Gateway(settings, clock=clock)
        gw.submit_many(
            [gw.spec("fax", to=f"+1202555{i % 40:04d}", media_url=PDF) for i in range(200)]
        )
        first = gw.worker(worker_id="first")
        task = asyncio.create_task(first.run())
        await wait_until(lambda: first.stats.finished >= 30)
        first.stop()
        await task
        assert gw.store.counts()["in_flight"] == 0
        await gw.worker(worker_id="second").run(drain=True)
        return gw

    gw = run_virtual(main)
    assert gw.store.counts()["delivered"] == 200
    log = read_log(tmp_path / "sim.log")
    assert len(log) == 200
    assert overlaps(log) == []


def test_drain_stops_with_only_uncertain_jobs_left(make_settings, tmp_path: Path) -> None:
    async def main(clock: LoopClock) -> Gateway:
        gw = Gateway(make_settings(reconcile_interval=0), clock=clock)  # no reconciler
        [r] = gw.store.submit([gw.spec(Kind.FAX, to="+15005550006", media_url=PDF)], clock.now())
        gw.store.claim(
            "ghost", clock.now(), limit=1, lease=5, max_concurrency=10, meter=gw.worker().meter
        )
        gw.store.write_batch([StartAttempt(r.job.id, "ghost", clock.now())])
        await asyncio.sleep(10)  # the ghost worker died mid-send
        await gw.worker().run(drain=True)
        return gw

    gw = run_virtual(main)
    assert gw.job(1).status is Status.UNCERTAIN
    assert read_log(tmp_path / "sim.log") == []  # never resent blindly


def test_a_configured_worker_name_is_in_its_attempts(make_settings) -> None:  # type: ignore[no-untyped-def]
    """``CALLGATE_WORKER_ID`` names the worker (the pid and object keep two processes
    started with one name apart); without it the host's name is used."""
    gw = Gateway(make_settings(worker_id="edge-7"))
    try:
        job = gw.send("sms", to="+15005550006", body="hi").job
        worker = asyncio.run(gw.run_worker(drain=True))
        name, pid, _ = worker.worker_id.split(":")
        assert (name, int(pid)) == ("edge-7", os.getpid())
        rows = gw.store._read("SELECT worker_id FROM attempts WHERE job_id = ?", (job.id,))  # type: ignore[attr-defined]
        assert [r[0] for r in rows] == [worker.worker_id]
        assert gw.worker().worker_id != worker.worker_id  # a second one in this process
        assert Gateway(make_settings()).worker().worker_id.startswith(socket.gethostname() + ":")
    finally:
        gw.store.close()
