"""Time, injected: the engine asks a :class:`Clock` for "now" and sleeps with asyncio.

Production uses :class:`SystemClock`. Tests run the engine on
:class:`callgate.testing.VirtualTimeLoop`, whose time jumps ahead whenever every task is
waiting, with :class:`LoopClock` reading wall time off that loop; a 20-attempt fax with
10-minute retry delays then runs to its end in milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time, unix seconds."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class LoopClock:
    """Wall time that follows the running event loop's clock (virtual in tests)."""

    def __init__(self, epoch: float, loop: asyncio.AbstractEventLoop) -> None:
        self._offset = epoch - loop.time()
        self._loop = loop

    def now(self) -> float:
        return self._offset + self._loop.time()

    def __repr__(self) -> str:
        return f"LoopClock(now={self.now():.3f})"


class ManualClock:
    """A clock a synchronous test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def __repr__(self) -> str:
        return f"ManualClock(t={self.t:.3f})"
