"""What every service holds: its part of the store, the clock, and how to wake the
workers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from callgate.clock import Clock

P = TypeVar("P")


class Service(Generic[P]):
    """One group of operations over one part of the store (see :mod:`callgate.services`)."""

    def __init__(self, store: P, clock: Clock, changed: Callable[[], None]) -> None:
        self._store, self._clock, self._changed = store, clock, changed

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store!r})"
