"""The pacer on virtual time: each send starts at a slot it owns, within the lateness
budget; slots nobody was ready for lapse; a shortfall is fetched in one reservation."""

from __future__ import annotations

import asyncio

from callgate.clock import LoopClock
from callgate.engine.pacer import Pacer
from callgate.testing import run_virtual


def test_ready_jobs_take_the_next_slots_in_order() -> None:
    async def main(clock: LoopClock) -> list[tuple[int, float]]:
        t0 = clock.now()
        fetches: list[int] = []

        async def reserve(n: int) -> list[float]:
            fetches.append(n)
            return []

        pacer = Pacer(clock, 0.005, reserve)
        pacer.add([t0 + 1.0, t0 + 2.0, t0 + 3.0])
        got: list[tuple[int, float]] = []

        async def job(i: int) -> None:
            assert await pacer.acquire()
            got.append((i, clock.now() - t0))

        await asyncio.gather(*(job(i) for i in range(3)))
        assert fetches == []
        return got

    assert run_virtual(main) == [(0, 1.0), (1, 2.0), (2, 3.0)]


def test_slots_nobody_used_lapse_and_the_shortfall_is_fetched_at_once() -> None:
    async def main(clock: LoopClock) -> tuple[list[float], list[int], int]:
        t0 = clock.now()
        fetches: list[int] = []

        async def reserve(n: int) -> list[float]:
            fetches.append(n)
            now = clock.now()
            return [now + 0.1 * (i + 1) for i in range(n)]

        pacer = Pacer(clock, 0.005, reserve)
        pacer.add([t0 + 0.5, t0 + 0.6])
        await asyncio.sleep(1.0)  # both slots pass with nobody ready
        sent: list[float] = []

        async def job() -> None:
            assert await pacer.acquire()
            sent.append(clock.now() - t0)

        await asyncio.gather(*(job() for _ in range(3)))
        return sent, fetches, pacer.lapsed

    sent, fetches, lapsed = run_virtual(main)
    assert lapsed == 2
    assert fetches == [3]  # one reservation for the three waiting jobs
    assert [round(s, 3) for s in sent] == [1.1, 1.2, 1.3]


def test_a_stopping_pacer_sends_only_with_slots_it_has() -> None:
    async def main(clock: LoopClock) -> list[bool]:
        t0 = clock.now()

        async def reserve(n: int) -> list[float]:
            raise AssertionError("no reservation while stopping")

        pacer = Pacer(clock, 0.005, reserve)
        pacer.add([t0 + 1.0])
        pacer.stop()
        return list(await asyncio.gather(pacer.acquire(), pacer.acquire()))

    assert sorted(run_virtual(main)) == [False, True]


def test_a_canceled_waiter_gives_its_turn_away() -> None:
    async def main(clock: LoopClock) -> float:
        t0 = clock.now()

        async def reserve(n: int) -> list[float]:
            return []

        pacer = Pacer(clock, 0.005, reserve)
        pacer.add([t0 + 1.0])
        first = asyncio.create_task(pacer.acquire())
        second = asyncio.create_task(pacer.acquire())
        await asyncio.sleep(0.5)
        first.cancel()
        assert await second
        return clock.now() - t0

    assert run_virtual(main) == 1.0


def test_a_job_woken_too_late_for_its_slot_waits_for_another() -> None:
    class Stalled:
        """A clock that jumps ahead once, as a loop blocked by a slow call would."""

        def __init__(self, inner: LoopClock) -> None:
            self.inner, self.stall = inner, 0.0

        def now(self) -> float:
            return self.inner.now() + self.stall

    async def main(clock: LoopClock) -> tuple[float, int]:
        stalled = Stalled(clock)
        t0 = stalled.now()

        async def reserve(n: int) -> list[float]:
            return [stalled.now() + 0.1 for _ in range(n)]

        pacer = Pacer(stalled, 0.005, reserve)  # type: ignore[arg-type]
        release = pacer._release

        def handover_then_stall(now: float) -> float:
            out = release(now)
            if not pacer._slots and not stalled.stall:
                stalled.stall = 0.05  # the job runs 50 ms after its slot: too late for it
            return out

        pacer._release = handover_then_stall  # type: ignore[method-assign]
        pacer.add([t0])
        assert await pacer.acquire()
        return stalled.now() - t0, pacer.late

    waited, late = run_virtual(main)
    assert late == 1
    assert abs(waited - 0.15) < 1e-6  # it sent in the fresh slot, not in the stale one
