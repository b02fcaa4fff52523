"""Sending at the meter's slots: a worker keeps the slots its claims reserved and hands
each one to whichever job is ready to send first.

A claim reserves one slot per job from the shared meter, but a job is not always ready
at its own slot (its attempt row may still be committing), and a busy event loop wakes
a moment late. A send must start within ``max_lateness`` of a slot for the one-second
window bound to hold (see :mod:`callgate.engine.meter`). Tying each job to its own slot
turned every late job into a fresh reservation, a database round trip, under the very
load that made it late. The pacer decouples the two: ready jobs queue; each slot, when
it comes, releases the first of them; a slot nobody was ready for lapses once it is too
old to use; when more jobs wait than slots are left, one reservation fetches the
difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from contextvars import Context

from callgate.clock import Clock
from callgate.exceptions import StoreError

log = logging.getLogger("callgate.worker")


class Pacer:
    """Slots in, permissions to send out (see the module docstring)."""

    def __init__(
        self,
        clock: Clock,
        max_lateness: float,
        reserve: Callable[[int], Awaitable[list[float]]],
        *,
        retry: float = 0.5,
    ) -> None:
        self._clock = clock
        self.max_lateness = max_lateness
        self._reserve = reserve
        self._retry = retry
        self._slots: list[float] = []  # a heap: the earliest first
        self._waiting: deque[asyncio.Future[float | None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._fetching: asyncio.Task[None] | None = None
        self.stopping = False  # then a job that would need a fresh slot is not sent
        self.lapsed = 0  # slots that passed with nobody ready to use them
        self.fetched = 0  # slots reserved by the pacer itself (beyond the claims')
        self.late = 0  # slots handed over that their job woke too late to use

    def __repr__(self) -> str:
        return f"Pacer(slots={len(self._slots)}, waiting={len(self._waiting)})"

    def add(self, slots: Iterable[float]) -> None:
        for slot in slots:
            heapq.heappush(self._slots, slot)
        self._kick()

    async def acquire(self) -> bool:
        """Wait for a slot to send in: True when one has come (send now, without awaiting
        anything else first), False when the worker stops before one could be had.

        A slot handed over is checked again when this task actually runs: a busy event
        loop may resume it later than the slot's lateness budget, and sending then could
        crowd two slots' calls into one second; it waits for another slot instead."""
        while True:
            future: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
            self._waiting.append(future)
            self._kick()
            slot = await future
            if slot is None:
                return False
            if self._clock.now() - slot <= self.max_lateness:
                return True
            self.late += 1

    def stop(self) -> None:
        self.stopping = True
        self._kick()

    async def close(self) -> None:
        """Drop the timer and any reservation under way (the worker has stopped)."""
        if self._timer is not None:
            self._timer.cancel()
        if self._fetching is not None:
            self._fetching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetching

    def _kick(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._release(self._clock.now())
        if not self._waiting:
            return
        if self._slots:
            delay = max(0.0, self._slots[0] - now)
            self._timer = asyncio.get_running_loop().call_later(delay, self._kick)
        if len(self._waiting) > len(self._slots) and self._fetching is None:
            self._short()

    def _release(self, now: float) -> float:
        """Let slots too old to use lapse; give each slot that has come to the first job
        waiting."""
        while self._slots and now - self._slots[0] > self.max_lateness:
            heapq.heappop(self._slots)
            self.lapsed += 1
        while self._waiting and self._slots and self._slots[0] <= now:
            future = self._waiting.popleft()
            if not future.done():  # a canceled job gives its turn away
                future.set_result(heapq.heappop(self._slots))
        while self._waiting and self._waiting[0].done():
            self._waiting.popleft()
        return now

    def _short(self) -> None:
        """More jobs wait than slots are left: fetch the difference (or, stopping, tell
        the last ones they will not be sent)."""
        self._waiting = deque(f for f in self._waiting if not f.done())  # canceled ones
        short = len(self._waiting) - len(self._slots)
        if short <= 0:
            return
        if not self.stopping:
            self._fetching = asyncio.create_task(self._fetch(), context=Context())
            return
        for _ in range(short):
            future = self._waiting.pop()
            if not future.done():
                future.set_result(None)

    async def _fetch(self) -> None:
        slots: list[float] = []
        await asyncio.sleep(0)  # the other jobs of this turn join the shortfall
        n = sum(not f.done() for f in self._waiting) - len(self._slots)
        if n <= 0:
            self._fetching = None
            return
        try:
            slots = await self._reserve(n)
            self.fetched += len(slots)
        except StoreError as exc:
            log.warning("could not reserve meter slots (%s); trying again", exc)
        try:
            if not slots:  # never spin: a failed or empty reservation waits a little
                await asyncio.sleep(self._retry)
        finally:
            self._fetching = None
        self.add(slots)


class Lead:
    """How far ahead of its meter slot a job writes its attempt row: at least the meter's
    ``lead``, and twice the slowest attempt write seen lately (that peak halves every
    ``half_life`` seconds), so that the row is durable before the slot even when commits
    are slow; at most ``cap``. A write slower than the cap says the store was down, not
    slow, and is not taken as a measure (every job would then wait that long for its
    slot, holding a place under the concurrency cap meanwhile)."""

    def __init__(self, base: float, cap: float = 0.5, half_life: float = 10.0) -> None:
        self.base, self.cap, self.half_life = base, cap, half_life
        self.peak, self._at = 0.0, 0.0

    def observe(self, seconds: float, now: float) -> None:
        if seconds > self.cap:
            return
        decayed = self.peak * 0.5 ** (max(0.0, now - self._at) / self.half_life)
        self.peak, self._at = max(seconds, decayed), now

    @property
    def value(self) -> float:
        return min(self.cap, max(self.base, 2.0 * self.peak))
