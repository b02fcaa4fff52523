"""Test support shipped with the package: an asyncio loop that runs on virtual time.

:class:`VirtualTimeLoop` never waits for a timer: when no callback is ready and no file
descriptor has anything to read, it moves its clock straight to the next timer. Code
under test uses plain ``asyncio.sleep`` and timeouts; only real I/O (threads, sockets)
must stay out of a virtual-time test, since time would jump while it is under way.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from callgate.clock import LoopClock

T = TypeVar("T")

#: 2027-01-15 12:00:00 UTC, a Friday: far from any real "now", easy to read in failures.
EPOCH = 1_799_928_000.0


class _JumpingSelector(selectors.BaseSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("virtual-time loop is idle with no timer left: a deadlock")
        self._loop.virtual_time += timeout
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.virtual_time = 0.0
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return self.virtual_time


def run_virtual(main: Callable[[LoopClock], Coroutine[Any, Any, T]], *, epoch: float = EPOCH) -> T:
    """Run ``main(clock)`` to its end on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        clock = LoopClock(epoch, loop)
        return loop.run_until_complete(main(clock))
    finally:
        loop.close()


async def wait_until(
    predicate: Callable[[], bool], *, step: float = 0.01, timeout: float = 3600.0
) -> None:
    """Wait (in loop time) until ``predicate()`` holds; fail after ``timeout``."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(step)

    await asyncio.wait_for(poll(), timeout)


__all__ = ["EPOCH", "VirtualTimeLoop", "run_virtual", "wait_until"]
