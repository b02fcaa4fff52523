"""The simulator's documented test numbers."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callgate.clock import ManualClock
from callgate.domain import Job, Kind, Outcome
from callgate.providers.base import CannotReconcile
from callgate.providers.simulator import Simulator
from tests.factories import in_flight_job

T = datetime(2030, 1, 1, tzinfo=UTC)


def job(to: str, kind: Kind = Kind.SMS, job_id: int = 1) -> Job:
    return in_flight_job(to, kind, job_id)


def outcomes(sim: Simulator, to: str, kind: Kind, n: int) -> list[Outcome | None]:
    return [asyncio.run(sim.send(job(to, kind))).outcome for _ in range(n)]


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", "21211"),
        ("+15005550002", "21612"),
        ("+15005550003", "21408"),
        ("+15005550004", "21610"),
    ],
)
def test_twilio_permanent_numbers(to: str, code: str) -> None:
    result = asyncio.run(Simulator(ManualClock()).send(job(to)))
    assert (result.outcome, result.error_code) == (Outcome.PERMANENT, code)


def test_not_sms_capable_only_for_sms() -> None:
    sim = Simulator(ManualClock())
    assert outcomes(sim, "+15005550009", Kind.SMS, 1) == [Outcome.PERMANENT]
    assert outcomes(sim, "+15005550009", Kind.CALL, 1) == [Outcome.DELIVERED]


def test_fax_lines() -> None:
    sim = Simulator(ManualClock())
    assert outcomes(sim, "+15005550110", Kind.FAX, 3) == [Outcome.BUSY] * 3
    assert outcomes(sim, "+15005550111", Kind.FAX, 2) == [Outcome.NO_ANSWER] * 2
    assert (
        outcomes(sim, "+15005550123", Kind.FAX, 5) == [Outcome.BUSY] * 3 + [Outcome.DELIVERED] * 2
    )
    assert outcomes(sim, "+15005550120", Kind.FAX, 1) == [Outcome.DELIVERED]
    assert outcomes(sim, "+15005550130", Kind.FAX, 2) == [Outcome.PROVIDER_ERROR] * 2
    assert outcomes(sim, "+15005550131", Kind.SMS, 2) == [Outcome.RATE_LIMITED, Outcome.DELIVERED]
    assert outcomes(sim, "+12125550100", Kind.FAX, 1) == [Outcome.DELIVERED]


def test_fax_is_pending_until_its_duration_passed_and_logged(tmp_path: Path) -> None:
    clock = ManualClock(1000.0)
    sim = Simulator(clock, fax_duration=60, log_path=tmp_path / "sim.log")

    async def scenario() -> None:
        first = await sim.send(job("+15005550006", Kind.FAX))
        assert first.outcome is None
        assert first.provider_ref is not None
        assert (await sim.status(job("+15005550006", Kind.FAX), first.provider_ref)).outcome is None
        clock.advance(60)
        done = await sim.status(job("+15005550006", Kind.FAX), first.provider_ref)
        assert done.outcome is Outcome.DELIVERED
        await sim.aclose()

    asyncio.run(scenario())
    [line] = [json.loads(x) for x in (tmp_path / "sim.log").read_text().splitlines()]
    assert line == {
        "kind": "fax",
        "to": "+15005550006",
        "started_at": 1000.0,
        "ended_at": 1060.0,
        "outcome": "delivered",
        "ref": line["ref"],
        "job_id": 1,
    }


def test_random_mix_is_seeded() -> None:
    import random

    a = Simulator(ManualClock(), mix={"busy": 0.5}, rng=random.Random(3))
    b = Simulator(ManualClock(), mix={"busy": 0.5}, rng=random.Random(3))
    seq = outcomes(a, "+12125550100", Kind.FAX, 50)
    assert seq == outcomes(b, "+12125550100", Kind.FAX, 50)
    assert 10 < seq.count(Outcome.BUSY) < 40


def test_find_proves_no_absence_when_other_processes_share_the_log(tmp_path: Path) -> None:
    """Two workers with their own simulators and one call log: neither knows the other's
    calls, so neither may say a call never happened (that would send it again)."""
    clock = ManualClock(1000.0)
    log = tmp_path / "sim.log"
    mine, theirs = Simulator(clock, log_path=log), Simulator(clock, log_path=log)

    async def scenario() -> None:
        clock.advance(10)
        assert await mine.find(job("+15005550006", Kind.SMS), 1005.0, 1020.0) == []
        await theirs.send(job("+15005550006", Kind.SMS))  # the other process's call
        with pytest.raises(CannotReconcile, match="other processes"):
            await mine.find(job("+15005550006", Kind.SMS), 1005.0, 1020.0)
        await mine.aclose()
        await theirs.aclose()

    asyncio.run(scenario())
