"""Calling the store from asyncio code without stalling the event loop.

A store whose calls wait on the network or the disk (PostgreSQL: a round trip, a commit's
flush) runs them on a small thread pool, so the loop keeps its timers — the meter's
slots, the provider's answers — while the database works. An embedded SQLite store
answers in microseconds and is called in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class StoreCalls:
    """``await calls(fn, *args, **kwargs)`` runs ``fn(*args, **kwargs)``: on a thread when
    ``offload``."""

    def __init__(self, offload: bool, *, threads: int = 3, name: str = "callgate-db") -> None:
        self._executor = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name) if offload else None
        )

    def __repr__(self) -> str:
        return f"StoreCalls(offload={self._executor is not None})"

    async def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._executor is None:
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def set_event(event: asyncio.Event, loop: asyncio.AbstractEventLoop | None) -> None:
    """Set ``event`` (of ``loop``) from any thread: in place on the loop's own thread,
    else through the loop (code running on a store thread wakes a worker this way)."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is None or running is loop:
        event.set()
        return
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(event.set)
